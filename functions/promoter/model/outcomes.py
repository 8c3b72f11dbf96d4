"""What happened to one promotion action: the value the CLI prints and the Lambda stores.

Plain JSON-serialisable data (`to_dict`), because Powertools idempotency stores the result of a
promotion in DynamoDB and hands it back verbatim on a duplicate delivery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from promoter.model.plan import Action
from promoter.model.verdicts import PASSED, SIGNATURE_GATE

PROMOTED = "promoted"
ALREADY_PRESENT = "already-present"
CONFLICT = "conflict"
FAILED = "failed"
SKIPPED = "skipped"
# Left where it is by design, a success: a floating tag that holds a higher version (a backport, a
# pre-release), or a target that holds a newer push of the same rule (a late or redriven event).
KEPT = "kept"
# Scan gates (issue 5): a finding above the rule's max_severity; a scan not complete yet.
BLOCKED = "blocked"
GATE_PENDING = "gate-pending"
GATE_TIMEOUT = "gate-timeout"
# Signature gates (issue 11): no signature that a listed verifier accepts. Final: never retried.
UNVERIFIED = "unverified"
# Issue 20: a person rejected the promotion (approval gate): final. A wait that ran past its
# deadline without a decision: final; a new request starts a new wait.
REJECTED = "rejected"
EXPIRED = "expired"
# Issue 18: a tag of a target repository written or moved by anything but the promoter (a push no
# promotion of ours explains: promoter.workflows.out_of_band). Announced, counted, recorded; not a
# promotion, and not a failure of one.
FOREIGN = "foreign"
OUTCOMES = (
    PROMOTED,
    ALREADY_PRESENT,
    KEPT,
    CONFLICT,
    FAILED,
    SKIPPED,
    BLOCKED,
    GATE_PENDING,
    GATE_TIMEOUT,
    UNVERIFIED,
    REJECTED,
    EXPIRED,
    FOREIGN,
)
SUCCESSFUL_OUTCOMES = frozenset({PROMOTED, ALREADY_PRESENT, KEPT})
# Final failures: a gate that never opened is one too (a pending one is still "blocked").
FAILED_OUTCOMES = frozenset({FAILED, CONFLICT, GATE_TIMEOUT, REJECTED, EXPIRED})

# Free text that reaches result events (PutEvents: 256 KB a call) and history items (DynamoDB: 400 KB
# an item) is cut to these many UTF-8 bytes, with TRUNCATION_MARKER saying how much was cut, so an
# entry and an item always fit whatever a requester sends.
MAX_REASON_BYTES = 4096
MAX_REQUESTED_BY_BYTES = 1024
MAX_METADATA_BYTES = 16384
TRUNCATION_MARKER = "...[truncated {} bytes]"


def clip(text: str, max_bytes: int) -> str:
    """`text` if it fits in `max_bytes` of UTF-8, else its head and the marker (within the limit)."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    marker = TRUNCATION_MARKER.format(len(data))
    head = data[: max(0, max_bytes - len(marker.encode("utf-8")))]
    return head.decode("utf-8", errors="ignore") + marker


def target_location(repository: str, account: str | None = None, region: str | None = None) -> str:
    """A repository, qualified when it is in another registry: `app@210987654321`, `app@eu-west-1`,
    `app@210987654321,eu-west-1` (history keys keep registries apart)."""
    registry = ",".join(part for part in (account, region) if part)
    return f"{repository}@{registry}" if registry else repository


@dataclass(frozen=True)
class CopyStats:
    """What a cross-repository copy moved; all zero for a retag."""

    blobs_mounted: int = 0
    blobs_copied: int = 0
    bytes_copied: int = 0
    manifests_put: int = 0


def gates_said(evidence: tuple[dict[str, Any], ...] | None) -> dict[str, str] | None:
    """What each gate decided, in a few words (`passed`, `unverified: <why>`), from the evidence."""
    if not evidence:
        return None
    return {e["gate"]: f"{e['state']}: {e['reason']}" if e.get("reason") else e["state"] for e in evidence}


def signature_of(evidence: tuple[dict[str, Any], ...] | None) -> dict[str, str] | None:
    """The signature that passed the signature gate (verifier, identity, signed_digest, ...), from
    the evidence; None when no signature gate passed."""
    for entry in evidence or ():
        if entry.get("gate") == SIGNATURE_GATE and entry.get("state") == PASSED:
            return {str(k): str(v) for k, v in (entry.get("details") or {}).items() if v is not None}
    return None


@dataclass(frozen=True)
class ActionResult:
    """The outcome of one action. `target_digest` is the digest the target tag points at afterwards
    (for a conflict: the digest that holds the tag)."""

    rule: str
    source_repository: str
    source_tag: str
    source_digest: str
    target_repository: str
    target_tag: str
    outcome: str
    target_digest: str | None = None
    reason: str | None = None
    stats: CopyStats = CopyStats()
    replayed: bool = False  # answered from the idempotency record of an earlier run
    # Blocked by a scan gate: the finding counts above the rule's max_severity, by severity.
    blocking_findings: dict[str, int] | None = None
    # A target in another account or region (issue 6); None: the promoter's own.
    target_account: str | None = None
    target_region: str | None = None
    # Passed a signature gate: the signature that verified (verifier, identity, signed_digest,
    # signed_at), so history and result events say who vouched for the promoted digest. Derived
    # from `evidence` (the signature gate's details).
    signature: dict[str, str] | None = None
    # `promoter plan` only: what each of the rule's gates would decide, by gate name (derived from
    # `evidence`: "<state>: <reason>", `gates_said`).
    gates: dict[str, str] | None = None
    # What each of the rule's gates that decided found, in gate order (promoter.model.verdicts:
    # `Verdict.record`): {gate, state, reason, summary, inputs: [{uri, digest}], details}. For history,
    # result events and the attestation; None when the rule has no gate.
    evidence: tuple[dict[str, Any], ...] | None = None
    # A `foreign` write only: the digest the promoter last placed on the tag (None: none), and when
    # the write happened (the push event's time).
    expected_digest: str | None = None
    written_at: str | None = None
    # Issue 19: the digest of the promotion attestation (an OCI referrer of the promoted digest in
    # the target repository) that this promotion wrote or found; None: none (not promoted, or no key).
    attestation: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome in SUCCESSFUL_OUTCOMES

    @property
    def target_location(self) -> str:
        """The target repository, qualified when it is in another registry (`target_location`)."""
        return target_location(self.target_repository, self.target_account, self.target_region)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_attestation(self, digest: str | None) -> ActionResult:
        """This result naming the attestation written or found for it (None: unchanged)."""
        return self if digest is None else replace(self, attestation=digest)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionResult:
        evidence = data.get("evidence")
        return cls(
            **{
                **data,
                "stats": CopyStats(**data.get("stats") or {}),
                "evidence": tuple(evidence) if evidence is not None else None,
            }
        )

    @classmethod
    def not_run(cls, action: Action) -> ActionResult:
        """The result of an action planned not to run: `kept` when that is by design (a pre-release
        never moves a floating tag), else `skipped` with the reason."""
        outcome = KEPT if action.kept_by_design else SKIPPED
        return cls.for_action(action, outcome, reason=action.skip_reason)

    @classmethod
    def for_action(
        cls,
        action: Action,
        outcome: str,
        *,
        target_digest: str | None = None,
        reason: str | None = None,
        stats: CopyStats | None = None,
        blocking_findings: dict[str, int] | None = None,
        signature: dict[str, str] | None = None,
        evidence: tuple[dict[str, Any], ...] | None = None,
    ) -> ActionResult:
        return cls(
            rule=action.rule,
            source_repository=action.source.repository,
            source_tag=action.source.tag,
            source_digest=action.source.digest,
            target_repository=action.target_repository,
            target_tag=action.target_tag,
            outcome=outcome,
            target_digest=target_digest,
            reason=reason,
            stats=stats or CopyStats(),
            blocking_findings=blocking_findings,
            signature=signature,
            evidence=evidence,
            target_account=action.target_account,
            target_region=action.target_region,
        )
