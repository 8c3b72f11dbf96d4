"""Scan gates: promote only an image whose scan is complete with no finding above the rule's
`max_severity`; an image whose scan is not complete waits, recorded, and resumes on its scan event.

Nothing is lost and nothing loops:
- a gated promotion whose scan is not complete is written to the gates table, keyed on the image
  (`pk` = "<repository>@<digest>") and the rule and request (`sk`), with the event that asked for
  it (a request by tag is stored with the digest resolved then) and a deadline;
- an `ECR Image Scan` / `Inspector2 Scan` event for that image re-runs each waiting event through
  the normal path (idempotency included); a final verdict (passed, blocked) removes the record;
- after the deadline the promotion gives up with `gate-timeout` (checked whenever the waiting
  event is run again, and by the periodic sweep); the record's TTL cleans up whatever is left.
A put is conditional, so a redelivered event never extends its own deadline. The table itself is
`promoter.aws.gate_store.DynamoDbGates`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from promoter.aws.registry import Registry
from promoter.gates.base import BLOCKED, PASSED, PENDING, SCAN_GATE, GateImage, Verdict
from promoter.model.config import NO_FINDINGS, ScanGate
from promoter.model.events import Event, ImagePushed, PromotionRequested


class ScanCheck:
    """The scan gate of one rule (`require.scan`)."""

    name = SCAN_GATE

    def __init__(self, gate: ScanGate) -> None:
        self.gate = gate
        self.timeout_minutes: int | None = gate.timeout_minutes

    def decide(self, image: GateImage, registry: Registry) -> Verdict:
        return check_scan(registry, image.repository, image.digest, self.gate)


def check_scan(registry: Registry, repository: str, digest: str, gate: ScanGate) -> Verdict:
    """Reads the image's scan findings (DescribeImageScanFindings on the source repository)."""
    where = f"{repository}@{digest}"
    report = registry.scan_findings(repository, digest)
    if not report.complete:
        return Verdict(
            PENDING,
            f"waiting for the scan of {where} (status {report.status}), until its scan event",
            status=report.status,
        )
    blocking = gate.blocking(report.counts)
    if blocking:
        counts = ", ".join(f"{n} {s}" for s, n in blocking.items())
        allowed = "no findings" if gate.max_severity == NO_FINDINGS else f"up to {gate.max_severity}"
        reason = f"scan of {where} found {counts} (rule allows {allowed})"
        return Verdict(BLOCKED, reason, status=report.status, blocking=blocking)
    return Verdict(PASSED, status=report.status)


@dataclass(frozen=True)
class Waiting:
    """A promotion waiting for a scan: the event to run again and when to give up."""

    repository: str
    digest: str
    rule: str
    event: Event
    deadline: float  # epoch seconds


class GateStore(Protocol):
    """Where waiting promotions are kept."""

    def hold(self, waiting: Waiting) -> Waiting: ...
    def waiting_for(self, repository: str, digest: str) -> list[Waiting]: ...
    def expired(self, now: float) -> list[Waiting]: ...
    def release(self, waiting: Waiting) -> None: ...


def image_key(repository: str, digest: str) -> str:
    return f"{repository}@{digest}"


def event_to_item(event: Event) -> dict[str, Any]:
    kind = "push" if isinstance(event, ImagePushed) else "request"
    return {"kind": kind, **asdict(event)}


def event_from_item(data: dict[str, Any]) -> Event:
    fields = {k: v for k, v in data.items() if k != "kind"}
    return ImagePushed(**fields) if data["kind"] == "push" else PromotionRequested(**fields)
