"""Scan gates: promote only an image whose scan is complete with no finding above the rule's
`max_severity`; an image whose scan is not complete waits, recorded, and resumes on its scan event.

Nothing is lost and nothing loops:
- a gated promotion whose scan is not complete is written to the gates table as a scan wait (one
  record per image, rule, gate and request: `promoter.model.verdicts.Waiting`), with the event that
  asked for it (a request by tag is stored with the digest resolved then) and a deadline;
- an `ECR Image Scan` / `Inspector2 Scan` event for that image resumes the scan waits on it: each
  waiting event runs again through the normal path (idempotency included); a final verdict
  (passed, blocked) removes the record;
- after the deadline the promotion gives up with `gate-timeout` (checked whenever the waiting
  event is run again, and by the periodic sweep); the record's TTL cleans up whatever is left.
A put is conditional, so a redelivered event never extends its own deadline. The table itself is
`promoter.aws.gate_store.DynamoDbGates`.

DescribeImageScanFindings refused for want of a grant is no reason to wait or to hand the event
back: the verdict is `failed`, naming the gate and the missing grant.
"""

from __future__ import annotations

import hashlib
import json

from promoter.aws.registry import Registry, ScanReport
from promoter.exceptions import AccessDeniedError
from promoter.gates.base import GateDeps, GateImage
from promoter.model.config import NO_FINDINGS, ScanGate
from promoter.model.events import Event, ImageScanned
from promoter.model.verdicts import (
    BLOCKED,
    FAILED,
    PASSED,
    PENDING,
    SCAN_GATE,
    Evidence,
    GateStore,
    Verdict,
    Waiting,
    image_key,
)

__all__ = ["ScanCheck", "check_scan", "make_gate"]

SCAN_FINDINGS_ACTION = "ecr:DescribeImageScanFindings"


class ScanCheck:
    """The scan gate of one rule (`require.scan`)."""

    name = SCAN_GATE
    resumed_by = ImageScanned

    def __init__(self, gate: ScanGate, deps: GateDeps) -> None:
        self.gate = gate
        self.timeout_minutes: int | None = gate.timeout_minutes
        self._registry = deps.registry

    def decide(self, image: GateImage, waiting: Waiting | None = None) -> Verdict:
        return check_scan(self._registry, image.repository, image.digest, self.gate)

    def waits_resumed_by(self, event: Event, store: GateStore) -> list[Waiting]:
        """A finished scan resumes the scan waits on its image."""
        if not isinstance(event, ImageScanned):
            return []
        return [w for w in store.waiting_for(event.repository, event.digest) if w.gate == SCAN_GATE]


def make_gate(config: ScanGate, deps: GateDeps) -> ScanCheck:
    return ScanCheck(config, deps)


def check_scan(registry: Registry, repository: str, digest: str, gate: ScanGate) -> Verdict:
    """Reads the image's scan findings (DescribeImageScanFindings on the source repository)."""
    where = image_key(repository, digest)
    try:
        report = registry.scan_findings(repository, digest)
    except AccessDeniedError as exc:
        reason = (
            f"the scan gate cannot read the findings of {where}: {SCAN_FINDINGS_ACTION} was refused "
            f"(the promoter's role lacks that grant on repository {repository}): {exc}"
        )
        return Verdict(
            FAILED, reason, Evidence(SCAN_GATE, reason, details={"missing_grant": SCAN_FINDINGS_ACTION})
        )
    evidence = _evidence(repository, digest, report, gate)
    if not report.complete:
        reason = f"waiting for the scan of {where} (status {report.status}), until its scan event"
        return Verdict(PENDING, reason, evidence)
    blocking = gate.blocking(report.counts)
    if blocking:
        counts = ", ".join(f"{n} {s}" for s, n in blocking.items())
        allowed = "no findings" if gate.max_severity == NO_FINDINGS else f"up to {gate.max_severity}"
        reason = f"scan of {where} found {counts} (rule allows {allowed})"
        return Verdict(BLOCKED, reason, evidence)
    return Verdict(PASSED, "", evidence)


def _evidence(repository: str, digest: str, report: ScanReport, gate: ScanGate) -> Evidence:
    """The findings read, as an input (`ecr://<repo>@<digest>/scan-findings`, with the sha256 of
    the canonical JSON of the status and counts read), and the counts and status as details."""
    counts = dict(sorted(report.counts.items()))
    read = {"imageScanStatus": report.status, "findingSeverityCounts": counts}
    canonical = json.dumps(read, sort_keys=True, separators=(",", ":")).encode()
    blocking = gate.blocking(report.counts) if report.complete else {}
    total = sum(counts.values())
    summary = f"scan {report.status}: {total} finding(s), max_severity {gate.max_severity}"
    return Evidence(
        SCAN_GATE,
        summary,
        (
            {
                "uri": f"ecr://{repository}@{digest}/scan-findings",
                "digest": "sha256:" + hashlib.sha256(canonical).hexdigest(),
            },
        ),
        {
            "status": report.status,
            "counts": counts,
            "blocking": dict(blocking),
            "max_severity": gate.max_severity,
        },
    )
