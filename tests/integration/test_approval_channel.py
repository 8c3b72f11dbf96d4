"""The approval channel on the local AWS (issue 20): a function URL with `AuthType: AWS_IAM` running
the real `promoter.approval_handler`, behind the local AWS's SigV4 check and the resource policy the
stack writes (infra.approval_policies). Who decides is the principal whose credentials signed the
call (`credentials_for`, or a session of the local STS's AssumeRole), never what the body says; a
refused call changes nothing on the wait's record and announces nothing."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local_aws import images as im
from local_aws.approvals import APPROVALS_PATH, approval_url_of, serve_approvals
from local_aws.event_source_mapping import EventSourceMapping
from local_aws.images import EcrPusher
from local_aws.principals import credentials_for
from local_aws.stack_route import route_stack
from promoter import approval_handler, handler, settings
from promoter.aws.approvals import ApprovalRefusedError, ApprovalStore
from promoter.aws.gate_store import DynamoDbGates
from promoter.model.config import parse_config
from promoter.model.events import PromotionRequested
from promoter.model.verdicts import APPROVAL_GATE, Waiting

pytestmark = pytest.mark.integration

HOME = "123456789012"
OTHER = "210987654321"
REGION = "us-east-1"
ALICE = f"arn:aws:iam::{HOME}:user/alice"
CAROL = f"arn:aws:iam::{HOME}:user/carol"  # an approver who requests the promotions below
DAVE = f"arn:aws:iam::{HOME}:user/dave"  # no approver
RELEASE_ROLE = f"arn:aws:iam::{HOME}:role/release"  # each of its sessions is a person
PROMOTER_ROLE = f"arn:aws:iam::{HOME}:role/promoter"
OUTSIDER = f"arn:aws:iam::{OTHER}:user/mallory"
# Every session of every role in the home account may approve: a pattern that matches the
# promoter's own role's sessions too, which the stack's Deny must still keep out.
ANY_SESSION = f"arn:aws:sts::{HOME}:assumed-role/*/*"
# How long an announced decision may take to reach the capturing queue on a loaded machine (polled).
ROUTING_DEADLINE_SECONDS = 10.0


@dataclass
class Channel:
    """The channel as deployed for one test: its URL, the gates table, the captured announcements."""

    url: str
    gates: DynamoDbGates
    table: Any
    sqs: Any
    queue_url: str
    invocations: list[dict[str, Any]]

    def wait(self, *, deadline: float | None = None, data: dict[str, Any] | None = None) -> Waiting:
        """A recorded approval wait for the rule `to-prod`, requested by CAROL."""
        request = PromotionRequested(
            event_id=str(uuid.uuid4()), repository="app-staging", tag="v1.0.0", requested_by=CAROL
        )
        waiting = Waiting(
            repository="app-staging",
            digest="sha256:" + uuid.uuid4().hex * 2,
            rule="to-prod",
            gate=APPROVAL_GATE,
            event=request,
            deadline=deadline if deadline is not None else time.time() + 3600,
            data={"requester": CAROL, "approvals": {}} if data is None else data,
        )
        return self.gates.hold(waiting)

    def record(self, wait: Waiting) -> dict[str, Any]:
        return self.table.get_item(Key={"pk": wait.pk, "sk": wait.sk}, ConsistentRead=True)["Item"]

    def announced(self, count: int) -> list[dict[str, Any]]:
        """At least `count` announcements (their envelopes), or what arrived by the deadline."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + ROUTING_DEADLINE_SECONDS
        while len(got) < count and time.monotonic() < deadline:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages"
            )
            for message in messages or ():
                got.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            if len(got) < count:
                time.sleep(0.05)
        return got

    def nothing_announced(self) -> bool:
        """No announcement is on the queue. The local EventBridge delivers during PutEvents, so what the
        channel announced is there by the time its answer arrived."""
        return not self.sqs.receive_message(QueueUrl=self.queue_url, WaitTimeSeconds=0).get("Messages")


def credentials(arn: str) -> Credentials:
    keys = credentials_for(arn)
    return Credentials(keys.access_key_id, keys.secret_access_key)


def session_of(endpoint: str, role_arn: str, person: str) -> Credentials:
    """A person's session under a role, from the local STS (RoleSessionName is the person)."""
    sts = boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    issued = sts.assume_role(RoleArn=role_arn, RoleSessionName=person)["Credentials"]
    return Credentials(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])


def post(url: str, body: Any, signer: Credentials | None, service: str = "lambda") -> tuple[int, dict]:
    """POSTs `body` (JSON unless bytes) to `url`, signed with `signer` for `service` (None: unsigned)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = AWSRequest(method="POST", url=url, data=data, headers={"Content-Type": "application/json"})
    if signer is not None:
        SigV4Auth(signer, service, REGION).add_auth(request)
    sent = urllib.request.Request(url, data=data, method="POST", headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(sent, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def approve(wait: Waiting, reason: str = "looks good", **extra: Any) -> dict[str, Any]:
    return {"wait_id": wait.wait_id, "decision": "approve", "reason": reason, **extra}


@pytest.fixture
def channel(aws_env, tmp_path, monkeypatch) -> Iterator[Channel]:
    """The stack's approval channel on the local AWS: a rule `to-prod` needing two approvals (alice,
    carol, every session of the release role, every session in the account), its gates table
    (with the `by-wait-id` index), its bus with a capture of the announcements, the function's
    environment, and the promoter's role denied as the stack denies it."""
    suffix = uuid.uuid4().hex[:8]
    ddb = boto3.resource("dynamodb", endpoint_url=aws_env.endpoint, region_name=REGION)
    table_name = f"gates-{suffix}"
    ddb.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "wait_id")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-wait-id",
                "KeySchema": [{"AttributeName": "wait_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    events = boto3.client("events", endpoint_url=aws_env.endpoint, region_name=REGION)
    sqs = boto3.client("sqs", endpoint_url=aws_env.endpoint, region_name=REGION)
    bus = f"promoter-{suffix}"
    events.create_event_bus(Name=bus)
    queue_url = sqs.create_queue(QueueName=f"decided-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {"source": ["image-promoter.approvals"], "detail-type": ["Promotion Approval Decided"]}
    events.put_rule(Name=f"decided-{suffix}", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=f"decided-{suffix}", EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])

    config = {
        "rules": [
            {
                "name": "to-prod",
                "trigger": "request",
                "source": {"repository": "app-staging", "tags": ["v*"]},
                "targets": [{"repository": "app-prod"}],
                "require": {"approval": {"approvers": [ALICE, CAROL, RELEASE_ROLE, ANY_SESSION], "min": 2}},
            }
        ]
    }
    config_file = tmp_path / "promotion.json"
    config_file.write_text(json.dumps(config))
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(config_file))
    monkeypatch.setenv(settings.GATES_TABLE_ENV, table_name)
    monkeypatch.setenv(settings.EVENT_BUS_ENV, bus)
    approval_handler.runtime.cache_clear()
    path = serve_approvals(
        aws_env.function_urls,
        parse_config(config),
        account=HOME,
        region=REGION,
        promoter_roles=(PROMOTER_ROLE,),
    )
    assert path == APPROVALS_PATH
    # Each invocation of the real handler is noted, so a test can tell "refused before the
    # function ran" from "refused by the function".
    served = aws_env.function_urls.find(APPROVALS_PATH)
    invocations: list[dict[str, Any]] = []

    def noted(event: dict[str, Any], context: Any) -> Any:
        invocations.append(event)
        return served.handler(event, context)

    aws_env.function_urls.add(dataclasses.replace(served, handler=noted))
    try:
        yield Channel(
            approval_url_of(aws_env.endpoint),
            DynamoDbGates(table_name, ddb),
            ddb.Table(table_name),
            sqs,
            queue_url,
            invocations,
        )
    finally:
        aws_env.function_urls.remove(APPROVALS_PATH)
        approval_handler.runtime.cache_clear()


@pytest.fixture
def function_log() -> Iterator[list[logging.LogRecord]]:
    """The records the function logs (its Powertools logger does not propagate to the root)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(level=logging.DEBUG)
    function_logger = logging.getLogger(settings.SERVICE_NAME)
    function_logger.addHandler(keep)
    try:
        yield records
    finally:
        function_logger.removeHandler(keep)


def test_two_principals_approve_each_counted_once_and_each_decision_is_announced(channel, aws_env):
    wait = channel.wait()
    bob = session_of(aws_env.endpoint, RELEASE_ROLE, "bob")

    first = post(channel.url, approve(wait, "tested in staging"), credentials(ALICE))
    second = post(channel.url, approve(wait, "change ticket CHG-1"), bob)

    assert first == (
        200,
        {"wait_id": wait.wait_id, "decision": "approve", "approvals": 1, "min": 2, "state": "pending"},
    )
    assert second == (
        200,
        {"wait_id": wait.wait_id, "decision": "approve", "approvals": 2, "min": 2, "state": "approved"},
    )
    approvals = channel.record(wait)["approvals"]
    bob_arn = f"arn:aws:sts::{HOME}:assumed-role/release/bob"
    assert set(approvals) == {ALICE, bob_arn}
    assert approvals[ALICE]["reason"] == "tested in staging"
    assert approvals[bob_arn]["reason"] == "change ticket CHG-1"
    announced = channel.announced(2)
    assert [e["detail"] for e in announced] == [
        {"wait-id": wait.wait_id, "repository": wait.repository, "digest": wait.digest}
    ] * 2
    assert {e["source"] for e in announced} == {"image-promoter.approvals"}


def test_two_sessions_of_one_role_are_two_people(channel, aws_env):
    wait = channel.wait()

    for person in ("bob", "erin"):
        status, _ = post(channel.url, approve(wait), session_of(aws_env.endpoint, RELEASE_ROLE, person))
        assert status == 200

    assert set(channel.record(wait)["approvals"]) == {
        f"arn:aws:sts::{HOME}:assumed-role/release/bob",
        f"arn:aws:sts::{HOME}:assumed-role/release/erin",
    }


def test_a_principal_approving_twice_counts_once_and_the_second_call_changes_nothing(channel):
    wait = channel.wait()
    assert post(channel.url, approve(wait, "first"), credentials(ALICE))[0] == 200
    before = channel.record(wait)

    status, answer = post(channel.url, approve(wait, "second"), credentials(ALICE))

    assert status == 409
    assert "already approved" in answer["message"]
    assert channel.record(wait) == before
    assert list(before["approvals"]) == [ALICE]


def test_a_body_claiming_another_identity_counts_for_nothing(channel, function_log):
    wait = channel.wait()
    claims = {"approver": CAROL, "principal": CAROL, "userArn": CAROL, "requestContext": {"userArn": CAROL}}

    status, answer = post(channel.url, approve(wait, **claims), credentials(ALICE))

    assert status == 200 and answer["approvals"] == 1
    assert set(channel.record(wait)["approvals"]) == {ALICE}
    [warning] = [r for r in function_log if r.levelno == logging.WARNING]
    assert "ignored" in warning.getMessage()
    assert warning.ignored_fields == ["approver", "principal", "requestContext", "userArn"]


def test_a_non_approver_claiming_an_approvers_identity_is_refused_and_nothing_changes(channel):
    wait = channel.wait()
    before = channel.record(wait)

    status, answer = post(channel.url, approve(wait, approver=ALICE, userArn=ALICE), credentials(DAVE))

    assert status == 403
    assert "is not an approver" in answer["message"]
    assert channel.record(wait) == before
    assert channel.nothing_announced()


@pytest.mark.parametrize(
    "signer, service",
    [
        (None, "lambda"),  # unsigned
        (Credentials(credentials_for(ALICE).access_key_id, "not-alices-secret"), "lambda"),  # wrong secret
        (Credentials("test", "test"), "lambda"),  # a key the local AWS has no secret for
        (None, "execute-api"),  # signed for another service (below: with alice's keys)
    ],
    ids=["unsigned", "wrong-secret", "unknown-key", "other-service"],
)
def test_an_unsigned_or_wrongly_signed_call_is_refused_before_the_function_runs(channel, signer, service):
    wait = channel.wait()
    before = channel.record(wait)
    if service != "lambda":
        signer = credentials(ALICE)

    status, answer = post(channel.url, approve(wait), signer, service=service)

    assert status == 403
    assert set(answer) == {"Message"}  # Lambda's own answer: the function never answers so
    assert channel.invocations == []
    assert channel.record(wait) == before


def test_a_session_of_a_role_arriving_without_its_token_is_refused(channel, aws_env):
    wait = channel.wait()
    bob = session_of(aws_env.endpoint, RELEASE_ROLE, "bob")

    status, _ = post(channel.url, approve(wait), Credentials(bob.access_key, bob.secret_key))

    assert status == 403 and channel.invocations == []


def test_the_promoters_own_role_is_refused_before_the_function_though_a_pattern_matches_it(channel):
    wait = channel.wait()
    before = channel.record(wait)

    status, answer = post(channel.url, approve(wait), credentials(PROMOTER_ROLE))

    assert (status, answer) == (403, {"Message": "Forbidden"})
    assert channel.invocations == []
    assert channel.record(wait) == before


def test_another_accounts_principal_no_approver_names_is_refused_before_the_function(channel):
    wait = channel.wait()

    status, answer = post(channel.url, approve(wait), credentials(OUTSIDER))

    assert (status, answer) == (403, {"Message": "Forbidden"})
    assert channel.invocations == []


def test_the_function_gets_the_callers_arn_as_aws_hands_it(channel, aws_env):
    wait = channel.wait()

    post(channel.url, approve(wait), session_of(aws_env.endpoint, RELEASE_ROLE, "bob"))

    [event] = channel.invocations
    iam = event["requestContext"]["authorizer"]["iam"]
    assert iam["userArn"] == f"arn:aws:sts::{HOME}:assumed-role/release/bob"
    assert iam["accountId"] == HOME and iam["userId"].endswith(":bob")


def test_the_requester_may_not_approve_their_own_request(channel):
    wait = channel.wait()
    before = channel.record(wait)

    status, answer = post(channel.url, approve(wait), credentials(CAROL))

    assert status == 403
    assert "requested this promotion" in answer["message"]
    assert channel.record(wait) == before
    assert channel.nothing_announced()


def test_an_unknown_wait_is_404(channel):
    status, answer = post(
        channel.url, {"wait_id": "0123456789ab", "decision": "approve", "reason": "x"}, credentials(ALICE)
    )

    assert status == 404
    assert "0123456789ab" in answer["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        {"wait_id": "nope", "decision": "approve", "reason": "x"},
        {"wait_id": "0123456789ab", "decision": "maybe", "reason": "x"},
        {"wait_id": "0123456789ab", "decision": "approve"},
        {"wait_id": "0123456789ab", "decision": "approve", "reason": "   "},
    ],
    ids=["not-json", "not-an-object", "bad-id", "bad-decision", "no-reason", "blank-reason"],
)
def test_bad_input_is_400_with_a_message(channel, body):
    status, answer = post(channel.url, body, credentials(ALICE))

    assert status == 400
    assert answer["message"]


def test_a_rejection_ends_the_wait_and_a_later_approval_is_409_changing_nothing(channel, aws_env):
    wait = channel.wait()

    status, answer = post(
        channel.url, {**approve(wait, "CVE in base image"), "decision": "reject"}, credentials(ALICE)
    )
    assert (status, answer["state"]) == (200, "rejected")
    rejected = channel.record(wait)
    assert rejected["rejection"]["by"] == ALICE and rejected["rejection"]["reason"] == "CVE in base image"
    assert len(channel.announced(1)) == 1

    status, answer = post(channel.url, approve(wait), session_of(aws_env.endpoint, RELEASE_ROLE, "bob"))

    assert status == 409
    assert "rejected" in answer["message"]
    assert channel.record(wait) == rejected
    assert channel.nothing_announced()


def test_an_expired_wait_is_409_and_nothing_changes(channel):
    wait = channel.wait(deadline=time.time() - 60)
    before = channel.record(wait)

    status, answer = post(channel.url, approve(wait), credentials(ALICE))

    assert status == 409
    assert "expired" in answer["message"]
    assert channel.record(wait) == before


def test_an_approved_wait_is_409_for_a_third_approver(channel, aws_env):
    wait = channel.wait()
    for signer in (credentials(ALICE), session_of(aws_env.endpoint, RELEASE_ROLE, "bob")):
        assert post(channel.url, approve(wait), signer)[0] == 200
    approved = channel.record(wait)

    status, answer = post(channel.url, approve(wait), session_of(aws_env.endpoint, RELEASE_ROLE, "erin"))

    assert status == 409
    assert "already approved" in answer["message"]
    assert channel.record(wait) == approved


def test_a_wait_recorded_without_an_approvals_map_takes_its_first_approval(channel):
    wait = channel.wait(data={"requester": CAROL})

    status, answer = post(channel.url, approve(wait), credentials(ALICE))

    assert (status, answer["approvals"]) == (200, 1)
    assert set(channel.record(wait)["approvals"]) == {ALICE}


def test_no_channel_is_served_without_an_approval_rule(aws_env):
    config = parse_config(
        {
            "rules": [
                {
                    "name": "r",
                    "trigger": "push",
                    "source": {"repository": "app-dev", "tags": ["v*"]},
                    "targets": [{"repository": "app-staging"}],
                }
            ]
        }
    )

    assert serve_approvals(aws_env.function_urls, config, account=HOME, region=REGION) is None
    assert aws_env.function_urls.find(APPROVALS_PATH) is None


# The store alone, with the read and the write apart as two racing callers would have them: the
# one conditional write refuses what changed after the caller's read.
def test_a_decision_racing_a_rejection_is_refused_by_the_write_itself(channel):
    stale = channel.wait()
    store = ApprovalStore(channel.table.name, boto3.resource("dynamodb"))
    store.record(stale, CAROL, "reject", "not today", time.time())
    rejected = channel.record(stale)

    with pytest.raises(ApprovalRefusedError) as refused:
        store.record(stale, ALICE, "approve", "fine", time.time())

    assert refused.value.code == 409 and "rejected" in refused.value.reason
    assert channel.record(stale) == rejected


def test_a_second_approval_racing_the_first_by_the_same_person_is_refused_by_the_write(channel):
    stale = channel.wait()
    store = ApprovalStore(channel.table.name, boto3.resource("dynamodb"))
    store.record(stale, ALICE, "approve", "first", time.time())
    approved = channel.record(stale)

    with pytest.raises(ApprovalRefusedError) as refused:
        store.record(stale, ALICE, "approve", "second", time.time())

    assert refused.value.code == 409 and "already approved" in refused.value.reason
    assert channel.record(stale) == approved


def test_a_decision_on_a_wait_that_ended_after_it_was_read_is_404(channel):
    stale = channel.wait()
    store = ApprovalStore(channel.table.name, boto3.resource("dynamodb"))
    channel.gates.release(stale)

    with pytest.raises(ApprovalRefusedError) as refused:
        store.record(stale, ALICE, "approve", "fine", time.time())

    assert refused.value.code == 404
    assert "Item" not in channel.table.get_item(Key={"pk": stale.pk, "sk": stale.sk}, ConsistentRead=True)


def test_on_the_stack_route_two_approvals_through_the_channel_resume_the_wait_and_promote_its_digest(
    aws_env, ecr, unique_name, tmp_path, monkeypatch
):
    """The whole path as deployed: a request waits for approval; each decision the channel records is
    announced on the promotion bus, the stack's rule routes it into the queue, the promoter runs
    the wait again; the second distinct approver's decision promotes the digest that waited."""
    source, prod = unique_name("staging"), unique_name("prod")
    for name in (source, prod):
        ecr.create_repository(repositoryName=name)
    image = im.image((333,))
    EcrPusher(ecr).push(source, image, "v1")
    config = {
        "rules": [
            {
                "name": "to-prod",
                "trigger": "request",
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": prod}],
                "require": {"approval": {"approvers": [ALICE, RELEASE_ROLE], "min": 2}},
            }
        ]
    }
    config_file = tmp_path / settings.STAGED_CONFIG_FILE
    config_file.write_text(json.dumps(config))
    kw: dict[str, Any] = {"endpoint_url": aws_env.endpoint, "region_name": REGION}
    sqs, events = boto3.client("sqs", **kw), boto3.client("events", **kw)
    name = f"appr-{uuid.uuid4().hex[:10]}"
    route = route_stack(
        sqs,
        events,
        parse_config(config),
        account=HOME,
        queue_name=name,
        event_bus=name,
        visibility_timeout_seconds=30,
        max_receive_count=3,
    )
    for key, value in settings.function_environment(config_path=str(config_file), event_bus=name).items():
        monkeypatch.setenv(key, value)
    handler.runtime.cache_clear()
    approval_handler.runtime.cache_clear()
    assert serve_approvals(aws_env.function_urls, parse_config(config), account=HOME, region=REGION)

    def run_promoter() -> None:
        esm = EventSourceMapping(sqs, route.queue_url, handler.handle_queue, max_concurrency=1)
        try:
            esm.drain(idle_polls=1, deadline_seconds=60)
        finally:
            esm.close()

    def promoted() -> str | None:
        found = ecr.batch_get_image(repositoryName=prod, imageIds=[{"imageTag": "v1"}])["images"]
        return found[0]["imageId"]["imageDigest"] if found else None

    try:
        detail = {"repository-name": source, "image-tag": "v1", "requested-by": CAROL}
        events.put_events(
            Entries=[
                {
                    "EventBusName": name,
                    "Source": settings.DEFAULT_REQUEST_EVENT_SOURCE,
                    "DetailType": settings.REQUEST_DETAIL_TYPE,
                    "Detail": json.dumps(detail),
                }
            ]
        )
        run_promoter()
        [wait] = [w for w in DynamoDbGates().waiting_for(source, image.digest) if w.gate == APPROVAL_GATE]
        assert promoted() is None

        assert post(approval_url_of(aws_env.endpoint), approve(wait), credentials(ALICE))[0] == 200
        run_promoter()
        assert promoted() is None  # one of two

        bob = session_of(aws_env.endpoint, RELEASE_ROLE, "bob")
        status, answer = post(approval_url_of(aws_env.endpoint), approve(wait), bob)
        assert (status, answer["state"]) == (200, "approved")
        run_promoter()

        assert promoted() == image.digest
    finally:
        aws_env.function_urls.remove(APPROVALS_PATH)
        handler.runtime.cache_clear()
        approval_handler.runtime.cache_clear()


def test_an_unexpected_error_is_a_500_logged_at_error_and_records_nothing(channel, monkeypatch, function_log):
    wait = channel.wait()
    before = channel.record(wait)
    monkeypatch.setenv(settings.GATES_TABLE_ENV, f"no-such-table-{uuid.uuid4().hex[:8]}")
    approval_handler.runtime.cache_clear()

    status, answer = post(channel.url, approve(wait), credentials(ALICE))

    assert status == 500
    assert "nothing was recorded" in answer["message"]
    assert any(r.levelno == logging.ERROR and "unexpected error" in r.getMessage() for r in function_log)
    assert channel.record(wait) == before


def test_a_decision_whose_announcement_failed_is_announced_when_its_approver_calls_again(
    channel, monkeypatch
):
    wait = channel.wait()
    bus = settings.event_bus_name()
    monkeypatch.setenv(settings.EVENT_BUS_ENV, f"no-such-bus-{uuid.uuid4().hex[:8]}")

    status, answer = post(channel.url, approve(wait), credentials(ALICE))

    assert status == 500 and "call again" in answer["message"]
    assert set(channel.record(wait)["approvals"]) == {ALICE}  # recorded, not announced
    assert channel.nothing_announced()
    monkeypatch.setenv(settings.EVENT_BUS_ENV, bus)

    status, answer = post(channel.url, approve(wait), credentials(ALICE))

    assert status == 409 and "already approved" in answer["message"]  # still counted once
    [announced] = channel.announced(1)
    assert announced["detail"]["wait-id"] == wait.wait_id


def test_promoter_local_serves_the_channel_for_an_approval_rule_with_the_same_authentication(tmp_path):
    """`promoter local --config` with an approval rule: the ready block names the channel; a principal's
    signed call reaches the function (an unknown wait: 404, read through the gates table's index);
    the administrator's keys the block prints, which the promoter itself runs with, are refused."""
    from tests.integration.test_local_promoter import (
        PROMOTER,
        START_TIMEOUT_SECONDS,
        Terminal,
        pasted_environment,
        stop,
    )

    config = tmp_path / "promotion.yaml"
    config.write_text(
        "rules:\n  - name: to-prod\n    trigger: request\n"
        "    source: {repository: app-staging, tags: ['v*']}\n"
        f"    require: {{approval: {{approvers: ['{ALICE}']}}}}\n"
        "    targets: [{repository: app-prod}]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [*PROMOTER, "local", "--port", "0", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        terminal = Terminal(proc)
        terminal.until(r"^# Ctrl-C", START_TIMEOUT_SECONDS)
        pasted = pasted_environment(list(terminal.seen))
        url = approval_url_of(pasted["AWS_ENDPOINT_URL"])
        assert any(f"approvals: POST {url}" in line for line in terminal.seen)
        unknown = {"wait_id": "0123456789ab", "decision": "approve", "reason": "ok"}

        assert post(url, unknown, credentials(ALICE))[0] == 404
        admin = Credentials(pasted["AWS_ACCESS_KEY_ID"], pasted["AWS_SECRET_ACCESS_KEY"])
        assert post(url, unknown, admin)[0] == 403
    finally:
        assert stop(proc) == 0, proc.stderr.read() if proc.stderr else ""
