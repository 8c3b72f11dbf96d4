"""Who `promoter request` says asked (issue 20): by default the caller's principal ARN as STS says it,
so an approval gate knows its requester. On the local AWS, a request made with a principal's own
credentials (`promoter local credentials --principal`) names that principal; the wait it starts
records them as its requester, and the approval channel refuses their own approval. An explicit
`--requested-by` still wins; an STS that refuses leaves the old default, with a one-line note."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from local_aws import images as im
from local_aws.approvals import APPROVALS_PATH, serve_approvals
from local_aws.principals import credentials_for
from promoter import approval_handler, settings
from promoter.model.config import load_config
from tests.integration.test_cli_approvals import as_principal, run

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
REGION = "us-east-1"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
CAROL = f"arn:aws:iam::{ACCOUNT}:user/carol"  # an approver, who requests below
# What chose the requester before STS did (cmd_release.REQUESTER_ENV_VARS): none may leak in.
CI_VARIABLES = ("PROMOTER_REQUESTED_BY", "GITHUB_ACTOR", "CODEBUILD_INITIATOR", "GITLAB_USER_LOGIN")
STS_REFUSAL = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    b"<Code>AccessDenied</Code><Message>not authorized to perform sts:GetCallerIdentity</Message>"
    b"</Error><RequestId>0</RequestId></ErrorResponse>"
)


@dataclass(frozen=True)
class Setup:
    stage: str
    config: str
    bus: str
    requests: tuple[Any, str]  # (sqs, queue url): every request the bus routes

    def delivered(self) -> dict[str, Any]:
        """The one request the bus delivered (its rule's target is the queue)."""
        sqs, url = self.requests
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=5)["Messages"]
        assert len(messages) == 1, messages
        return json.loads(messages[0]["Body"])


@pytest.fixture
def setup(aws_env, ecr, unique_name, pusher, tmp_path, monkeypatch) -> Iterator[Setup]:
    """stage (v1.0.0) -(to-prod: approval of alice or carol, min 1)-> prod; a bus whose requests go
    to a queue; the approval channel served as `promoter local --config` serves it."""
    stage, prod = unique_name("stage"), unique_name("prod")
    for name in (stage, prod):
        ecr.create_repository(repositoryName=name)
    pusher.push(stage, im.image((31,)), "v1.0.0")
    config = tmp_path / "promotion.yaml"
    config.write_text(
        "rules:\n  - name: to-prod\n    trigger: request\n"
        f"    source: {{repository: {stage}, tags: ['v*']}}\n"
        f"    require: {{approval: {{approvers: ['{ALICE}', '{CAROL}'], min: 1}}}}\n"
        f"    targets: [{{repository: {prod}, tags: ['{{tag}}']}}]\n"
    )
    kw: dict[str, Any] = {"endpoint_url": aws_env.endpoint, "region_name": REGION}
    events, sqs = boto3.client("events", **kw), boto3.client("sqs", **kw)
    bus = f"requests-{uuid.uuid4().hex[:10]}"
    events.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName=bus)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {"detail-type": [settings.REQUEST_DETAIL_TYPE]}
    events.put_rule(Name=bus, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=bus, EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(config))
    approval_handler.runtime.cache_clear()
    assert serve_approvals(aws_env.function_urls, load_config(config), account=ACCOUNT, region=REGION)
    try:
        yield Setup(stage, str(config), bus, (sqs, queue))
    finally:
        aws_env.function_urls.remove(APPROVALS_PATH)
        approval_handler.runtime.cache_clear()


def as_caller(arn: str, **extra: str) -> dict[str, str]:
    """The environment of `arn`'s shell: its keys, no CI variable naming anyone."""
    env = {k: v for k, v in as_principal(arn).items() if k not in CI_VARIABLES}
    return env | extra


def request(setup: Setup, env: dict[str, str], *extra: str) -> Any:
    return run(
        "request", "--bus", setup.bus, "--repository", setup.stage, "--tag", "v1.0.0", "--rule", "to-prod",
        *extra, env=env,
    )  # fmt: skip


def pending(setup: Setup) -> list[dict[str, Any]]:
    listed = run("approvals", "--config", setup.config, "--json")
    assert listed.returncode == 0, listed.stderr
    return [w for w in json.loads(listed.stdout) if w["repository"] == setup.stage]


def test_a_request_names_the_callers_principal_who_may_then_not_approve_it(setup):
    posted = request(setup, as_caller(CAROL))

    assert posted.returncode == 0, posted.stderr
    assert posted.stderr == ""
    assert json.loads(posted.stdout)["detail"]["requested-by"] == CAROL
    event = setup.delivered()
    assert event["detail"]["requested-by"] == CAROL
    handled = run("handle", "-", "--config", setup.config, "--json", stdin=json.dumps(event))
    assert handled.returncode == 1, handled.stderr  # waits for approval
    assert [a["outcome"] for a in json.loads(handled.stdout)["actions"]] == ["gate-pending"]
    [wait] = pending(setup)
    assert wait["requester"] == CAROL

    own = run("approve", wait["wait_id"], "--reason", "mine", env=as_caller(CAROL))

    assert own.returncode == 1, own.stdout + own.stderr
    assert "refused" in own.stderr and "requested" in own.stderr
    assert pending(setup) == [wait]  # nothing recorded
    other = run("approve", wait["wait_id"], "--reason", "checked", env=as_caller(ALICE))
    assert other.returncode == 0, other.stderr  # another approver still may


def test_an_explicit_requested_by_still_wins_over_the_callers_principal(setup):
    posted = request(setup, as_caller(CAROL), "--requested-by", "release-bot")

    assert posted.returncode == 0, posted.stderr
    assert json.loads(posted.stdout)["detail"]["requested-by"] == "release-bot"
    assert setup.delivered()["detail"]["requested-by"] == "release-bot"


@pytest.fixture
def refusing_sts() -> Iterator[str]:
    """An STS endpoint that refuses GetCallerIdentity as STS does (403 AccessDenied)."""

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(403)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(STS_REFUSAL)))
            self.end_headers()
            self.wfile.write(STS_REFUSAL)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def test_when_sts_cannot_say_who_calls_the_old_default_is_used_with_a_one_line_note(setup, refusing_sts):
    env = as_caller(CAROL, AWS_ENDPOINT_URL_STS=refusing_sts, GITHUB_ACTOR="octocat")

    posted = request(setup, env)

    assert posted.returncode == 0, posted.stderr
    assert json.loads(posted.stdout)["detail"]["requested-by"] == "octocat"
    [note] = posted.stderr.splitlines()
    assert note.startswith("promoter: note: requested-by is 'octocat', not your principal ARN")
    assert "GetCallerIdentity" in note and "AccessDenied" in note
    assert setup.delivered()["detail"]["requested-by"] == "octocat"


@pytest.mark.parametrize(
    "principal, answered",
    [
        (CAROL, CAROL),
        (f"arn:aws:iam::{ACCOUNT}:role/release", f"arn:aws:sts::{ACCOUNT}:assumed-role/release/local"),
        ("arn:aws:iam::210987654321:user/mallory", "arn:aws:iam::210987654321:user/mallory"),
    ],
    ids=["user", "role-session", "other-account"],
)
def test_the_local_sts_answers_who_a_principals_keys_stand_for(aws_env, principal, answered):
    keys = credentials_for(principal)
    sts = boto3.client(
        "sts",
        endpoint_url=aws_env.endpoint,
        region_name=REGION,
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
    )

    identity = sts.get_caller_identity()

    assert (identity["Arn"], identity["Account"], identity["UserId"]) == (
        answered,
        keys.principal.account,
        keys.principal.user_id,
    )
