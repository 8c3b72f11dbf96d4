"""Approval gates, the pure part: who may decide a waiting promotion, and when the quorum is there.

A rule's `require: approval:` names its approvers as IAM principal ARNs or ARN patterns. What
counts is a *person*: the principal ARN AWS authenticated for the caller, as IAM reports it
(case-sensitive). For IAM Identity Center and any other role a person assumes,
`arn:aws:sts::<account>:assumed-role/<role>/<session>` is that session's person, so two people in
one role are two approvers, while one person approving twice counts once. An approver entry may be:

- an exact caller ARN: an IAM user (`arn:aws:iam::<account>:user/<name>`), a role session
  (`arn:aws:sts::<account>:assumed-role/<role>/<session>`), a federated user, or the account root;
- an IAM role (`arn:aws:iam::<account>:role/[path/]<role>`): every session of that role, each
  session a person of its own;
- a pattern: `*` (any run of characters) and `?` (one character) in the resource part, matched
  like IAM's `ArnLike` (each colon-separated part on its own, case-sensitive).

The account is never a wildcard (as for `requesters`: "any account" is nobody's intent).

The requester of a promotion is the principal ARN the request names (`requested-by`); a request
that names no ARN (a push: ECR's event does not say who pushed) has an unknown requester, and then
any approver may approve (the history says the requester was unknown). With
`requester_may_approve: false` (the default) an approver who *is* the requester is refused.

Everything here is pure: the engine (promoter.gates.approval) and the approval channel
(promoter.aws.approvals) both decide with these functions, so they cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from promoter.model.verdicts import APPROVAL_GATE

APPROVE, REJECT = "approve", "reject"
DECISIONS = (APPROVE, REJECT)
DEFAULT_MIN_APPROVERS = 1
DEFAULT_EXPIRES_AFTER = "24h"
MAX_EXPIRES_AFTER = "7d"
# `notify: alarm-topic`: the stack's alarm topic rather than a topic of the rule's own.
ALARM_TOPIC = "alarm-topic"
# HTTP status codes of a refused decision, as the approval channel answers them: the caller may not
# decide this wait at all (not an approver, the requester), or the wait is past deciding.
FORBIDDEN = 403
CONFLICT = 409
# The wait record's approval attributes (promoter.aws.approvals writes them, the gate reads them).
REQUESTER_KEY = "requester"
APPROVALS_KEY = "approvals"
REJECTION_KEY = "rejection"
SUPERSEDED_BY_KEY = "superseded_by"
TARGET_KEY = "target"
# Set once, when the first delivery holding the wait told the approvers (promoter.aws.approval_waits).
ANNOUNCED_KEY = "announced_at"

_PARTITION = r"aws(-[a-z-]+)?"
_ACCOUNT = r"(?P<account>\d{12})"
# A caller AWS can authenticate: what `requestContext.authorizer.iam.userArn` may hold.
CALLER_ARN_PATTERN = re.compile(
    rf"arn:{_PARTITION}:(iam::\d{{12}}:(root|user/[\w+=,.@/-]{{1,512}})"
    rf"|sts::\d{{12}}:(assumed-role/[\w+=,.@-]{{1,64}}/[\w+=,.@-]{{2,64}}|federated-user/[\w+=,.@-]{{2,32}}))"
)
# An approver entry as written: the service and account literal, the resource may hold `*` and `?`
# after its type (`assumed-role/AWSReservedSSO_Release_*/*`).
APPROVER_PATTERN = re.compile(
    rf"arn:{_PARTITION}:(iam::\d{{12}}:(root|(user|role)/[\w+=,.@/*?-]{{1,512}})"
    rf"|sts::\d{{12}}:(assumed-role|federated-user)/[\w+=,.@/*?-]{{1,512}})"
)
_ROLE = re.compile(
    rf"arn:(?P<partition>{_PARTITION}):iam::{_ACCOUNT}:role/(?:[\w+=,.@/*?-]*/)?(?P<name>[^/]+)"
)
_DURATION = re.compile(r"(?P<count>[1-9][0-9]*)(?P<unit>[mhd])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 24 * 3600}


def parse_duration(text: object) -> int | None:
    """`30m`, `24h`, `7d` -> seconds; None when it is not such a duration (zero is not one)."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    return int(match["count"]) * _UNIT_SECONDS[match["unit"]] if match else None


DEFAULT_EXPIRES_AFTER_SECONDS = parse_duration(DEFAULT_EXPIRES_AFTER) or 0
MAX_EXPIRES_AFTER_SECONDS = parse_duration(MAX_EXPIRES_AFTER) or 0


@dataclass(frozen=True)
class ApprovalGate:
    """`require: {approval: ...}`: promote only once `min` distinct approvers approved, before
    `expires_after` seconds have passed; one rejection ends the wait. `notify`: the SNS topic ARN
    told when a wait begins, `ALARM_TOPIC` for the stack's alarm topic, None for no notification."""

    approvers: tuple[str, ...]
    min: int = DEFAULT_MIN_APPROVERS
    requester_may_approve: bool = False
    expires_after: int = DEFAULT_EXPIRES_AFTER_SECONDS
    notify: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "approvers": list(self.approvers),
            "min": self.min,
            "requester_may_approve": self.requester_may_approve,
            "expires_after": format_duration(self.expires_after),
        }
        return data | ({"notify": self.notify} if self.notify else {})

    def is_approver(self, principal: str) -> bool:
        """Whether an authenticated caller is one of the gate's approvers (a person: see `person_of`)."""
        return person_of(principal) is not None and any(
            principal_matches(entry, principal) for entry in self.approvers
        )


class ApprovalWait(Protocol):
    """What the checks read of a wait (promoter.model.verdicts.Waiting is one)."""

    @property
    def deadline(self) -> float: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Approval:
    """One recorded decision: who (the principal ARN), when (ISO 8601, UTC) and why."""

    principal: str
    at: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"by": self.principal, "at": self.at, "reason": self.reason}


@dataclass(frozen=True)
class Refusal:
    """Why a caller may not decide a wait: `code` FORBIDDEN (not theirs to decide) or CONFLICT
    (the wait is past deciding, or they decided it already)."""

    code: int
    reason: str


def format_duration(seconds: int) -> str:
    """Seconds in the largest unit `parse_duration` reads back exactly (`86400` -> `1d`)."""
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"  # never parsed: a gate's expiry is always whole minutes


def principal_matches(pattern: str, arn: str) -> bool:
    """Whether a principal ARN matches an approver entry: IAM's `ArnLike` (each of the six
    colon-separated parts matched on its own, `*` any run of characters, `?` one, case-sensitive),
    and an IAM role ARN also matches every session of that role
    (`arn:aws:sts::<account>:assumed-role/<role>/<session>`)."""
    role = _ROLE.fullmatch(pattern)
    if role is not None:
        sessions = f"arn:{role['partition']}:sts::{role['account']}:assumed-role/{role['name']}/*"
        if _arn_like(sessions, arn):
            return True
    return _arn_like(pattern, arn)


def _arn_like(pattern: str, arn: str) -> bool:
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return False
    return all(_glob(p).fullmatch(a) is not None for p, a in zip(pattern_parts, arn_parts, strict=True))


def _glob(part: str) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in part)
    return re.compile(regex, re.DOTALL)


def person_of(principal: str) -> str | None:
    """The person a principal ARN stands for (the ARN itself, as IAM reports it), or None when it
    is no caller AWS authenticates (a role ARN: a role is not a person; its sessions are)."""
    return principal if CALLER_ARN_PATTERN.fullmatch(principal) else None


def is_exact_approver(entry: str) -> bool:
    """Whether an approver entry can match one person only (an exact caller ARN). A role or a
    pattern matches any number of sessions or users."""
    return "*" not in entry and "?" not in entry and person_of(entry) is not None


def most_approvers(approvers: tuple[str, ...]) -> int | None:
    """How many distinct people the entries could ever match; None when unbounded (some entry is
    a role or a pattern)."""
    if not all(is_exact_approver(entry) for entry in approvers):
        return None
    return len(set(approvers))


def requester_of(wait: ApprovalWait) -> str:
    """The requester's principal ARN, "" when unknown: the record's `requester` when it has one,
    else what its waiting request names (`requested_by`, when that is a principal ARN)."""
    requester = wait.data.get(REQUESTER_KEY)
    if requester is None:
        requester = getattr(getattr(wait, "event", None), "requested_by", "")
    return requester_from(str(requester or ""))


def requester_from(requested_by: str) -> str:
    """The requester as a wait records it: the `requested-by` of a request when it is a principal
    ARN, else "" (unknown: free text such as `ci@host` cannot be compared with an approver)."""
    return requested_by if person_of(requested_by) else ""


def tally(gate: ApprovalGate, wait: ApprovalWait) -> tuple[Approval, ...]:
    """The approvals that count, oldest first: one per person, only people who are approvers of
    the gate as configured now, and not the requester unless the gate allows it."""
    requester = requester_of(wait)
    counted = []
    for principal, decided in _mapping(wait.data.get(APPROVALS_KEY)).items():
        principal = str(principal)
        if not gate.is_approver(principal):
            continue
        if principal == requester and not gate.requester_may_approve:
            continue
        record = _mapping(decided)
        counted.append(Approval(principal, _when(record.get("at")), str(record.get("reason") or "")))
    return tuple(sorted(counted, key=lambda a: (a.at, a.principal)))


def rejection_of(wait: ApprovalWait) -> Approval | None:
    """The rejection that ended the wait, if any."""
    record = _mapping(wait.data.get(REJECTION_KEY))
    if not record.get("by"):
        return None
    return Approval(str(record["by"]), _when(record.get("at")), str(record.get("reason") or ""))


def quorum_reached(gate: ApprovalGate, wait: ApprovalWait) -> bool:
    """Whether `min` distinct approvers approved (see `tally`)."""
    return len(tally(gate, wait)) >= gate.min


def refusal(
    gate: ApprovalGate, wait: ApprovalWait, principal: str, now: float, decision: str = APPROVE
) -> Refusal | None:
    """Why `principal` may not `decision` the wait now, or None when it may. Checked in this order:
    a caller who is no approver (or no person), the requester approving their own request, then a
    wait past deciding (superseded, rejected, approved, expired) and a second decision by the same
    person. A requester who is an approver may reject (that only stops the promotion)."""
    if person_of(principal) is None:
        return Refusal(FORBIDDEN, f"{principal!r} is not a person's principal ARN: only people approve")
    if not gate.is_approver(principal):
        return Refusal(FORBIDDEN, f"{principal} is not an approver of this rule")
    if decision == APPROVE and principal == requester_of(wait) and not gate.requester_may_approve:
        return Refusal(FORBIDDEN, f"{principal} requested this promotion and may not approve it")
    superseded = wait.data.get(SUPERSEDED_BY_KEY)
    if superseded:
        return Refusal(CONFLICT, f"this wait was superseded by request {superseded}")
    rejection = rejection_of(wait)
    if rejection is not None:
        return Refusal(CONFLICT, f"this wait was already rejected by {rejection.principal}")
    if principal in _mapping(wait.data.get(APPROVALS_KEY)):
        return Refusal(CONFLICT, f"{principal} already approved this wait")
    if quorum_reached(gate, wait):
        return Refusal(CONFLICT, "this wait is already approved")
    if now >= wait.deadline:
        return Refusal(CONFLICT, f"this wait expired at {iso_time(wait.deadline)}")
    return None


def may_decide(
    gate: ApprovalGate, wait: ApprovalWait, principal: str, now: float, decision: str = APPROVE
) -> str | None:
    """None when `principal` may `decision` the wait now; else the refusal, in a sentence
    (`refusal` also says whether it is FORBIDDEN or a CONFLICT)."""
    refused = refusal(gate, wait, principal, now, decision)
    return refused.reason if refused else None


def decisions_of(evidence: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """What an action's history record and result event say of its approval gate, from its evidence
    (`ActionResult.evidence`): the wait, the requester, the quorum, each approval that counted and
    the rejection (who, when, why), or why it was superseded; {} when the rule has no approval gate
    or the gate did not decide."""
    for entry in evidence or ():
        if entry.get("gate") == APPROVAL_GATE and isinstance(entry.get("details"), Mapping):
            details = entry["details"]
            return {key: details[key] for key in _AUDITED if key in details}
    return {}


_AUDITED = ("wait_id", "requester", "min", "approvals", "rejection", "superseded_by", "expires")


def iso_time(epoch: float) -> str:
    """Epoch seconds as ISO 8601 UTC (`2026-12-06T18:00:00Z`), as decisions are recorded."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(value: object) -> str:
    """A decision's `at`: ISO text as recorded, or epoch seconds (a DynamoDB number) made ISO."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return iso_time(float(value))
    return str(value or "")


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
