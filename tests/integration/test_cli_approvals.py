"""The people's side of the approval gate, as processes on the local AWS: `promoter approvals` lists
what waits, two people approve with their own credentials (`promoter local credentials
--principal`), `status`, `history` and `graph` show it; an unknown id, a second approval and the
requester's own approval are refused, and a refusal changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from local_aws import images as im
from local_aws.approvals import APPROVALS_PATH, serve_approvals
from promoter import approval_handler, settings
from promoter.model.config import load_config

pytestmark = pytest.mark.integration

PROMOTER = [sys.executable, "-m", "promoter_cli.main"]
ACCOUNT = "123456789012"
REGION = "us-east-1"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
CAROL = f"arn:aws:iam::{ACCOUNT}:user/carol"  # an approver, and the requester below
DAVE = f"arn:aws:iam::{ACCOUNT}:user/dave"  # no approver of any rule
MALLORY = "arn:aws:iam::210987654321:user/mallory"  # another account's: no approver either
UNKNOWN_WAIT = "0123456789ab"
# A rule name of this file's own: waits it leaves in the local AWS's gates table are no other
# test's (status lists a rule's waits by its name).
RULE = "release-sign-off"


def run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args],
        env=env or dict(os.environ),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def as_principal(arn: str) -> dict[str, str]:
    """This process's environment with the keys `promoter local credentials --principal ARN` prints."""
    printed = run("local", "credentials", "--principal", arn)
    assert printed.returncode == 0, printed.stderr
    env = dict(os.environ)
    for line in printed.stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = value
    return env


def write_config(path: Path, stage: str, prod: str, notify: str | None = None) -> str:
    """RULE: a request rule with a scan gate and an approval gate of alice, bob and carol, min 2."""
    entries = ", ".join(f"'{a}'" for a in (ALICE, BOB, CAROL))
    notified = f", notify: '{notify}'" if notify else ""
    path.write_text(
        "rules:\n"
        f"  - name: {RULE}\n    trigger: request\n"
        f"    source: {{repository: {stage}, tags: ['v*']}}\n"
        "    require:\n"
        "      scan: {max_severity: HIGH}\n"
        f"      approval: {{approvers: [{entries}], min: 2, expires_after: 24h{notified}}}\n"
        f"    targets: [{{repository: {prod}, tags: ['{{tag}}', current]}}]\n"
    )
    return str(path)


@dataclass(frozen=True)
class Setup:
    stage: str
    prod: str
    config: str
    image: im.Manifest
    notifications: Any  # (sqs, queue url): the rule's notify topic's subscriber

    def notified(self) -> list[dict[str, Any]]:
        sqs, url = self.notifications
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def setup(aws_env, ecr, unique_name, pusher, tmp_path, monkeypatch) -> Iterator[Setup]:
    """stage (an image v1.4.2, scanned: one LOW finding) -(RULE: scan + 2 approvals)-> prod; the
    rule's notify topic with an SQS subscriber; the approval channel served on the local AWS as
    `promoter local --config` serves it (its handler runs in this process, reading its
    configuration and tables from this process's environment, as in Lambda)."""
    stage, prod = unique_name("stage"), unique_name("prod")
    for name in (stage, prod):
        ecr.create_repository(repositoryName=name)
    image = im.image((211,))
    pusher.push(stage, image, "v1.4.2")
    assert aws_env.control.set_scan_findings(stage, image.digest, [{"name": "CVE-1", "severity": "LOW"}])
    kw: dict[str, Any] = {"endpoint_url": aws_env.endpoint, "region_name": REGION}
    sns, sqs = boto3.client("sns", **kw), boto3.client("sqs", **kw)
    name = f"approvers-{uuid.uuid4().hex[:10]}"
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    config = write_config(tmp_path / "promotion.yaml", stage, prod, notify=topic)
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, config)
    approval_handler.runtime.cache_clear()
    assert serve_approvals(aws_env.function_urls, load_config(config), account=ACCOUNT, region=REGION)
    try:
        yield Setup(stage, prod, config, image, (sqs, queue))
    finally:
        aws_env.function_urls.remove(APPROVALS_PATH)
        approval_handler.runtime.cache_clear()


def pending(setup: Setup) -> list[dict[str, Any]]:
    listed = run("approvals", "--config", setup.config, "--json")
    assert listed.returncode == 0, listed.stderr
    return [w for w in json.loads(listed.stdout) if w["repository"] == setup.stage]


def decide(decision: str, wait_id: str, who: str, reason: str) -> subprocess.CompletedProcess[str]:
    return run(decision, wait_id, "--reason", reason, env=as_principal(who))


def request_and_hold(setup: Setup) -> list[dict[str, Any]]:
    """carol requests v1.4.2 for RULE; the promoter handles it: both targets wait for approval."""
    request = run("event", "request", f"{setup.stage}:v1.4.2", "--rule", RULE, "--requested-by", CAROL)
    handled = run("handle", "-", "--config", setup.config, "--json", stdin=request.stdout)
    assert handled.returncode == 1, handled.stderr  # not promoted (yet)
    return json.loads(handled.stdout)["actions"]


def test_two_people_approve_with_their_own_credentials_and_approvals_status_history_show_it(setup):
    actions = request_and_hold(setup)
    assert [a["outcome"] for a in actions] == ["gate-pending", "gate-pending"]
    [wait] = pending(setup)
    [message] = setup.notified()
    assert f"promoter approve {wait['wait_id']} --reason" in message["content"]["description"]
    assert (wait["rule"], wait["digest"], wait["requester"]) == (RULE, setup.image.digest, CAROL)
    assert (wait["gates_passed"], wait["approvals"], wait["min"]) == (["scan"], [], 2)
    table = run("approvals", "--config", setup.config).stdout
    assert wait["wait_id"] in table and "0/2" in table and CAROL in table

    first = decide("approve", wait["wait_id"], ALICE, "release notes checked")

    assert first.returncode == 0, first.stderr
    assert f"approved {wait['wait_id']}: 1/2 approvals" in first.stdout
    [after_one] = pending(setup)
    assert [(a["by"], a["reason"]) for a in after_one["approvals"]] == [(ALICE, "release notes checked")]
    status = run("status", "--config", setup.config, "--rule", RULE)
    assert status.returncode == 0, status.stderr
    assert f"awaiting approval 1/2 until {wait['expires']}" in status.stdout
    [rule] = json.loads(run("status", "--config", setup.config, "--json").stdout)["rules"]
    # Other tests' waits of this rule may be in the table: this test's are on its own repository.
    [shown] = [w for w in rule["waiting"] if w["repository"] == setup.stage]
    assert (shown["gate"], shown["wait_id"], shown["approvals"], shown["min"]) == (
        "approval",
        wait["wait_id"],
        1,
        2,
    )

    second = decide("approve", wait["wait_id"], BOB, "canary is green")

    assert second.returncode == 0, second.stderr
    assert "2/2 approvals (approved)" in second.stdout
    assert pending(setup) == []
    # The channel announced the decision on the bus; the stack routes it to the promoter, which
    # runs the waiting request again: here `promoter handle` is that delivery.
    decided = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "source": "image-promoter.approvals",
        "detail-type": "Promotion Approval Decided",
        "account": ACCOUNT,
        "region": REGION,
        "time": "2026-12-06T18:00:00Z",
        "resources": [],
        "detail": {"wait-id": wait["wait_id"], "repository": setup.stage, "digest": setup.image.digest},
    }
    resumed = run("handle", "-", "--config", setup.config, "--json", stdin=json.dumps(decided))
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert [a["outcome"] for a in json.loads(resumed.stdout)["actions"]] == ["promoted", "promoted"]

    history = run("history", "--repository", setup.prod, "--json")
    assert history.returncode == 0, history.stderr
    promoted = [r for r in json.loads(history.stdout) if r["outcome"] == "promoted"]
    assert len(promoted) == 2
    decisions = [(a["by"], a["reason"]) for a in promoted[0]["approval"]["approvals"]]
    assert decisions == [(ALICE, "release notes checked"), (BOB, "canary is green")]
    assert all(a["at"] for a in promoted[0]["approval"]["approvals"])
    assert promoted[0]["approval"]["requester"] == CAROL
    table = run("history", "--repository", setup.prod).stdout
    assert f"approved by {ALICE} at " in table and ": canary is green" in table


def test_an_unknown_wait_exits_2_and_the_requester_a_second_approval_and_an_outsider_exit_1_changing_nothing(
    setup,
):
    request_and_hold(setup)
    [wait] = pending(setup)
    assert decide("approve", wait["wait_id"], ALICE, "ok").returncode == 0
    [before] = pending(setup)

    unknown = decide("approve", UNKNOWN_WAIT, BOB, "ok")
    malformed = decide("approve", "not-a-wait", BOB, "ok")
    requester = decide("approve", wait["wait_id"], CAROL, "my own")
    twice = decide("approve", wait["wait_id"], ALICE, "again")
    not_approver = decide("approve", wait["wait_id"], DAVE, "me too")
    outsider = decide("approve", wait["wait_id"], MALLORY, "me too")

    assert (unknown.returncode, malformed.returncode) == (2, 2)
    assert UNKNOWN_WAIT in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1
    assert "is not a wait id" in malformed.stderr
    assert requester.returncode == 1 and "refused" in requester.stderr and "requested" in requester.stderr
    assert twice.returncode == 1 and "already approved" in twice.stderr
    assert not_approver.returncode == 1 and f"{DAVE} is not an approver" in not_approver.stderr
    # Refused by AWS before the channel runs: the function URL's policy admits only approvers.
    assert outsider.returncode == 1 and "AWS did not let your credentials call" in outsider.stderr
    assert pending(setup) == [before]  # nothing changed: still alice's one approval of 2


def test_graph_draws_the_approval_gate_between_the_machine_checks_and_the_targets(tmp_path):
    config = write_config(tmp_path / "promotion.yaml", "stage", "prod")

    result = run("graph", "--config", config)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    [hexagon] = [line for line in lines if "{{" in line]
    gate = hexagon.split("{{", 1)[0].strip()
    assert hexagon.endswith('{{"approval: 2 of user/alice, user/bob, user/carol within 1d"}}')
    [into] = [line for line in lines if line.endswith(f" {gate}")]
    assert f'|"{RULE}<br/>request<br/>scan up to HIGH"|' in into
    [out] = [line for line in lines if line.strip().startswith(f"{gate} ")]
    assert out.strip().endswith("n1_prod") and "current" in out


def test_approve_finds_the_channel_in_the_stacks_approval_url_output(aws_env):
    from tests.integration.test_operator_cli import deploy_outputs

    nobody = "http://127.0.0.1:9/approvals/"  # the discard port: nothing answers there
    stack = deploy_outputs(aws_env.endpoint, {settings.OUTPUT_APPROVAL_URL: nobody})

    result = run("approve", UNKNOWN_WAIT, "--reason", "ok", "--stack", stack)

    assert result.returncode == 1
    assert f"the approval channel {nobody} did not answer" in result.stderr


def test_a_rejection_ends_the_wait_and_a_later_approval_is_refused_with_exit_1(setup):
    request_and_hold(setup)
    [wait] = pending(setup)

    rejected = decide("reject", wait["wait_id"], BOB, "CVE-1 is exploitable here")
    late = decide("approve", wait["wait_id"], ALICE, "ok")

    assert rejected.returncode == 0, rejected.stderr
    assert f"rejected {wait['wait_id']}" in rejected.stdout and "(rejected)" in rejected.stdout
    assert late.returncode == 1 and "already rejected" in late.stderr
    assert pending(setup) == []  # decided: no longer open
    assert run("approvals", "--config", setup.config, "--rule", "nope").returncode == 2


def test_approving_where_no_channel_is_served_says_so_in_one_line_and_exits_2(aws_env):
    # No rule of this local AWS has an approval gate: nothing serves the channel's path.
    result = run("approve", UNKNOWN_WAIT, "--reason", "ok", env=as_principal(ALICE))

    assert result.returncode == 2
    assert result.stderr.startswith("promoter: no approval channel at ") and "<html" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_wait_whose_scan_is_still_pending_lists_the_scan_as_pending_not_passed(setup, pusher):
    unscanned = im.image((212,))
    pusher.push(setup.stage, unscanned, "v2.0.0")  # no findings set: its scan has not completed
    request = run("event", "request", f"{setup.stage}:v2.0.0", "--rule", RULE, "--requested-by", CAROL)
    assert run("handle", "-", "--config", setup.config, stdin=request.stdout).returncode == 1

    [wait] = [w for w in pending(setup) if w["digest"] == unscanned.digest]

    assert (wait["gates_passed"], wait["gates_pending"]) == ([], ["scan"])
    assert "(scan pending)" in run("approvals", "--config", setup.config).stdout
