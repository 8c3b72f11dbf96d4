"""Issue 20 item 0 on the local AWS: the gate family waits per gate. A rule with a scan gate and a
second waiting gate (`hold`, a small gate registered here only, resumed like an approval gate: by
an `ApprovalDecided` naming its wait, its decision kept on its own record) holds one record per
gate, each with its own deadline; it resumes on each gate's event in either order; the sweep ends
each wait on its own deadline, naming that gate; and a scan wait recorded before waits were kept
per gate (`sk` "<rule>#<event>", no `gate`) still resumes on its scan event."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import boto3
import pytest

from local_aws import images as im
from promoter import settings
from promoter.aws.gate_store import DynamoDbGates
from promoter.aws.history import DynamoDbHistory
from promoter.aws.idempotency import idempotent_runner, make_persistence
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.gates import base
from promoter.gates.base import GateDeps, GateImage, GateKind
from promoter.model.config import parse_config
from promoter.model.events import ApprovalDecided, Event, ImageScanned, PromotionRequested
from promoter.model.outcomes import GATE_PENDING, GATE_TIMEOUT, PROMOTED
from promoter.model.verdicts import PASSED, PENDING, SCAN_GATE, Evidence, GateStore, Verdict, Waiting
from promoter.workflows import service
from promoter.workflows.promote import Promoter
from tests.integration.test_release_workflows import (  # noqa: F401 - engine and repos are fixtures
    engine,
    repos,
    target_digest,
)

pytestmark = pytest.mark.integration

HOLD_GATE = "hold"
RELEASED = "released"  # the hold gate's data on its record: set (as a channel would) to let it pass


@dataclass(frozen=True)
class HoldConfig:
    timeout_minutes: int


class HoldCheck:
    """A waiting gate for these tests: pending until its own record says `released`, resumed by
    the `ApprovalDecided` that names its wait (as an approval gate is)."""

    name = HOLD_GATE
    resumed_by = ApprovalDecided
    decides_from_record = True  # its decision is on its record: kept until the outcome is final

    def __init__(self, config: HoldConfig, deps: GateDeps) -> None:
        self.timeout_minutes: int | None = config.timeout_minutes

    def decide(self, image: GateImage, waiting: Waiting | None = None) -> Verdict:
        if waiting is not None and waiting.data.get(RELEASED):
            return Verdict(
                PASSED, "released", Evidence(HOLD_GATE, "released", details={"wait": waiting.wait_id})
            )
        return Verdict(PENDING, f"held ({waiting.wait_id if waiting else 'nothing recorded'})")

    def waits_resumed_by(self, event: Event, store: GateStore) -> list[Waiting]:
        found = store.find(event.wait_id) if isinstance(event, ApprovalDecided) else None
        return [found] if found is not None and found.gate == HOLD_GATE else []


def make_gate(config: HoldConfig, deps: GateDeps) -> HoldCheck:
    return HoldCheck(config, deps)


HOLD_MINUTES = {"held-release": 30, "held-briefly": 1}  # rule name -> the hold gate's timeout


@pytest.fixture
def hold_gate(monkeypatch) -> None:
    """The `hold` kind in the gate registry, for the rules named in HOLD_MINUTES only."""
    kind = GateKind(
        HOLD_GATE,
        __name__,
        waits=True,
        config_of=lambda rule: HoldConfig(HOLD_MINUTES[rule.name]) if rule.name in HOLD_MINUTES else None,
    )
    monkeypatch.setitem(base.GATE_KINDS, HOLD_GATE, kind)


def two_gates(source: str, target: str, name: str = "held-release", scan_minutes: int = 60) -> Any:
    rule = {
        "name": name,
        "trigger": "request",
        "source": {"repository": source, "tags": ["*"]},
        "targets": [{"repository": target, "tags": ["{tag}"]}],
        "require": {"scan": {"max_severity": "HIGH", "timeout_minutes": scan_minutes}},
    }
    return parse_config({"rules": [rule]})


def gates_table() -> Any:
    return boto3.resource("dynamodb").Table(settings.gates_table_name())


def records_of(source: str, digest: str) -> dict[str, dict[str, Any]]:
    """The gates table's items of one image, by gate ('scan (old)' for an old-format record)."""
    from boto3.dynamodb.conditions import Key

    items = gates_table().query(KeyConditionExpression=Key("pk").eq(f"{source}@{digest}"))["Items"]
    return {str(item.get("gate", "scan (old)")): item for item in items}


def release(record: dict[str, Any]) -> ApprovalDecided:
    """Writes the hold gate's decision on its record, as a channel would, and the event it sends."""
    gates_table().update_item(
        Key={"pk": record["pk"], "sk": record["sk"]},
        UpdateExpression="SET #r = :yes",
        ExpressionAttributeNames={"#r": RELEASED},
        ExpressionAttributeValues={":yes": True},
    )
    repository, _, digest = str(record["pk"]).rpartition("@")
    return ApprovalDecided(f"decided-{record['wait_id']}", str(record["wait_id"]), repository, digest)


@pytest.mark.parametrize("first", [SCAN_GATE, HOLD_GATE])
def test_two_waiting_gates_each_hold_their_own_record_and_resume_on_their_own_event_in_either_order(
    aws_env,
    ecr,
    pusher,
    repos,  # noqa: F811
    engine,  # noqa: F811
    hold_gate,
    first,
):
    source, target = repos("ci", "prod")
    image = im.image((64,))
    pusher.push(source, image, "v1")
    config = two_gates(source, target)
    before = time.time()

    waiting = engine(PromotionRequested(f"req-{first}", source, "v1", requested_by="ci"), config)

    assert [r.outcome for r in waiting.results] == [GATE_PENDING]
    held = records_of(source, image.digest)
    assert set(held) == {SCAN_GATE, HOLD_GATE}
    for gate, minutes in ((SCAN_GATE, 60), (HOLD_GATE, 30)):  # each its own deadline and id
        assert held[gate]["sk"] == f"held-release#{gate}#req-{first}"
        assert before + minutes * 60 - 5 <= int(held[gate]["deadline"]) <= time.time() + minutes * 60 + 5
    assert held[SCAN_GATE]["wait_id"] != held[HOLD_GATE]["wait_id"]
    assert all(len(str(r["wait_id"])) == 12 for r in held.values())

    def scan_completes() -> Any:
        aws_env.control.set_scan_findings(source, image.digest, [{"name": "CVE-1", "severity": "LOW"}])
        return engine(ImageScanned(f"scan-{first}", source, image.digest, "COMPLETE"), config)

    def hold_released() -> Any:
        return engine(release(records_of(source, image.digest)[HOLD_GATE]), config)

    steps = [scan_completes, hold_released] if first == SCAN_GATE else [hold_released, scan_completes]
    middle = steps[0]()
    assert [r.outcome for r in middle.results] == [GATE_PENDING]
    still = records_of(source, image.digest)
    if first == SCAN_GATE:  # the scan passed: its wait ended; the hold waits on
        assert set(still) == {HOLD_GATE} and "held" in middle.results[0].reason
    else:  # released while the scan waits: the hold's record (its decision) is kept, the scan waits on
        assert set(still) == {SCAN_GATE, HOLD_GATE} and still[HOLD_GATE].get(RELEASED) is True
        assert "waiting for the scan" in middle.results[0].reason
    assert target_digest(ecr, target, "v1") is None

    done = steps[1]()

    (promoted,) = done.results
    assert promoted.outcome == PROMOTED and target_digest(ecr, target, "v1") == image.digest
    assert records_of(source, image.digest) == {}  # every wait of the request ended
    said = {e["gate"]: e["state"] for e in promoted.evidence}
    assert said == {SCAN_GATE: PASSED, HOLD_GATE: PASSED}


def test_a_redelivered_request_extends_neither_gates_deadline(
    aws_env,
    ecr,
    pusher,
    repos,  # noqa: F811
    engine,  # noqa: F811
    hold_gate,
    monkeypatch,
):
    source, target = repos("ci", "prod")
    image = im.image((64,))
    pusher.push(source, image, "v1")
    config = two_gates(source, target)
    request = PromotionRequested("req-again", source, "v1")
    engine(request, config)
    first = {gate: int(r["deadline"]) for gate, r in records_of(source, image.digest).items()}

    later = time.time() + 600
    monkeypatch.setattr(service, "clock", lambda: later)
    again = engine(request, config)

    assert [r.outcome for r in again.results] == [GATE_PENDING]
    assert {gate: int(r["deadline"]) for gate, r in records_of(source, image.digest).items()} == first
    assert set(first) == {SCAN_GATE, HOLD_GATE}


@pytest.mark.parametrize(
    ("rule", "scan_minutes", "late"), [("held-briefly", 60, HOLD_GATE), ("held-release", 1, SCAN_GATE)]
)
def test_the_sweep_ends_each_wait_on_its_own_deadline_naming_its_gate(
    aws_env,
    ecr,
    pusher,
    repos,  # noqa: F811
    engine,  # noqa: F811
    hold_gate,
    monkeypatch,
    rule,
    scan_minutes,
    late,
):
    source, target = repos("ci", "prod")
    image = im.image((64,))
    pusher.push(source, image, "v1")
    config = two_gates(source, target, rule, scan_minutes)
    engine(PromotionRequested(f"req-{late}", source, "v1"), config)
    held = records_of(source, image.digest)
    later = time.time() + 120  # past the 1-minute gate's deadline only

    store = DynamoDbGates()
    expired = [w for w in store.expired(later) if w.repository == source]
    assert [w.gate for w in expired] == [late]  # the other gate's wait has its own, later deadline

    monkeypatch.setattr(service, "clock", lambda: later)
    registry = EcrRegistry(make_ecr_client())
    run = idempotent_runner(Promoter(registry), make_persistence())
    swept = service.sweep_gates(config, registry, run, store, DynamoDbHistory())
    again = service.sweep_gates(config, registry, run, store)

    (ended,) = [r for r in swept.results if r.target_repository == target]
    assert ended.outcome == GATE_TIMEOUT
    assert ended.reason.startswith(f"the {late} gate of {source}@{image.digest} did not decide within 1 min")
    assert records_of(source, image.digest) == {}  # a final outcome ends the other gate's wait too
    assert not [r for r in again.results if r.target_repository == target]
    assert target_digest(ecr, target, "v1") is None
    assert set(held) == {SCAN_GATE, HOLD_GATE}


def test_a_scan_wait_recorded_before_waits_were_kept_per_gate_still_resumes_on_its_scan_event(
    aws_env,
    ecr,
    pusher,
    repos,  # noqa: F811
    engine,  # noqa: F811
):
    source, target = repos("ci", "prod")
    image = im.image((64,))
    pusher.push(source, image, "v1")
    config = two_gates(source, target, "release")
    waiting_event = PromotionRequested("old-req", source, "v1", image.digest, tag_resolved=True)
    deadline = int(time.time()) + 3600
    old = {  # as promoter.aws.gate_store wrote it before issue 20: no gate, no wait_id
        "pk": f"{source}@{image.digest}",
        "sk": "release#old-req",
        "rule": "release",
        "event": json.dumps({"kind": "request", **asdict(waiting_event)}),
        "deadline": deadline,
        "expiration": deadline + 24 * 3600,
    }
    gates_table().put_item(Item=old)

    (read,) = DynamoDbGates().waiting_for(source, image.digest)
    assert (read.gate, read.legacy, read.event, read.deadline) == (SCAN_GATE, True, waiting_event, deadline)

    aws_env.control.set_scan_findings(source, image.digest, [])
    resumed = engine(ImageScanned("scan-old", source, image.digest, "COMPLETE"), config)

    assert [r.outcome for r in resumed.results] == [PROMOTED]
    assert target_digest(ecr, target, "v1") == image.digest
    assert records_of(source, image.digest) == {}  # the old record ended with it
