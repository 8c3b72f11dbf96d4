"""Issue 20 on the local AWS, at the engine: approval gates wait, recorded, for distinct people; the
quorum promotes exactly the digest that waited; a rejection, an expiry or a newer request ends the
wait, said in its outcome. Decisions are written as the approval channel writes them
(`promoter.aws.approvals.ApprovalStore`, after `promoter.model.approvals.refusal`), and the channel's
`ApprovalDecided` event resumes the wait through the engine the Lambda runs."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest

from local_aws import images as im
from promoter import settings
from promoter.aws.approvals import ApprovalRefusedError, ApprovalStore
from promoter.aws.gate_store import DynamoDbGates
from promoter.aws.history import DynamoDbHistory
from promoter.aws.idempotency import idempotent_runner, make_persistence
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.aws.results import EventBridgeResults
from promoter.model.approvals import APPROVE, CONFLICT, FORBIDDEN, REJECT, refusal
from promoter.model.config import parse_config
from promoter.model.events import ApprovalDecided, ImageScanned, PromotionRequested
from promoter.model.outcomes import EXPIRED, GATE_PENDING, PROMOTED, REJECTED
from promoter.model.verdicts import APPROVAL_GATE, SCAN_GATE, Waiting
from promoter.workflows import service

pytestmark = pytest.mark.integration

ACCOUNT = "111122223333"
ALICE, BOB, CAROL, DAVE = (
    f"arn:aws:iam::{ACCOUNT}:user/{name}" for name in ("alice", "bob", "carol", "dave")
)
# Two people in one Identity Center role: two approvers.
SSO = f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Release_0a1b/"


class Queue:
    """An EventBridge rule on the default bus (or an SNS topic) -> an SQS queue."""

    def __init__(self, endpoint: str) -> None:
        kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        self.sqs = boto3.client("sqs", **kw)
        self.name = f"appr-{uuid.uuid4().hex[:12]}"
        self.url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self._kw = kw

    def on_events(self, pattern: dict[str, Any]) -> Queue:
        events = boto3.client("events", **self._kw)
        events.put_rule(Name=self.name, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=self.name, Targets=[{"Id": "q", "Arn": self.arn}])
        return self

    def on_topic(self) -> str:
        sns = boto3.client("sns", **self._kw)
        topic = sns.create_topic(Name=self.name)["TopicArn"]
        sns.subscribe(
            TopicArn=topic, Protocol="sqs", Endpoint=self.arn, Attributes={"RawMessageDelivery": "true"}
        )
        return topic

    def drain(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            for msg in self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                got.append(json.loads(msg["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=msg["ReceiptHandle"])
        return got


@pytest.fixture
def repos(ecr, unique_name):
    def make(*prefixes: str) -> list[str]:
        names = [unique_name(p) for p in prefixes]
        for name in names:
            ecr.create_repository(repositoryName=name)
        return names

    return make


class Engine:
    """The Lambda's code path (idempotency, history, results, gates table), and the channel's write."""

    def __init__(self) -> None:
        self.registry = EcrRegistry(make_ecr_client())
        self.run = idempotent_runner(service_promoter(self.registry), make_persistence())
        self.gates = DynamoDbGates()
        self.history = DynamoDbHistory()
        self.store = ApprovalStore()

    def handle(self, event, config) -> service.EventResult:
        return service.handle_event(
            event, config, self.registry, self.run, self.history, EventBridgeResults(), self.gates
        )

    def sweep(self, config) -> service.EventResult:
        return service.sweep_gates(
            config, self.registry, self.run, self.gates, self.history, EventBridgeResults()
        )

    def approval_wait(self, repository: str, digest: str, request_id: str) -> Waiting:
        (found,) = [
            w
            for w in self.gates.waiting_for(repository, digest)
            if w.gate == APPROVAL_GATE and w.event.event_id == request_id
        ]
        return found

    def decide(
        self, wait: Waiting, principal: str, decision: str, config, reason: str = ""
    ) -> service.EventResult:
        """What the channel does for an authenticated `principal`: check, record in one conditional
        write, then the `ApprovalDecided` event resumes the wait. Raises ApprovalRefusedError."""
        now = service.clock()
        current = self.store.find(wait.wait_id)
        if current is None:
            raise ApprovalRefusedError("no such wait", 404)
        refused = refusal(config.rule(current.rule).approval_gate, current, principal, now, decision)
        if refused is not None:
            raise ApprovalRefusedError(refused.reason, refused.code)
        self.store.record(current, principal, decision, reason or f"{decision}d in a test", now)
        decided = ApprovalDecided(
            f"decided-{uuid.uuid4().hex[:8]}", wait.wait_id, wait.repository, wait.digest
        )
        return self.handle(decided, config)


def service_promoter(registry):
    from promoter.workflows.promote import Promoter

    return Promoter(registry)


@pytest.fixture
def engine(aws_env) -> Engine:
    return Engine()


def target_digest(ecr, repository: str, tag: str) -> str | None:
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ImageNotFoundException:
        return None
    return found["imageDetails"][0]["imageDigest"]


def approval_rule(source: str, target: str, **approval: Any) -> dict[str, Any]:
    return {
        "name": "approvals-to-prod",
        "trigger": "request",
        "source": {"repository": source, "tags": ["v*"]},
        "targets": [{"repository": target, "tags": ["{tag}"]}],
        "require": {"approval": {"approvers": [ALICE, BOB, CAROL, DAVE, SSO + "*"], **approval}},
    }


def outcomes(result: service.EventResult) -> list[str]:
    return [r.outcome for r in result.results]


def approvals_evidence(result) -> dict[str, Any]:
    (evidence,) = [e for e in result.evidence if e["gate"] == APPROVAL_GATE]
    return evidence


# --- quorum ------------------------------------------------------------------------------------


def test_min_2_promotes_only_after_two_distinct_people_approved_and_exactly_the_digest_that_waited(
    ecr, pusher, repos, engine
):
    source, target = repos("ci", "prod")
    requested = im.image((301,))
    pusher.push(source, requested, "v1")
    config = parse_config({"rules": [approval_rule(source, target, min=2)]})

    waiting = engine.handle(PromotionRequested("q-1", source, "v1", requested_by=DAVE), config)
    pusher.push(source, im.image((302,)), "v1")  # the tag moves on while people decide
    wait = engine.approval_wait(source, requested.digest, "q-1")
    first = engine.decide(wait, SSO + "alice@example.com", APPROVE, config, reason="looked at the diff")
    with pytest.raises(ApprovalRefusedError) as twice:
        engine.decide(wait, SSO + "alice@example.com", APPROVE, config)
    assert target_digest(ecr, target, "v1") is None
    second = engine.decide(wait, SSO + "bob@example.com", APPROVE, config, reason="release notes ok")

    assert outcomes(waiting) == [GATE_PENDING] and "awaiting approval 0/2" in waiting.results[0].reason
    assert outcomes(first) == [GATE_PENDING] and "awaiting approval 1/2" in first.results[0].reason
    assert twice.value.code == CONFLICT and "already approved" in twice.value.reason
    assert outcomes(second) == [PROMOTED]
    assert target_digest(ecr, target, "v1") == requested.digest  # what waited, not the tag's new digest
    evidence = approvals_evidence(second.results[0])
    assert [(a["by"], a["reason"]) for a in evidence["details"]["approvals"]] == [
        (SSO + "alice@example.com", "looked at the diff"),
        (SSO + "bob@example.com", "release notes ok"),
    ]
    assert evidence["details"]["requester"] == DAVE
    assert [i["uri"].rsplit(":", 1)[0] for i in evidence["inputs"]] == [
        f"urn:ecr-image-promoter:approval:{wait.wait_id}:{SSO}alice@example.com".rsplit(":", 1)[0]
    ] * 2
    assert all(i["digest"].startswith("sha256:") for i in evidence["inputs"])
    assert engine.gates.waiting_for(source, requested.digest) == []  # the wait ended with the promotion
    # The audit: the history says who approved, when and why, and who asked.
    recorded = DynamoDbHistory().for_target(target, "v1")[-1]
    assert recorded["outcome"] == PROMOTED
    assert [a["by"] for a in recorded["approval"]["approvals"]] == [
        SSO + "alice@example.com",
        SSO + "bob@example.com",
    ]
    assert recorded["approval"]["requester"] == DAVE and recorded["approval"]["wait_id"] == wait.wait_id


def test_a_request_naming_tag_and_digest_promotes_that_digest_when_approved_after_the_tag_moved(
    ecr, pusher, repos, engine
):
    """The pair was bound when the request was first handled; what people approve is the digest, so
    the tag moving while they decide does not undo the request."""
    source, target = repos("ci", "prod")
    requested = im.image((310,))
    pusher.push(source, requested, "v1")
    config = parse_config({"rules": [approval_rule(source, target)]})
    request = PromotionRequested("q-9", source, "v1", digest=requested.digest, requested_by=DAVE)

    waiting = engine.handle(request, config)
    pusher.push(source, im.image((311,)), "v1")
    approved = engine.decide(engine.approval_wait(source, requested.digest, "q-9"), ALICE, APPROVE, config)

    assert outcomes(waiting) == [GATE_PENDING]
    assert outcomes(approved) == [PROMOTED]
    assert target_digest(ecr, target, "v1") == requested.digest


def test_the_requester_may_not_approve_their_own_request_and_a_non_approver_may_not_decide(
    ecr, pusher, repos, engine
):
    source, target = repos("ci", "prod")
    image = im.image((303,))
    pusher.push(source, image, "v1")
    config = parse_config({"rules": [approval_rule(source, target)]})
    engine.handle(PromotionRequested("q-2", source, "v1", requested_by=DAVE), config)
    wait = engine.approval_wait(source, image.digest, "q-2")

    refused = {}
    for who in (DAVE, f"arn:aws:iam::{ACCOUNT}:user/mallory", f"arn:aws:iam::{ACCOUNT}:role/Release"):
        with pytest.raises(ApprovalRefusedError) as info:
            engine.decide(wait, who, APPROVE, config)
        refused[who] = (info.value.code, info.value.reason)

    assert refused[DAVE] == (FORBIDDEN, f"{DAVE} requested this promotion and may not approve it")
    assert refused[f"arn:aws:iam::{ACCOUNT}:user/mallory"][0] == FORBIDDEN
    assert refused[f"arn:aws:iam::{ACCOUNT}:role/Release"][0] == FORBIDDEN
    assert engine.store.find(wait.wait_id).data.get("approvals") in (None, {})  # nothing recorded
    assert target_digest(ecr, target, "v1") is None


# --- rejection, expiry, supersession --------------------------------------------------------------


def test_a_rejection_ends_the_wait_as_rejected_announced_blocked_and_nothing_is_written(
    aws_env, ecr, pusher, repos, engine
):
    source, target = repos("ci", "prod")
    image = im.image((304,))
    pusher.push(source, image, "v1")
    config = parse_config({"rules": [approval_rule(source, target, min=2)]})
    results = Queue(aws_env.endpoint).on_events(
        {
            "source": [settings.DEFAULT_REQUEST_EVENT_SOURCE],
            "detail-type": list(settings.RESULT_DETAIL_TYPES),
            "detail": {"target": {"repository-name": [target]}},
        }
    )
    engine.handle(PromotionRequested("q-3", source, "v1", requested_by=DAVE), config)
    wait = engine.approval_wait(source, image.digest, "q-3")
    engine.decide(wait, ALICE, APPROVE, config)

    rejected = engine.decide(wait, BOB, REJECT, config, reason="CVE triage pending")
    with pytest.raises(ApprovalRefusedError) as late:
        engine.decide(wait, CAROL, APPROVE, config)

    assert outcomes(rejected) == [REJECTED]
    assert (
        f"rejected by {BOB}" in rejected.results[0].reason
        and "CVE triage pending" in rejected.results[0].reason
    )
    assert approvals_evidence(rejected.results[0])["details"]["rejection"]["by"] == BOB
    assert late.value.code in (404, CONFLICT)  # the wait ended: nothing to approve any more
    assert target_digest(ecr, target, "v1") is None
    announced = results.drain(3)
    (event,) = [e for e in announced if e["detail"]["outcome"] == REJECTED]
    assert event["detail-type"] == settings.BLOCKED_DETAIL_TYPE
    assert event["detail"]["approval"]["rejection"]["by"] == BOB
    assert event["detail"]["approval"]["rejection"]["reason"] == "CVE triage pending"
    assert [a["by"] for a in event["detail"]["approval"]["approvals"]] == [ALICE]
    history = [i["outcome"] for i in DynamoDbHistory().for_target(target, "v1")]
    assert history[-1] == REJECTED and PROMOTED not in history


def test_a_wait_nobody_decides_in_time_ends_as_expired_on_the_sweep(ecr, pusher, repos, engine, monkeypatch):
    source, target = repos("ci", "prod")
    image = im.image((305,))
    pusher.push(source, image, "v1")
    config = parse_config({"rules": [approval_rule(source, target, min=2, expires_after="30m")]})
    engine.handle(PromotionRequested("q-4", source, "v1", requested_by=DAVE), config)
    wait = engine.approval_wait(source, image.digest, "q-4")
    engine.decide(wait, ALICE, APPROVE, config)

    later = time.time() + 31 * 60
    monkeypatch.setattr(service, "clock", lambda: later)
    with pytest.raises(ApprovalRefusedError) as late:
        engine.decide(wait, BOB, APPROVE, config)
    swept = engine.sweep(config)
    again = engine.sweep(config)

    assert late.value.code == CONFLICT and "expired" in late.value.reason
    mine = [r for r in swept.results if r.target_repository == target]
    assert [r.outcome for r in mine] == [EXPIRED]
    assert "1/2 approval(s)" in mine[0].reason and "a new request starts a new wait" in mine[0].reason
    assert not [r for r in again.results if r.target_repository == target]
    assert target_digest(ecr, target, "v1") is None


def test_a_newer_request_for_the_same_target_supersedes_the_older_wait(
    ecr, pusher, repos, engine, monkeypatch
):
    source, target = repos("ci", "prod")
    older_image, newer_image = im.image((306,)), im.image((307,))
    config = parse_config({"rules": [approval_rule(source, target)]})
    pusher.push(source, older_image, "v1")
    engine.handle(PromotionRequested("q-5", source, "v1", requested_by=DAVE), config)
    pusher.push(source, newer_image, "v1")
    engine.handle(PromotionRequested("q-6", source, "v1", requested_by=DAVE), config)
    older = engine.approval_wait(source, older_image.digest, "q-5")
    newer = engine.approval_wait(source, newer_image.digest, "q-6")

    with pytest.raises(ApprovalRefusedError) as refused:
        engine.decide(older, ALICE, APPROVE, config)
    monkeypatch.setattr(service, "clock", lambda: time.time() + 1)
    swept = engine.sweep(config)
    promoted = engine.decide(newer, ALICE, APPROVE, config)

    assert refused.value.code == CONFLICT and "superseded by request q-6" in refused.value.reason
    ended = [r for r in swept.results if r.target_repository == target]
    assert [r.outcome for r in ended] == [EXPIRED] and "superseded by request q-6" in ended[0].reason
    assert ended[0].source_digest == older_image.digest
    assert outcomes(promoted) == [PROMOTED]
    assert target_digest(ecr, target, "v1") == newer_image.digest


# --- with a scan gate ------------------------------------------------------------------------------


@pytest.mark.parametrize("first", [SCAN_GATE, APPROVAL_GATE])
def test_a_scan_gate_and_an_approval_gate_each_wait_and_resume_in_either_order(
    aws_env, ecr, pusher, repos, engine, first
):
    source, target = repos("ci", "prod")
    image = im.image((308,))
    pusher.push(source, image, "v1")
    rule = approval_rule(source, target)
    rule["require"]["scan"] = {"max_severity": "HIGH", "timeout_minutes": 60}
    config = parse_config({"rules": [rule]})

    waiting = engine.handle(PromotionRequested("q-7", source, "v1", requested_by=DAVE), config)
    held = {w.gate: w for w in engine.gates.waiting_for(source, image.digest)}
    steps = []
    for gate in (first, ({SCAN_GATE, APPROVAL_GATE} - {first}).pop()):
        if gate == SCAN_GATE:
            aws_env.control.set_scan_findings(source, image.digest, [{"name": "CVE-1", "severity": "LOW"}])
            steps.append(
                engine.handle(ImageScanned(f"scan-{first}", source, image.digest, "COMPLETE"), config)
            )
        else:
            steps.append(engine.decide(held[APPROVAL_GATE], ALICE, APPROVE, config))

    assert outcomes(waiting) == [GATE_PENDING] and set(held) == {SCAN_GATE, APPROVAL_GATE}
    assert held[SCAN_GATE].deadline != held[APPROVAL_GATE].deadline  # each gate waits on its own
    assert [outcomes(s) for s in steps] == [[GATE_PENDING], [PROMOTED]]
    assert target_digest(ecr, target, "v1") == image.digest
    assert engine.gates.waiting_for(source, image.digest) == []


# --- notification ----------------------------------------------------------------------------------


def test_the_first_hold_tells_the_approvers_once_with_the_approve_command(
    aws_env, ecr, pusher, repos, engine
):
    source, target = repos("ci", "prod")
    image = im.image((309,))
    pusher.push(source, image, "v1")
    inbox = Queue(aws_env.endpoint)
    topic = inbox.on_topic()
    config = parse_config({"rules": [approval_rule(source, target, min=2, notify=topic)]})

    request = PromotionRequested("q-8", source, "v1", requested_by=DAVE)
    engine.handle(request, config)
    engine.handle(request, config)  # a redelivery: the same wait, nobody told twice
    wait = engine.approval_wait(source, image.digest, "q-8")
    engine.decide(wait, ALICE, APPROVE, config)  # a resume: still pending, nobody told again

    messages = inbox.drain(2, timeout=3.0)
    assert len(messages) == 1
    text = json.dumps(messages[0])
    assert f"promoter approve {wait.wait_id}" in text and image.digest in text and DAVE in text
    assert f"{target}:v1" in text


def test_people_are_asked_only_once_the_machine_checks_passed_and_are_told_what_they_found(
    aws_env, ecr, pusher, repos, engine
):
    source, target = repos("ci", "prod")
    image = im.image((312,))
    pusher.push(source, image, "v1")
    inbox = Queue(aws_env.endpoint)
    rule = approval_rule(source, target, notify=inbox.on_topic())
    rule["require"]["scan"] = {"max_severity": "HIGH"}
    config = parse_config({"rules": [rule]})

    engine.handle(PromotionRequested("q-10", source, "v1", requested_by=DAVE), config)
    before_scan = inbox.drain(1, timeout=1.0)
    aws_env.control.set_scan_findings(source, image.digest, [{"name": "CVE-2", "severity": "LOW"}])
    engine.handle(ImageScanned("scan-10", source, image.digest, "COMPLETE"), config)
    after_scan = inbox.drain(1)

    assert before_scan == []  # the scan was pending: nobody is asked yet
    (message,) = after_scan
    text = message["content"]["description"]
    assert (
        "`scan` `passed`" in text
        and f"promoter approve {engine.approval_wait(source, image.digest, 'q-10').wait_id}" in text
    )


def test_notify_alarm_topic_tells_the_stacks_alarm_topic(aws_env, ecr, pusher, repos, engine, monkeypatch):
    from promoter.gates.approval import ALARM_TOPIC_ENV

    source, target = repos("ci", "prod")
    image = im.image((313,))
    pusher.push(source, image, "v1")
    inbox = Queue(aws_env.endpoint)
    monkeypatch.setenv(ALARM_TOPIC_ENV, inbox.on_topic())
    config = parse_config({"rules": [approval_rule(source, target, notify="alarm-topic")]})

    engine.handle(PromotionRequested("q-11", source, "v1", requested_by=DAVE), config)

    (message,) = inbox.drain(1)
    assert message["metadata"]["additionalContext"]["digest"] == image.digest


def test_the_newer_request_wins_whichever_scan_finishes_first(
    aws_env, ecr, pusher, repos, engine, monkeypatch
):
    """Which request is newer is when its wait began: the older request's scan finishing first does
    not make its wait the one people are asked about."""
    source, target = repos("ci", "prod")
    older_image, newer_image = im.image((314,)), im.image((315,))
    inbox = Queue(aws_env.endpoint)
    rule = approval_rule(source, target, notify=inbox.on_topic())
    rule["require"]["scan"] = {"max_severity": "HIGH"}
    config = parse_config({"rules": [rule]})
    pusher.push(source, older_image, "v1")
    engine.handle(PromotionRequested("q-12", source, "v1", requested_by=DAVE), config)
    pusher.push(source, newer_image, "v1")
    started = time.time()
    monkeypatch.setattr(service, "clock", lambda: started + 5)  # the newer request, handled later
    engine.handle(PromotionRequested("q-13", source, "v1", requested_by=DAVE), config)

    for image in (older_image, newer_image):  # the older scan first
        aws_env.control.set_scan_findings(source, image.digest, [])
        engine.handle(ImageScanned(f"scan-{image.digest[7:15]}", source, image.digest, "COMPLETE"), config)
    older = engine.approval_wait(source, older_image.digest, "q-12")
    with pytest.raises(ApprovalRefusedError) as refused:
        engine.decide(older, ALICE, APPROVE, config)
    promoted = engine.decide(engine.approval_wait(source, newer_image.digest, "q-13"), ALICE, APPROVE, config)

    assert refused.value.code == CONFLICT and "superseded by request q-13" in refused.value.reason
    told = inbox.drain(2, timeout=2.0)
    assert [m["metadata"]["additionalContext"]["digest"] for m in told] == [newer_image.digest]
    assert outcomes(promoted) == [PROMOTED] and target_digest(ecr, target, "v1") == newer_image.digest
