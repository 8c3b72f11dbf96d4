"""The local AWS enforces resource policies for the principal behind each set of credentials
(`local_aws.principals`, `local_aws.policy`): ECR repository policies on the JSON API and on `/v2/`,
the promotion bus's policy on PutEvents, the queues' policies on SendMessage; and what reaches the
promoter's queue by any other way than the stack's EventBridge rules is never promoted."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from infra.queue_policies import nobody_sends
from local_aws import images as im
from local_aws.event_source_mapping import EventSourceMapping, LocalLambdaContext, sqs_event
from local_aws.images import EcrPusher
from local_aws.principals import EVENTBRIDGE_SENDER_ID, credentials_for
from local_aws.stack_route import StackRoute, route_stack
from promoter import handler, settings
from promoter.aws.history import DynamoDbHistory
from promoter.model.config import parse_config
from tests.integration.test_operator_cli import promoter_cli

pytestmark = pytest.mark.integration

HOME = "123456789012"
OTHER = "210987654321"
PROMOTER_ROLE = f"arn:aws:iam::{HOME}:role/promoter"
DEVELOPER_ROLE = f"arn:aws:iam::{HOME}:role/developer"
IMAGE_WRITES = [
    "ecr:PutImage",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:BatchDeleteImage",
    "ecr:SetRepositoryPolicy",
    "ecr:DeleteRepositoryPolicy",
]


def client(service: str, endpoint: str, principal_arn: str | None = None):
    """A boto3 client acting as `principal_arn` (None: the administrator the test keys stand for)."""
    keys: dict[str, str] = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    if principal_arn is not None:
        creds = credentials_for(principal_arn)
        keys = {"aws_access_key_id": creds.access_key_id, "aws_secret_access_key": creds.secret_access_key}
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        **keys,
    )


def only_promoter_writes(repository_arn: str) -> str:
    """The shape of a protected repository's policy: image writes denied to all but the promoter."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OnlyThePromoterWrites",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": IMAGE_WRITES,
                    "Resource": repository_arn,
                    "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [PROMOTER_ROLE]}},
                }
            ],
        }
    )


def registry_put_manifest(endpoint: str, ecr_client, repository: str, manifest: im.Manifest, tag: str) -> int:
    """PUT a manifest through `/v2/` with the Basic auth token of `ecr_client`'s credentials."""
    token = ecr_client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    request = urllib.request.Request(
        f"{endpoint}/v2/{repository}/manifests/{tag}",
        data=manifest.raw,
        method="PUT",
        headers={"Authorization": f"Basic {token}", "Content-Type": manifest.media_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def registry_start_upload(endpoint: str, ecr_client, repository: str) -> int:
    token = ecr_client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    request = urllib.request.Request(
        f"{endpoint}/v2/{repository}/blobs/uploads/",
        data=b"",
        method="POST",
        headers={"Authorization": f"Basic {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def protected_repo(aws_env, ecr, unique_name):
    """A repository whose policy lets only the promoter's role write, with one image's blobs in it."""
    name = unique_name("prot")
    arn = ecr.create_repository(repositoryName=name)["repository"]["repositoryArn"]
    manifest = im.image((256,))
    for blob in manifest.blobs:
        EcrPusher(ecr).push_blob(name, blob)
    ecr.set_repository_policy(repositoryName=name, policyText=only_promoter_writes(arn))
    return name, manifest


def test_a_repository_policy_refuses_a_direct_push_on_the_json_api_and_lets_the_allowed_principal_in(
    aws_env, ecr, protected_repo
):
    name, manifest = protected_repo
    developer = client("ecr", aws_env.endpoint, DEVELOPER_ROLE)
    put = {
        "repositoryName": name,
        "imageManifest": manifest.text,
        "imageManifestMediaType": manifest.media_type,
    }
    for attempt in (
        lambda: developer.put_image(**put, imageTag="hand"),
        lambda: developer.initiate_layer_upload(repositoryName=name),
        lambda: developer.delete_repository_policy(repositoryName=name),
        lambda: ecr.put_image(**put, imageTag="admin"),  # the account's administrator is no exception
    ):
        with pytest.raises(ClientError) as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "explicit deny" in refused.value.response["Error"]["Message"]
    assert ecr.list_images(repositoryName=name)["imageIds"] == []
    # Reads are not image writes: the developer still sees the repository.
    assert developer.describe_repositories(repositoryNames=[name])["repositories"]

    promoter = client("ecr", aws_env.endpoint, PROMOTER_ROLE)
    promoter.put_image(**put, imageTag="promoted")
    assert [i["imageTag"] for i in ecr.list_images(repositoryName=name)["imageIds"]] == ["promoted"]


def test_a_repository_policy_refuses_a_direct_push_on_v2_and_lets_the_allowed_principal_in(
    aws_env, ecr, protected_repo
):
    name, manifest = protected_repo
    developer = client("ecr", aws_env.endpoint, DEVELOPER_ROLE)
    assert registry_start_upload(aws_env.endpoint, developer, name) == 403
    assert registry_put_manifest(aws_env.endpoint, developer, name, manifest, "hand") == 403
    assert registry_put_manifest(aws_env.endpoint, ecr, name, manifest, "admin") == 403
    assert ecr.list_images(repositoryName=name)["imageIds"] == []

    promoter = client("ecr", aws_env.endpoint, PROMOTER_ROLE)
    assert registry_start_upload(aws_env.endpoint, promoter, name) == 202
    assert registry_put_manifest(aws_env.endpoint, promoter, name, manifest, "promoted") == 201
    assert [i["imageTag"] for i in ecr.list_images(repositoryName=name)["imageIds"]] == ["promoted"]


def test_another_account_writes_only_what_a_repository_policy_allows_it(aws_env, ecr, unique_name):
    name = unique_name("xacct")
    arn = ecr.create_repository(repositoryName=name)["repository"]["repositoryArn"]
    manifest = im.image((128,))
    EcrPusher(ecr).push(name, manifest, "v1")
    ci = client("ecr", aws_env.endpoint, f"arn:aws:iam::{OTHER}:role/ci")
    with pytest.raises(ClientError) as refused:
        ci.batch_delete_image(repositoryName=name, registryId=HOME, imageIds=[{"imageTag": "v1"}])
    assert "no resource-based policy allows" in refused.value.response["Error"]["Message"]
    allow = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": OTHER},
                "Action": "ecr:BatchDeleteImage",
                "Resource": arn,
            }
        ],
    }
    ecr.set_repository_policy(repositoryName=name, policyText=json.dumps(allow))
    assert json.loads(ecr.get_repository_policy(repositoryName=name)["policyText"]) == allow
    ci.batch_delete_image(repositoryName=name, registryId=HOME, imageIds=[{"imageTag": "v1"}])
    assert ecr.list_images(repositoryName=name)["imageIds"] == []


def test_the_administrator_token_still_opens_v2_as_before(aws_env, ecr):
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    assert base64.b64decode(token).decode() == f"AWS:{aws_env.password}"


# --- the stack's route: only its rules hand the promoter work (issue 18, point 1) -------------

REQUESTER = f"arn:aws:iam::{OTHER}:role/release-ci"
ADMIN = (
    f"arn:aws:iam::{HOME}:root"  # what the test keys stand for; named to redrive, as `promoter local` does
)


@dataclass
class Stack:
    """The stack's route on the local AWS (route_stack: its queue policies and its bus policy, here
    for one rule with requesters), and the promoter's handler to run what is queued."""

    endpoint: str
    route: StackRoute
    source: str
    prod: str
    digest: str
    sqs: Any

    def request(self, principal_arn: str | None, **detail: Any) -> None:
        entry = {
            "EventBusName": self.route.event_bus,
            "Source": settings.rule_request_source("to-prod"),
            "DetailType": settings.REQUEST_DETAIL_TYPE,
            "Detail": json.dumps({"repository-name": self.source, "image-tag": "v1", **detail}),
        }
        answer = client("events", self.endpoint, principal_arn).put_events(Entries=[entry])
        assert answer["FailedEntryCount"] == 0, answer

    def forged_request(self) -> str:
        """The request a requester would post, as EventBridge would deliver it: any account claimed."""
        detail = {"repository-name": self.source, "image-tag": "v1", "requested-by": "release-ci"}
        envelope = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": settings.REQUEST_DETAIL_TYPE,
            "source": settings.rule_request_source("to-prod"),
            "account": OTHER,
            "time": "2026-12-06T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
        return json.dumps(envelope)

    def run_promoter(self) -> list[Any]:
        esm = EventSourceMapping(self.sqs, self.route.queue_url, handler.handle_queue, max_concurrency=1)
        try:
            return esm.drain(idle_polls=1, deadline_seconds=60)
        finally:
            esm.close()

    def handle_next(self) -> dict[str, Any]:
        """The handler's answer to the next message, received as Lambda receives it, and visible
        again at once (so, with one receive allowed, the next receive dead-letters a failure)."""
        messages = self.sqs.receive_message(
            QueueUrl=self.route.queue_url,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=0,
            WaitTimeSeconds=1,
        )["Messages"]
        return handler.handle_queue(
            sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1"), LocalLambdaContext()
        )

    def promoted(self) -> str | None:
        images = client("ecr", self.endpoint).batch_get_image(
            repositoryName=self.prod, imageIds=[{"imageTag": "v1"}]
        )
        return images["images"][0]["imageId"]["imageDigest"] if images["images"] else None

    def depth(self, url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return sum(int(found[n]) for n in names)

    def redrive(self, *args: str) -> Any:
        return promoter_cli(
            "redrive",
            "--queue-url",
            self.route.queue_url,
            "--processing-dlq-url",
            self.route.dlq_url,
            "--delivery-dlq-url",
            self.route.delivery_dlq_url,
            *args,
        )


@pytest.fixture
def stack(aws_env, ecr, unique_name, tmp_path, monkeypatch) -> Iterator[Stack]:
    source, prod = unique_name("staging"), unique_name("prod")
    for name in (source, prod):
        ecr.create_repository(repositoryName=name)
    image = im.image((512,))
    EcrPusher(ecr).push(source, image, "v1")
    config = {
        "rules": [
            {
                "name": "to-prod",
                "trigger": "request",
                "requesters": [REQUESTER],
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": prod}],
            }
        ]
    }
    config_file = tmp_path / settings.STAGED_CONFIG_FILE
    config_file.write_text(json.dumps(config))
    sqs, events = client("sqs", aws_env.endpoint), client("events", aws_env.endpoint)
    name = f"enf-{uuid.uuid4().hex[:10]}"
    route = route_stack(
        sqs,
        events,
        parse_config(config),
        account=HOME,
        queue_name=name,
        event_bus=name,
        visibility_timeout_seconds=30,
        max_receive_count=1,
        redrive_principals=(ADMIN,),
    )
    environment = settings.function_environment(config_path=str(config_file), event_bus=route.event_bus)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    handler.runtime.cache_clear()
    yield Stack(aws_env.endpoint, route, source, prod, image.digest, sqs)
    handler.runtime.cache_clear()


def test_a_non_requesters_request_is_refused_by_the_bus_and_a_requesters_is_promoted(stack, aws_env):
    for intruder in (f"arn:aws:iam::{OTHER}:role/intruder", f"arn:aws:iam::{HOME}:role/developer", None):
        with pytest.raises(ClientError) as refused:
            stack.request(intruder)
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException", intruder
    assert stack.depth(stack.route.queue_url) == 0

    stack.request(REQUESTER, **{"requested-by": "release-ci"})
    invocations = stack.run_promoter()

    assert invocations and not any(i.failed_ids or i.error for i in invocations)
    assert stack.promoted() == stack.digest
    (record,) = DynamoDbHistory().for_target(stack.prod, "v1")
    # The envelope's account is the poster's, as EventBridge sets it; how it came is an inference.
    assert record["authenticated_as"] == (
        f"account {OTHER}, a requester of rule to-prod, "
        f"delivered by EventBridge (inferred from SQS SenderId {EVENTBRIDGE_SENDER_ID})"
    )


def test_a_message_sent_straight_to_the_queue_is_refused_and_one_that_slips_through_is_never_promoted(
    stack, caplog
):
    for principal in (f"arn:aws:iam::{HOME}:role/developer", REQUESTER, f"arn:aws:iam::{HOME}:user/alice"):
        with pytest.raises(ClientError) as refused:
            client("sqs", stack.endpoint, principal).send_message(
                QueueUrl=stack.route.queue_url, MessageBody=stack.forged_request()
            )
        assert refused.value.response["Error"]["Code"] == "AccessDenied", principal
    assert stack.depth(stack.route.queue_url) == 0

    # The administrator is named to redrive, so the queue policy lets it send: the handler does not.
    forged = stack.sqs.send_message(QueueUrl=stack.route.queue_url, MessageBody=stack.forged_request())
    answer = stack.handle_next()

    assert answer == {"batchItemFailures": [{"itemIdentifier": forged["MessageId"]}]}
    assert stack.promoted() is None
    refusals = [r for r in caplog.records if "not delivered by EventBridge" in r.getMessage()]
    assert (
        refusals
        and getattr(refusals[0], "error", "") == f"sent by {HOME} (the account root), not by EventBridge"
    )
    assert stack.run_promoter() == []  # its one receive spent: SQS moves it to the dead-letter queue
    assert stack.depth(stack.route.dlq_url) == 1
    report = stack.redrive("--json")
    assert report.returncode == 1, report.stderr
    (_, processing) = json.loads(report.stdout)["queues"]
    assert (processing["found"], processing["moved"], processing["refused"]) == (1, 0, 1)
    assert stack.depth(stack.route.dlq_url) == 1 and stack.depth(stack.route.queue_url) == 0
    assert stack.promoted() is None


def test_nobody_can_put_a_message_into_either_dead_letter_queue(stack):
    for url in (stack.route.dlq_url, stack.route.delivery_dlq_url):
        for principal in (None, f"arn:aws:iam::{HOME}:role/developer", REQUESTER):
            with pytest.raises(ClientError) as refused:
                client("sqs", stack.endpoint, principal).send_message(
                    QueueUrl=url, MessageBody=stack.forged_request()
                )
            assert refused.value.response["Error"]["Code"] == "AccessDenied", (url, principal)
        assert stack.depth(url) == 0


@pytest.mark.parametrize("queue", ["processing", "delivery"])
def test_a_forged_dead_letter_is_reported_by_redrive_and_never_moved(stack, queue):
    url = stack.route.dlq_url if queue == "processing" else stack.route.delivery_dlq_url
    # As if the dead-letter queue's policy had been taken off: the forgery gets in.
    stack.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    stack.sqs.send_message(QueueUrl=url, MessageBody=stack.forged_request())

    dry = stack.redrive("--dry-run")
    assert dry.returncode == 1
    assert "refused (sent by 123456789012 (the account root), not by EventBridge)" in dry.stdout
    report = stack.redrive()
    assert report.returncode == 1
    assert (
        f"{queue}: 1 message(s) not sent by EventBridge: refused, left in the dead-letter queue"
        in report.stderr
    )
    assert stack.depth(stack.route.queue_url) == 0 and stack.depth(url) == 1
    assert stack.run_promoter() == [] and stack.promoted() is None


def test_an_event_eventbridge_could_not_deliver_is_dead_lettered_and_redriven_into_a_promotion(stack):
    # The queue refuses even EventBridge for a while: the request goes to the delivery DLQ at once.
    found = stack.sqs.get_queue_attributes(
        QueueUrl=stack.route.queue_url, AttributeNames=["Policy", "QueueArn"]
    )
    opened = found["Attributes"]["Policy"]
    closed = {"Version": "2012-10-17", "Statement": [nobody_sends(found["Attributes"]["QueueArn"])]}
    stack.sqs.set_queue_attributes(QueueUrl=stack.route.queue_url, Attributes={"Policy": json.dumps(closed)})
    stack.request(REQUESTER)
    (dead,) = stack.sqs.receive_message(
        QueueUrl=stack.route.delivery_dlq_url,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["SenderId"],
        VisibilityTimeout=0,
    )["Messages"]
    assert dead["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "NO_PERMISSIONS"
    assert dead["Attributes"]["SenderId"] == EVENTBRIDGE_SENDER_ID
    assert stack.depth(stack.route.queue_url) == 0
    stack.sqs.set_queue_attributes(QueueUrl=stack.route.queue_url, Attributes={"Policy": opened})

    report = stack.redrive("--json")
    assert report.returncode == 0, report.stderr
    (delivery, _) = json.loads(report.stdout)["queues"]
    assert (delivery["moved"], delivery["refused"]) == (1, 0)
    stack.run_promoter()
    assert stack.promoted() == stack.digest
    (record,) = DynamoDbHistory().for_target(stack.prod, "v1")
    assert record["authenticated_as"].endswith(
        f"redriven by {HOME} from a message delivered by EventBridge "
        f"(inferred from its SQS SenderId {EVENTBRIDGE_SENDER_ID})"
    )


# --- promoter local credentials ---------------------------------------------------------------


def test_promoter_local_credentials_prints_keys_that_act_as_the_principal(aws_env, ecr, unique_name):
    printed = promoter_cli("local", "credentials", "--principal", DEVELOPER_ROLE)
    assert printed.returncode == 0, printed.stderr
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in printed.stdout.splitlines()
        if line.startswith("export ")
    )
    assert f"# principal: {DEVELOPER_ROLE} (account {HOME})" in printed.stdout
    name = unique_name("creds")
    arn = ecr.create_repository(repositoryName=name)["repository"]["repositoryArn"]
    not_the_developer = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": {"AWS": DEVELOPER_ROLE},
                "Action": "ecr:InitiateLayerUpload",
                "Resource": arn,
            }
        ],
    }
    ecr.set_repository_policy(repositoryName=name, policyText=json.dumps(not_the_developer))
    developer = boto3.client(
        "ecr",
        endpoint_url=aws_env.endpoint,
        region_name="us-east-1",
        aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
    )
    with pytest.raises(
        ClientError, match=f"User: arn:aws:sts::{HOME}:assumed-role/developer/local is not authorized"
    ):
        developer.initiate_layer_upload(repositoryName=name)
    assert ecr.initiate_layer_upload(repositoryName=name)["uploadId"]  # the administrator is not named


def test_promoter_local_credentials_refuses_what_is_no_principal_arn():
    refused = promoter_cli("local", "credentials", "--principal", "arn:aws:iam::210987654321:group/ci")
    assert refused.returncode == 2
    assert refused.stderr.startswith("promoter: not an IAM role, user or root ARN")
    assert refused.stdout == ""


def test_the_sqs_query_protocol_is_held_to_the_same_queue_policy(stack):
    """SQS still serves the query protocol (`Action=SendMessage`) beside JSON: no way around."""
    key = credentials_for(f"arn:aws:iam::{HOME}:role/developer").access_key_id
    form = urllib.parse.urlencode(
        {"Action": "SendMessage", "QueueUrl": stack.route.queue_url, "MessageBody": stack.forged_request()}
    ).encode()
    request = urllib.request.Request(
        stack.endpoint + "/",
        data=form,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20261206/us-east-1/sqs/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400
    assert "<Code>AccessDenied</Code>" in refused.value.read().decode()
    assert stack.depth(stack.route.queue_url) == 0
