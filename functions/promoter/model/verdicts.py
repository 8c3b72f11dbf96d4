"""What a gate answers, what it contributes to the record, and what waits: the values every layer
shares (the gates, the gates table adapter, the workflows, the CLI), with no I/O.

- `Verdict`: one gate's answer for one image. States: `passed`; `blocked` (scan findings above the
  threshold); `pending` (not decided yet: the promotion waits, recorded); `unverified` (no signature
  a listed verifier accepts); `rejected` (a person said no: final); `expired` (a wait ran past its
  deadline: final); `failed` (the gate cannot decide, and a retry would not help: a missing grant, a
  disabled key; named, logged at ERROR and counted as `GateFailures`). Only `passed` lets an
  action run.
- `Evidence`: what a gate that decided contributes to the history, the result event and the
  attestation: a summary, the inputs it read (`{uri, digest}` descriptors) and gate-specific details.
- `Waiting`: one promotion waiting on one gate (one record per image, rule, gate and request), with
  its own deadline and the gate's data kept on the record (an approval gate's approvals).
- `GateStore`: where waits are kept (`promoter.aws.gate_store.DynamoDbGates` on the gates table).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from promoter.model.events import Event, ImagePushed, PromotionRequested

PASSED, BLOCKED, PENDING, UNVERIFIED = "passed", "blocked", "pending", "unverified"
REJECTED, EXPIRED, FAILED = "rejected", "expired", "failed"
# Verdicts that end a promotion for good (nothing resumes it): every state but passed and pending.
FINAL_REFUSALS = frozenset({BLOCKED, UNVERIFIED, REJECTED, EXPIRED, FAILED})

SIGNATURE_GATE, SCAN_GATE, APPROVAL_GATE = "signature", "scan", "approval"
# The order a rule's gates run in: the signature first (final at once, a few reads: an unsigned
# image is refused without waiting for its scan), the scan second, approval last (people are asked
# only about images the machine checks did not refuse).
GATE_ORDER = (SIGNATURE_GATE, SCAN_GATE, APPROVAL_GATE)

# A wait's short id (`promoter approve <wait_id>`): this many lowercase hex characters of
# sha256("<pk>|<sk>"), stable for a record's whole life.
WAIT_ID_CHARS = 12


@dataclass(frozen=True)
class Evidence:
    """What a gate that decided contributes to history, results and the attestation.

    `inputs` are descriptors of what it read, each `{"uri": ..., "digest": "sha256:..."}` (the
    signature manifest, the scan findings as `ecr://<repo>@<digest>/scan-findings` with the sha256
    of their canonical JSON, each approval); `details` its own facts (scan: status, counts,
    blocking; signature: verifier, identity, signed_digest, signed_at; approval: approvers)."""

    gate: str
    summary: str
    inputs: tuple[Mapping[str, str], ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (what `ActionResult.evidence` holds, with the verdict's state beside it)."""
        return {
            "gate": self.gate,
            "summary": self.summary,
            "inputs": [dict(i) for i in self.inputs],
            "details": json.loads(json.dumps(dict(self.details), default=str)),
        }


@dataclass(frozen=True)
class Verdict:
    """A gate's answer for one image. `reason` says why, in words a release manager reads;
    `evidence` what the gate read and found (None: nothing worth recording)."""

    state: str
    reason: str = ""
    evidence: Evidence | None = None

    @property
    def passed(self) -> bool:
        return self.state == PASSED

    @property
    def final(self) -> bool:
        """Decided for good: passed, or refused in a way no later event changes."""
        return self.state != PENDING

    @property
    def blocking(self) -> dict[str, int]:
        """A scan's finding counts above the threshold (empty for any other gate)."""
        details = self.evidence.details if self.evidence else {}
        return {str(k): int(v) for k, v in (details.get("blocking") or {}).items()}

    @property
    def signature(self) -> dict[str, str] | None:
        """The signature that verified (verifier, identity, signed_digest, signed_at), for a
        passed signature gate; else None."""
        if self.state != PASSED or self.evidence is None or self.evidence.gate != SIGNATURE_GATE:
            return None
        return {k: str(v) for k, v in self.evidence.details.items() if v is not None}

    def record(self, gate: str) -> dict[str, Any]:
        """This verdict as one entry of `ActionResult.evidence`: the gate, its state and reason,
        and its evidence (the reason as the summary when it has none)."""
        evidence = self.evidence or Evidence(gate, self.reason)
        return {**evidence.to_dict(), "gate": gate, "state": self.state, "reason": self.reason}


@dataclass(frozen=True)
class Waiting:
    """A promotion waiting on one gate: the event to run again, when to give up, and the gate's
    data kept on the record (e.g. an approval gate's approvals). `legacy`: a record written before
    waits were kept per gate (`sk` = "<rule>#<event_id>", no `gate`): a scan wait."""

    repository: str
    digest: str
    rule: str
    gate: str
    event: Event
    deadline: float  # epoch seconds
    wait_id: str = ""  # derived from the record's key when not given
    data: Mapping[str, Any] = field(default_factory=dict)
    legacy: bool = False

    def __post_init__(self) -> None:
        if not self.wait_id:
            object.__setattr__(self, "wait_id", wait_id_of(self.pk, self.sk))

    @property
    def pk(self) -> str:
        return image_key(self.repository, self.digest)

    @property
    def sk(self) -> str:
        if self.legacy:
            return f"{self.rule}#{self.event.event_id}"
        return f"{self.rule}#{self.gate}#{self.event.event_id}"

    @property
    def image(self) -> str:
        return image_key(self.repository, self.digest)


class GateStore(Protocol):
    """Where waiting promotions are kept, one record per (image, rule, gate, request)."""

    def hold(self, waiting: Waiting) -> Waiting:
        """Records the wait unless it is recorded already (a redelivery never extends a
        deadline); returns the record that holds, with its deadline and data."""
        ...

    def waiting_for(self, repository: str, digest: str) -> list[Waiting]:
        """Every wait on this image, whatever the gate."""
        ...

    def find(self, wait_id: str) -> Waiting | None:
        """The wait with this id (None: no such wait, or it ended)."""
        ...

    def expired(self, now: float) -> list[Waiting]:
        """Every wait past its own deadline, whatever the gate."""
        ...

    def release(self, waiting: Waiting) -> None:
        """Ends the wait: nothing resumes it again."""
        ...


def image_key(repository: str, digest: str) -> str:
    return f"{repository}@{digest}"


def wait_id_of(pk: str, sk: str) -> str:
    """A wait's short stable id: WAIT_ID_CHARS hex characters of sha256("<pk>|<sk>")."""
    return hashlib.sha256(f"{pk}|{sk}".encode()).hexdigest()[:WAIT_ID_CHARS]


def event_to_item(event: Event) -> dict[str, Any]:
    """The waiting event as plain data (a push or a request)."""
    kind = "push" if isinstance(event, ImagePushed) else "request"
    return {"kind": kind, **asdict(event)}


def event_from_item(data: dict[str, Any]) -> Event:
    fields = {k: v for k, v in data.items() if k != "kind"}
    return ImagePushed(**fields) if data["kind"] == "push" else PromotionRequested(**fields)
