"""Gate orchestration: a rule's gates before any write, the waits they hold, their resumption and
the sweep. One flow for every kind of gate (`promoter.gates.base`).

For one action (the rule's gates in order; each gate decides once per image and event):
- a gate that may wait holds its wait first (`GateStore.hold`: a conditional put, so the deadline is
  the one set when the wait began, and the gate sees its own record's data), then decides;
- `passed`: on to the next gate; `pending`: on to the next gate too (each waiting gate waits on its
  own record, with its own deadline), unless its deadline has passed: `gate-timeout`;
- any other verdict is final: the action's outcome (`blocked`, `unverified`, `rejected`,
  `expired`, `failed`), and the later gates are not asked;
- afterwards (`release_decided`): when the outcome is final (every gate passed, or one refused),
  every wait of that rule, image and event is released, so nothing resumes it; while some gate is
  still pending, only the waits of gates that passed are released.

A `failed` verdict (the gate cannot decide and a retry would not help: a missing grant, a disabled
key) is logged here at ERROR and counted as `GateFailures` (promoter.metrics): never handed back.

Resuming (`resume_waiting`): an event a waiting gate declares (`resumed_by`) finds that gate's waits
(`waits_resumed_by`), and each waiting event runs once more through the normal path. The sweep
(`sweep_expired`): every wait past its own deadline, whatever the gate, runs once more, and ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from promoter.gates.base import Gate, GateDeps, GateImage, gates_of, waiting_gate_names, waits
from promoter.model.config import PromotionConfig
from promoter.model.events import Event, PromotionRequested
from promoter.model.outcomes import (
    BLOCKED,
    EXPIRED,
    FAILED,
    GATE_PENDING,
    GATE_TIMEOUT,
    REJECTED,
    UNVERIFIED,
    ActionResult,
    signature_of,
    target_location,
)
from promoter.model.plan import Action
from promoter.model.verdicts import BLOCKED as BLOCKED_VERDICT
from promoter.model.verdicts import EXPIRED as EXPIRED_VERDICT
from promoter.model.verdicts import FAILED as FAILED_VERDICT
from promoter.model.verdicts import PASSED, PENDING, GateStore, Verdict, Waiting
from promoter.model.verdicts import REJECTED as REJECTED_VERDICT
from promoter.model.verdicts import UNVERIFIED as UNVERIFIED_VERDICT

logger = logging.getLogger(__name__)

# The action's outcome for each final refusal (a pending verdict is `gate-pending` or, past its
# deadline, `gate-timeout`).
REFUSAL_OUTCOMES = {
    BLOCKED_VERDICT: BLOCKED,
    UNVERIFIED_VERDICT: UNVERIFIED,
    REJECTED_VERDICT: REJECTED,
    EXPIRED_VERDICT: EXPIRED,
    FAILED_VERDICT: FAILED,
}
# The evidence of an action's gates: `Verdict.record` of each gate that decided, in gate order.
GateEvidence = tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Gated:
    """What the gates said for one action: `stopped` is its outcome when it may not run (None: every
    gate passed), `evidence` what each gate that decided recorded."""

    stopped: ActionResult | None
    evidence: GateEvidence = ()


class GateCheck:
    """The gates of one event's rules, in order before any write; each gate decides once per image
    (one set of reads per image, however many targets). Without an event or a store (plan, the
    reconciliation sweep) nothing is held."""

    def __init__(self, event: Event | None, config: PromotionConfig, deps: GateDeps) -> None:
        self._event, self._config, self._deps = event, config, deps
        self._rule_gates: dict[str, tuple[Gate, ...]] = {}
        self._verdicts: dict[tuple[str, str, str], tuple[Verdict, Waiting | None]] = {}
        # Per (rule, digest): the waits this event holds, and whether its outcome is final.
        self._held: dict[tuple[str, str], list[tuple[Verdict, Waiting]]] = {}
        self._final: dict[tuple[str, str], bool] = {}
        # Per (rule, digest): waits of gates not asked this time (after a final refusal), which an
        # earlier run of the event may have held: a final outcome ends them too.
        self._unasked: dict[tuple[str, str], list[Waiting]] = {}
        # Per (rule, digest): where this event's actions would go (`repository:tag`), for announcements.
        self._targets: dict[tuple[str, str], list[str]] = {}

    def gates(self, rule_name: str) -> tuple[Gate, ...]:
        if rule_name not in self._rule_gates:
            rule = self._config.rule(rule_name)
            self._rule_gates[rule_name] = gates_of(rule, self._deps) if rule else ()
        return self._rule_gates[rule_name]

    def run(self, action: Action) -> Gated:
        """The action's gates, in order (see the module docstring)."""
        evidence: list[dict[str, Any]] = []
        pending: list[tuple[Gate, Verdict]] = []
        stopped: ActionResult | None = None
        targets = self._targets.setdefault((action.rule, action.source.digest), [])
        where = target_location(action.target_repository, action.target_account, action.target_region)
        targets.append(f"{where}:{action.target_tag}")
        gates = self.gates(action.rule)
        for index, gate in enumerate(gates):
            verdict, waiting = self._decided_for(action, gate)
            evidence.append(verdict.record(gate.name))
            if verdict.state == PASSED:
                continue
            timed_out = self._past_deadline(waiting)
            if verdict.state == PENDING and not timed_out:
                pending.append((gate, verdict))
                continue
            stopped = outcome_of(action, gate, verdict, timed_out=timed_out)
            unasked = (self._candidate(action, later, 0) for later in gates[index + 1 :])
            self._unasked[(action.rule, action.source.digest)] = [w for w in unasked if w is not None]
            break
        if stopped is None and pending:
            stopped = outcome_of(action, *pending[0])
        self._final[(action.rule, action.source.digest)] = stopped is None or stopped.outcome != GATE_PENDING
        recorded = tuple(evidence)
        if stopped is not None:
            stopped = replace(stopped, evidence=recorded or None)
        return Gated(stopped, recorded)

    def check(self, action: Action) -> tuple[ActionResult | None, dict[str, str] | None]:
        """(None, the signature that verified or None) when the action may run; else (its
        blocked, pending, timed-out, unverified, rejected, expired or failed result, None)."""
        gated = self.run(action)
        if gated.stopped is not None:
            return gated.stopped, None
        return None, signature_of(gated.evidence)

    def decided(self, action: Action, gate: Gate) -> Verdict:
        """What `gate` decides for the action's image, without holding anything (`promoter plan`)."""
        key = (action.rule, gate.name, action.source.digest)
        if key not in self._verdicts:
            image = GateImage(action.source.repository, action.source.digest)
            self._verdicts[key] = (self._judged(gate, image, None), None)
        return self._verdicts[key][0]

    def _decided_for(self, action: Action, gate: Gate) -> tuple[Verdict, Waiting | None]:
        key = (action.rule, gate.name, action.source.digest)
        if key not in self._verdicts:
            image = GateImage(action.source.repository, action.source.digest)
            waiting = self._hold(action, gate)
            verdict = self._judged(gate, image, waiting)
            self._verdicts[key] = (verdict, waiting)
            if waiting is not None:
                self._held.setdefault((action.rule, action.source.digest), []).append((verdict, waiting))
        return self._verdicts[key]

    def _judged(self, gate: Gate, image: GateImage, waiting: Waiting | None) -> Verdict:
        verdict = gate.decide(image, waiting)
        if verdict.state == FAILED_VERDICT:  # classified by the gate: no retry fixes it
            logger.error("%s gate failed for %s: %s", gate.name, image, verdict.reason)
        return verdict

    def _hold(self, action: Action, gate: Gate) -> Waiting | None:
        """The gate's wait for this event, held (recorded unless it is already), when the gate may
        wait and there is an event and a store."""
        store = self._deps.store
        candidate = self._candidate(action, gate, self._deps.clock() + (gate.timeout_minutes or 0) * 60)
        return store.hold(candidate) if store is not None and candidate is not None else None

    def _candidate(self, action: Action, gate: Gate, deadline: float) -> Waiting | None:
        """The gate's wait for this event, with `deadline` (None: the gate does not wait, or there
        is no event or store to hold it in)."""
        if self._deps.store is None or self._event is None or not waits(gate):
            return None
        # A request by tag waits with the digest it resolved to now: that is what was tested (and
        # approved). A request naming tag and digest had the pair checked now: the wait keeps the
        # digest, and the tag moving while people decide does not undo the request.
        event = self._event
        if isinstance(event, PromotionRequested) and event.tag and not event.tag_resolved:
            event = replace(event, digest=action.source.digest, tag_resolved=True)
        return Waiting(
            action.source.repository, action.source.digest, action.rule, gate.name, event, deadline
        )

    def _past_deadline(self, waiting: Waiting | None) -> bool:
        return waiting is not None and waiting.deadline <= self._deps.clock()

    def release_decided(self) -> None:
        """Ends the waits nothing should resume: all of a final outcome's, and those of gates that
        passed while another still waits."""
        store = self._deps.store
        if store is None:
            return
        self._announce_waits()
        for key, held in self._held.items():
            final = self._final.get(key, True)
            for verdict, waiting in held:
                # A gate that decides from its own record (an approval gate's approvals) keeps it
                # until the outcome is final: released now, its decisions would be lost.
                if final or (verdict.state == PASSED and not self._decides_from_record(key[0], waiting.gate)):
                    store.release(waiting)
        for key, unasked in self._unasked.items():
            if self._final.get(key, True):
                for waiting in unasked:
                    store.release(waiting)

    def _decides_from_record(self, rule: str, gate_name: str) -> bool:
        return any(getattr(g, "decides_from_record", False) for g in self.gates(rule) if g.name == gate_name)

    def _announce_waits(self) -> None:
        """A pending gate that announces its wait (`announce`: an approval gate tells its approvers)
        is asked to once the gates before it passed, with their verdicts and this event's targets
        of that rule and image; the gate says it once per wait, whoever asks first."""
        for rule, digest in self._held:
            before: dict[str, Verdict] = {}
            for gate in self.gates(rule):
                verdict, waiting = self._verdicts.get((rule, gate.name, digest), (None, None))
                if verdict is None:
                    break
                announce = getattr(gate, "announce", None)
                machine_checks_passed = all(v.state == PASSED for v in before.values())
                if verdict.state == PENDING and waiting and announce and machine_checks_passed:
                    announce(waiting, dict(before), tuple(self._targets.get((rule, digest), ())))
                before[gate.name] = verdict


def outcome_of(
    action: Action, gate: Gate, verdict: Verdict, *, timed_out: bool = False
) -> ActionResult | None:
    """The outcome of an action whose gate did not pass (None: it passed); `timed_out`: a pending
    verdict past its wait's deadline."""
    if verdict.state == PASSED:
        return None
    if verdict.state == PENDING:
        if timed_out:
            where = f"{action.source.repository}@{action.source.digest}"
            return ActionResult.for_action(
                action,
                GATE_TIMEOUT,
                reason=f"the {gate.name} gate of {where} did not decide within {gate.timeout_minutes} min",
            )
        return ActionResult.for_action(action, GATE_PENDING, reason=verdict.reason)
    outcome = REFUSAL_OUTCOMES.get(verdict.state, FAILED)
    return ActionResult.for_action(
        action, outcome, reason=verdict.reason, blocking_findings=verdict.blocking or None
    )


def resuming_gates(config: PromotionConfig, deps: GateDeps, event: Event) -> list[Gate]:
    """One gate of each kind that `event` resumes (`resumed_by`), among the kinds the rules use."""
    found: dict[str, Gate] = {}
    for rule in config.rules:
        for gate in gates_of(rule, deps):
            resumed_by = getattr(gate, "resumed_by", None)
            if gate.name not in found and resumed_by is not None and isinstance(event, resumed_by):
                found[gate.name] = gate
    return list(found.values())


def has_waiting_gate(config: PromotionConfig) -> bool:
    """Some rule has a gate that may wait (the sweep has work to look for)."""
    return bool(waiting_gate_names(config))


Rerun = Callable[[Event], Any]  # runs a waiting event again: an EventResult


def rerun_waits(
    waits_: list[Waiting], rerun: Rerun, store: GateStore, *, end: bool
) -> tuple[list[Any], bool]:
    """Runs each waiting event once (two waits of one event, e.g. on two gates, run it once).
    A waiting event that fails (a request that became invalid) will never pass: its waits end; with
    `end` (the sweep: past their deadlines), every wait not handed back for a retry ends too, and so
    does an old-format wait once run (what still waits is then held per gate, from now on).
    Answers the EventResults and whether any asks for a retry."""
    by_event: dict[str, list[Waiting]] = {}
    for item in waits_:
        by_event.setdefault(item.event.event_id, []).append(item)
    resumed: list[Any] = []
    retry = False
    for items in by_event.values():
        result = rerun(items[0].event)
        resumed.append(result)
        retry = retry or result.retry
        if result.error is not None:
            logger.warning("waiting event %s failed on resume: %s", items[0].event.event_id, result.error)
        for item in items:
            # A wait recorded before waits were kept per gate has had its run: whatever still waits
            # is held again under its gate's own record.
            if result.error is not None or (end and not result.retry) or (item.legacy and not result.retry):
                store.release(item)
    return resumed, retry


def waits_resumed_by(config: PromotionConfig, deps: GateDeps, event: Event) -> list[Waiting] | None:
    """The waits `event` resumes, each once; None when no rule has a gate it resumes. Raises
    GateStoreError (retryable)."""
    store = deps.store
    gates = resuming_gates(config, deps, event) if store is not None else []
    if store is None or not gates:
        return None
    found: dict[tuple[str, str], Waiting] = {}
    for gate in gates:
        for item in gate.waits_resumed_by(event, store):  # type: ignore[attr-defined]
            found.setdefault((item.pk, item.sk), item)
    return list(found.values())


__all__ = [
    "GateCheck",
    "GateEvidence",
    "Gated",
    "has_waiting_gate",
    "outcome_of",
    "rerun_waits",
    "resuming_gates",
    "waits_resumed_by",
]
