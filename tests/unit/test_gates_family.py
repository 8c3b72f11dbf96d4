"""Issue 20 item 0: the gate family's values and registry, without AWS. Gates are built from a
registry of gate modules keyed by name, in GATE_ORDER (a kind registered later runs after them),
importing a gate's module only for a rule that has one; a wait is keyed per gate with a stable short
id (an old record keeps its old key); a verdict carries its gate's evidence, from which the result's
`signature` and `gates` are derived; `ApprovalDecided` is parsed from the approval channel's event;
a gate that failed counts GateFailures."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from promoter.exceptions import EventError
from promoter.gates import base
from promoter.gates.base import GateDeps, GateImage, GateKind, gate_names, gates_of, waiting_gate_names
from promoter.metrics import (
    EXPIRED_METRIC,
    FAILED_METRIC,
    GATE_FAILURES_METRIC,
    REJECTED_METRIC,
    record_event_result,
)
from promoter.model.config import parse_config
from promoter.model.events import ApprovalDecided, IgnoredEvent, PromotionRequested, parse_event
from promoter.model.outcomes import (
    EXPIRED,
    FAILED,
    FAILED_OUTCOMES,
    PROMOTED,
    REJECTED,
    ActionResult,
    gates_said,
    signature_of,
)
from promoter.model.verdicts import (
    FAILED as FAILED_VERDICT,
)
from promoter.model.verdicts import (
    GATE_ORDER,
    PASSED,
    PENDING,
    SCAN_GATE,
    SIGNATURE_GATE,
    UNVERIFIED,
    Evidence,
    Verdict,
    Waiting,
)
from promoter.workflows.service import EventResult

DIGEST = "sha256:" + "ab" * 32
KMS_KEY = "awskms:///arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
LATE_MODULE = "tests.unit.no_such_gate_module"  # never imported: its rule has no such gate


def rule(name: str = "release", **require: Any) -> Any:
    data = {
        "name": name,
        "trigger": "request",
        "source": {"repository": "app", "tags": ["v*"]},
        "targets": [{"repository": "app-prod"}],
    }
    if require:
        data["require"] = require
    return parse_config({"rules": [data]})


@dataclass(frozen=True)
class LateConfig:
    pass


class LateGate:
    name = "late"
    timeout_minutes: int | None = None

    def decide(self, image: GateImage, waiting: Waiting | None = None) -> Verdict:
        return Verdict(PASSED)


def make_gate(config: LateConfig, deps: GateDeps) -> LateGate:
    return LateGate()


def test_gates_are_built_from_the_registry_in_gate_order_with_a_later_kind_last(monkeypatch):
    config = rule(scan={"max_severity": "HIGH"}, signature={"cosign": {"keys": [KMS_KEY]}})
    (gated,) = config.rules
    late = GateKind("late", __name__, config_of=lambda r: LateConfig() if r.name == "release" else None)
    monkeypatch.setitem(base.GATE_KINDS, "late", late)

    built = gates_of(gated, GateDeps(registry=None))  # type: ignore[arg-type]  # nothing is read here

    assert [g.name for g in built] == [SIGNATURE_GATE, SCAN_GATE, "late"]
    assert GATE_ORDER == (SIGNATURE_GATE, SCAN_GATE, "approval")
    assert gate_names(gated) == (SIGNATURE_GATE, SCAN_GATE, "late")


def test_a_gate_module_is_imported_only_for_a_rule_that_has_that_gate(monkeypatch):
    monkeypatch.setitem(base.GATE_KINDS, "late", GateKind("late", LATE_MODULE))  # rules never say `late`
    (plain,) = rule().rules

    assert gates_of(plain, GateDeps(registry=None)) == ()  # type: ignore[arg-type]
    assert LATE_MODULE not in sys.modules


def test_the_waiting_gates_of_a_configuration_decide_whether_the_stack_sweeps():
    assert waiting_gate_names(rule(scan={"max_severity": "HIGH"})) == (SCAN_GATE,)
    assert waiting_gate_names(rule(signature={"cosign": {"keys": [KMS_KEY]}})) == ()
    assert waiting_gate_names(rule()) == ()


def test_a_wait_is_keyed_per_gate_with_a_short_stable_id_and_an_old_record_keeps_its_key():
    event = PromotionRequested("req-1", "app", "v1", DIGEST, tag_resolved=True)
    scan = Waiting("app", DIGEST, "release", SCAN_GATE, event, 100.0)
    approval = Waiting("app", DIGEST, "release", "approval", event, 200.0)
    old = Waiting("app", DIGEST, "release", SCAN_GATE, event, 100.0, legacy=True)

    assert (scan.pk, scan.sk, old.sk) == (f"app@{DIGEST}", "release#scan#req-1", "release#req-1")
    assert scan.wait_id == hashlib.sha256(f"app@{DIGEST}|release#scan#req-1".encode()).hexdigest()[:12]
    assert len({scan.wait_id, approval.wait_id, old.wait_id}) == 3
    assert Waiting("app", DIGEST, "release", SCAN_GATE, event, 999.0).wait_id == scan.wait_id  # stable


def test_the_approval_channels_event_is_parsed_and_only_from_its_source():
    envelope = {
        "id": "e-1",
        "source": "image-promoter.approvals",
        "detail-type": "Promotion Approval Decided",
        "detail": {"wait-id": "0123456789ab", "repository": "app", "digest": DIGEST},
    }

    assert parse_event(envelope) == ApprovalDecided("e-1", "0123456789ab", "app", DIGEST)
    assert isinstance(parse_event({**envelope, "source": "someone.else"}), IgnoredEvent)
    with pytest.raises(EventError, match="wait-id"):
        parse_event({**envelope, "detail": {"repository": "app", "digest": DIGEST}})


SIGNED = {
    "verifier": "cosign",
    "identity": "awskms:///arn:aws:kms:us-east-1:1:key/k",
    "signed_digest": DIGEST,
}


def test_the_results_signature_and_gates_are_derived_from_the_verdicts_evidence():
    signature = Verdict(
        PASSED,
        "cosign signature by k (tag sha256-ab.sig)",
        Evidence(SIGNATURE_GATE, "cosign", ({"uri": "ecr://app@sha256:cd", "digest": "sha256:cd"},), SIGNED),
    )
    scan = Verdict(PASSED, "", Evidence(SCAN_GATE, "scan COMPLETE", details={"counts": {"LOW": 1}}))
    evidence = (signature.record(SIGNATURE_GATE), scan.record(SCAN_GATE))

    assert signature.signature == SIGNED == signature_of(evidence)
    assert gates_said(evidence) == {
        SIGNATURE_GATE: "passed: cosign signature by k (tag sha256-ab.sig)",
        SCAN_GATE: "passed",
    }
    assert evidence[0]["inputs"] == [{"uri": "ecr://app@sha256:cd", "digest": "sha256:cd"}]
    unverified = Verdict(UNVERIFIED, "no signature of app").record(SIGNATURE_GATE)
    assert signature_of((unverified,)) is None
    assert gates_said((unverified,)) == {SIGNATURE_GATE: "unverified: no signature of app"}
    result = _result(PROMOTED, evidence)  # as the idempotency record keeps and hands it back
    assert ActionResult.from_dict(result.to_dict()) == result


def _result(outcome: str, evidence: tuple[dict[str, Any], ...] | None = None) -> ActionResult:
    return ActionResult("release", "app", "v1", DIGEST, "app-prod", "v1", outcome, evidence=evidence)


def _emitted(*results: ActionResult) -> dict[str, float]:
    metrics = Metrics(namespace="Test", service="test")
    metrics.clear_metrics()
    record_event_result(metrics, EventResult("e-1", results))
    emf = metrics.serialize_metric_set()
    metrics.clear_metrics()
    return {m["Name"]: sum(emf[m["Name"]]) for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def test_a_gate_that_failed_counts_gate_failures_besides_the_failure():
    failed_gate = Verdict(FAILED_VERDICT, "the scan gate cannot read the findings").record(SCAN_GATE)
    pending = Verdict(PENDING, "waiting").record(SCAN_GATE)

    assert _emitted(_result(FAILED, (failed_gate,))) == {FAILED_METRIC: 1.0, GATE_FAILURES_METRIC: 1.0}
    assert _emitted(_result(FAILED, (pending,))) == {FAILED_METRIC: 1.0}  # the write failed, not a gate
    assert _emitted(_result(REJECTED), _result(EXPIRED)) == {REJECTED_METRIC: 1.0, EXPIRED_METRIC: 1.0}
    assert {REJECTED, EXPIRED} <= FAILED_OUTCOMES
