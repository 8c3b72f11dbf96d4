"""Approval gates: promote only once enough of the rule's approvers, distinct people authenticated by
AWS, said yes; one "no" ends it; nobody deciding in time ends it too.

The gate decides from its own wait record (`promoter.model.verdicts.Waiting`, one per image, rule
and request), which the approval channel (`promoter.aws.approvals`) writes each decision on:
- superseded (a newer request for the same rule and source tag holds its own wait): `expired`,
  "superseded by request X";
- a rejection: `rejected`, final, naming who, when and why;
- `min` distinct approvers who count (`promoter.model.approvals.tally`: each person once, never the
  requester unless the rule allows it): `passed`, with the approvals as the evidence's inputs (who,
  when, why: the history, the result event and the attestation list them);
- past the wait's deadline (`expires_after` after it began): `expired`;
- otherwise `pending`: "awaiting approval n/min until ...".

What is promoted on the quorum is the digest that waited: a request by tag waits with the digest
the tag held when it was first handled (`promoter.workflows.gating`), and resuming runs that
event, bound to that digest, never the tag's digest of the moment.

The first run of the request that finds the wait pending with the gates before it passed (people
are asked only about images the machine checks did not refuse) announces it, once
(`ApprovalWaits.claim_announcement`): it supersedes the waits of the same rule and source tag that
began before it (or, when one began after it, is superseded itself), and tells the approvers on
the rule's `notify` topic (`promoter.aws.notify`). A decision resumes the wait through the `ApprovalDecided`
event the channel puts on the promoter's bus; the event carries no decision (the record does), so
a forged one only makes the promoter look again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from promoter.exceptions import GateStoreError
from promoter.gates.base import GateDeps, GateImage
from promoter.model.approvals import (
    ALARM_TOPIC,
    ANNOUNCED_KEY,
    SUPERSEDED_BY_KEY,
    Approval,
    ApprovalGate,
    iso_time,
    quorum_reached,
    rejection_of,
    requester_of,
    tally,
)
from promoter.model.events import ApprovalDecided, Event
from promoter.model.verdicts import (
    APPROVAL_GATE,
    EXPIRED,
    PASSED,
    PENDING,
    REJECTED,
    Evidence,
    GateStore,
    Verdict,
    Waiting,
)

logger = logging.getLogger(__name__)

# `notify: alarm-topic`: the stack sets the alarm topic's ARN here (unset: nobody is told).
ALARM_TOPIC_ENV = "ALARM_TOPIC_ARN"
# An approval as an input of the evidence (and of the attestation): a URN naming the wait and the
# approver, with the sha256 of the decision's canonical JSON.
APPROVAL_URN = "urn:ecr-image-promoter:approval:{wait_id}:{principal}"
UNKNOWN_REQUESTER = "unknown (the request named no principal ARN: any approver could approve)"


class ApprovalCheck:
    """The approval gate of one rule (`require.approval`)."""

    name = APPROVAL_GATE
    resumed_by = ApprovalDecided
    # The verdict is read from the wait's record (the decisions on it): the orchestration keeps the
    # record until the action's outcome is final, even once the quorum is there while a scan waits.
    decides_from_record = True

    def __init__(self, gate: ApprovalGate, deps: GateDeps) -> None:
        self.gate = gate
        # A wait's deadline: `expires_after` (whole minutes: the parser reads m, h, d only).
        self.timeout_minutes: int | None = gate.expires_after // 60
        self._clock = deps.clock
        self._waits: Any = None  # promoter.aws.approval_waits.ApprovalWaits, made when first needed

    def decide(self, image: GateImage, waiting: Waiting | None = None) -> Verdict:
        """The verdict the wait's record says (see the module docstring), with its evidence; without
        a record (plan, the reconciliation sweep) `pending`: nothing unapproved is ever promoted."""
        if waiting is None:
            return Verdict(PENDING, f"needs {self._needed()} from the rule's approvers")
        counted = tally(self.gate, waiting)
        evidence = self._evidence(waiting, counted)
        superseded = waiting.data.get(SUPERSEDED_BY_KEY)
        if superseded:
            return Verdict(
                EXPIRED, f"the approval wait of {image} was superseded by request {superseded}", evidence
            )
        rejection = rejection_of(waiting)
        if rejection is not None:
            why = f": {rejection.reason}" if rejection.reason else ""
            return Verdict(
                REJECTED, f"{image} was rejected by {rejection.principal} at {rejection.at}{why}", evidence
            )
        if quorum_reached(self.gate, waiting):
            return Verdict(PASSED, f"approved by {', '.join(a.principal for a in counted)}", evidence)
        if self._clock() >= waiting.deadline:
            return Verdict(
                EXPIRED,
                f"the approval wait of {image} expired at {iso_time(waiting.deadline)} with "
                f"{len(counted)}/{self.gate.min} approval(s); a new request starts a new wait",
                evidence,
            )
        return Verdict(
            PENDING,
            f"awaiting approval {len(counted)}/{self.gate.min} until {iso_time(waiting.deadline)} "
            f"(promoter approve {waiting.wait_id} --reason ...)",
            evidence,
        )

    def waits_resumed_by(self, event: Event, store: GateStore) -> list[Waiting]:
        """A decision resumes the approval wait it names, if it is one on the image it names."""
        if not isinstance(event, ApprovalDecided):
            return []
        found = store.find(event.wait_id)
        if found is None or found.gate != APPROVAL_GATE:
            return []
        if (found.repository, found.digest) != (event.repository, event.digest):
            logger.warning(
                "decision event %s names %s@%s but wait %s is on %s: ignored",
                event.event_id,
                event.repository,
                event.digest,
                event.wait_id,
                found.image,
            )
            return []
        return [found]

    def announce(self, waiting: Waiting, verdicts: Mapping[str, Verdict], targets: Sequence[str]) -> None:
        """Once per wait, whoever asks first (`promoter.workflows.gating` asks once the gates before
        this one passed): records the requester and the targets on the wait, supersedes the older
        waits of the same rule and source tag, and tells the approvers (`verdicts`: the gates decided
        before, by name; `targets`: `repository:tag` where it would go). Which request is newer is
        the order their waits began in (`_recency`), not the order they are announced in: a wait
        announced after a newer one (its scan took longer) is superseded itself, and nobody is told.
        A table that fails is logged at ERROR and the wait stands unannounced: the next run of the
        event (a decision, the sweep) asks again."""
        if waiting.data.get(ANNOUNCED_KEY):
            return
        waits = self._approval_waits()
        now = self._clock()
        requester = requester_of(waiting)
        try:
            if not waits.claim_announcement(waiting, now, requester, targets):
                return
            rivals = [w for w in waits.open_waits(waiting.rule) if _same_target(w, waiting)]
            newer = [w for w in rivals if _recency(w) > _recency(waiting)]
            if newer:
                self._supersede(waits, waiting, max(newer, key=_recency), now)
                return
            for older in rivals:
                if not quorum_reached(self.gate, older):
                    self._supersede(waits, older, waiting, now)
        except GateStoreError as exc:
            logger.error("approval wait %s (%s) not announced: %s", waiting.wait_id, waiting.image, exc)
            return
        self._notify(waiting, verdicts, targets, requester)

    @staticmethod
    def _supersede(waits: Any, older: Waiting, newer: Waiting, now: float) -> None:
        if waits.supersede(older, newer.event.event_id, now):
            logger.info(
                "approval wait %s (%s) superseded by request %s",
                older.wait_id,
                older.image,
                newer.event.event_id,
            )

    def _notify(
        self, waiting: Waiting, verdicts: Mapping[str, Verdict], targets: Sequence[str], requester: str
    ) -> None:
        topic = self.gate.notify
        if topic == ALARM_TOPIC:
            topic = os.environ.get(ALARM_TOPIC_ENV) or None
            if topic is None:
                logger.warning(
                    "approval wait %s: notify is %s but %s is not set: nobody was told",
                    waiting.wait_id,
                    ALARM_TOPIC,
                    ALARM_TOPIC_ENV,
                )
        if topic is None:
            return
        from promoter.aws.notify import notify_approval_wait

        notify_approval_wait(
            topic,
            waiting,
            waiting.rule,
            verdicts,
            waiting.deadline,
            requester or None,
            min_approvals=self.gate.min,
            targets=targets,
        )

    def _approval_waits(self) -> Any:
        if self._waits is None:
            from promoter.aws.approval_waits import ApprovalWaits  # the gates table, from settings

            self._waits = ApprovalWaits()
        return self._waits

    def _needed(self) -> str:
        return f"{self.gate.min} approval{'s' if self.gate.min != 1 else ''}"

    def _evidence(self, waiting: Waiting, counted: tuple[Approval, ...]) -> Evidence:
        """The approvals that count as inputs (a URN and the sha256 of each decision as recorded),
        and who decided what, the requester, the quorum and the expiry as details."""
        rejection = rejection_of(waiting)
        decisions = [("approve", a) for a in counted] + ([("reject", rejection)] if rejection else [])
        inputs = tuple(_input(waiting, decision, approval) for decision, approval in decisions)
        requester = requester_of(waiting)
        details: dict[str, Any] = {
            "wait_id": waiting.wait_id,
            "min": self.gate.min,
            "approvals": [a.to_dict() for a in counted],
            "requester": requester or UNKNOWN_REQUESTER,
            "expires": iso_time(waiting.deadline),
        }
        if rejection is not None:
            details["rejection"] = rejection.to_dict()
        if waiting.data.get(SUPERSEDED_BY_KEY):
            details["superseded_by"] = str(waiting.data[SUPERSEDED_BY_KEY])
        summary = f"{len(counted)}/{self.gate.min} approval(s)" + (
            f": {', '.join(a.principal for a in counted)}" if counted else ""
        )
        return Evidence(APPROVAL_GATE, summary, inputs, details)


def make_gate(config: ApprovalGate, deps: GateDeps) -> ApprovalCheck:
    return ApprovalCheck(config, deps)


def _input(waiting: Waiting, decision: str, approval: Approval) -> dict[str, str]:
    record = {
        "wait_id": waiting.wait_id,
        "image": waiting.image,
        "rule": waiting.rule,
        "decision": decision,
        **approval.to_dict(),
    }
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return {
        "uri": APPROVAL_URN.format(wait_id=waiting.wait_id, principal=approval.principal),
        "digest": "sha256:" + hashlib.sha256(canonical).hexdigest(),
    }


def source_tag_of(waiting: Waiting) -> str:
    """What "the same target" means for superseding: the source tag the waiting event names (the
    rule's target tags are rendered from it), else the digest (a request by digest alone)."""
    return getattr(waiting.event, "tag", "") or waiting.digest


def _same_target(other: Waiting, waiting: Waiting) -> bool:
    """`other` is another request's wait of the same rule for the same source repository and tag."""
    return (
        other.event.event_id != waiting.event.event_id
        and other.rule == waiting.rule
        and other.repository == waiting.repository
        and source_tag_of(other) == source_tag_of(waiting)
    )


def _recency(waiting: Waiting) -> tuple[float, str]:
    """Which of two waits of one rule began later: the deadline (when it began plus the rule's
    `expires_after`), then the request id, so that two waits begun in the same second still have
    exactly one newer."""
    return (waiting.deadline, waiting.event.event_id)
