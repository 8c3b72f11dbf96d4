"""Gates: what must hold of an image before a rule promotes it. One interface for every kind.

A gate looks at the source image (for an index, the index digest: what the tag names) and answers
with a `Verdict`. A rule's gates run in `GATE_ORDER`, before any write, and the first verdict that
is not `passed` decides the action's outcome:

1. `signature` first: its verdict is final at once (a signature is there and verifies, or not),
   and it costs a few reads. An unsigned image is refused straight away instead of waiting, maybe
   an hour, for its scan and being refused then; and only verified images ever hold a scan wait.
2. `scan` second: it may answer `pending` and hold the promotion until the image's scan event.

Verdict states: `passed`; `blocked` (scan findings above the threshold); `pending` (scan not
complete: the promotion waits, see `promoter.gates.scan`); `unverified` (no signature that a listed
verifier accepts). Only `passed` lets an action run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from promoter.aws.registry import Registry
from promoter.model.config import Rule

PASSED, BLOCKED, PENDING, UNVERIFIED = "passed", "blocked", "pending", "unverified"
SIGNATURE_GATE, SCAN_GATE = "signature", "scan"
# The order a rule's gates run in (see the module docstring for why).
GATE_ORDER = (SIGNATURE_GATE, SCAN_GATE)


@dataclass(frozen=True)
class Verdict:
    """A gate's answer for one image.

    `reason` says why, in words a release manager reads; `status` is the scan's status as ECR spells
    it; `blocking` the scan's finding counts above the threshold; `signature` the signature that
    verified (verifier, identity, signed_digest, signed_at)."""

    state: str
    reason: str = ""
    status: str = ""
    blocking: Mapping[str, int] = field(default_factory=dict)
    signature: Mapping[str, str] | None = None

    @property
    def passed(self) -> bool:
        return self.state == PASSED


@dataclass(frozen=True)
class GateImage:
    """The image a gate decides on: the source repository and the digest being promoted."""

    repository: str
    digest: str

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"


class Gate(Protocol):
    """One kind of gate, configured for one rule. `timeout_minutes`: how long a `pending` verdict
    may wait (None: this gate never answers `pending`)."""

    name: str
    timeout_minutes: int | None

    def decide(self, image: GateImage, registry: Registry) -> Verdict:
        """The verdict for `image`, reading the source `registry`. Raises only retryable
        `PromoterError`s (the event is handed back); everything else is a verdict."""
        ...


def gates_of(rule: Rule) -> tuple[Gate, ...]:
    """The rule's gates, in GATE_ORDER. The signature gate's module (and its verifiers' heavy
    dependencies) is imported only for a rule that has one."""
    gates: dict[str, Gate] = {}
    if rule.signature_gate is not None:
        from promoter.gates.signature import SignatureCheck

        gates[SIGNATURE_GATE] = SignatureCheck(rule.signature_gate)
    if rule.scan_gate is not None:
        from promoter.gates.scan import ScanCheck

        gates[SCAN_GATE] = ScanCheck(rule.scan_gate)
    return tuple(gates[name] for name in GATE_ORDER if name in gates)
