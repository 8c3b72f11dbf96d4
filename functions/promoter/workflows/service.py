"""One event, end to end: plan it, run each action, collect the outcomes.

The Lambda handler and the `promoter handle` command both call `handle_event`; they differ only
in the `ActionRunner` they pass (the Lambda's is wrapped in Powertools idempotency, and so is the
CLI's). `preview_event` is the read-only twin for `promoter plan`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from promoter.aws.history import History, unwritable_text
from promoter.aws.registry import Registry
from promoter.aws.remote import target_registry_of
from promoter.aws.results import ResultSink
from promoter.exceptions import (
    HistoryWriteError,
    ImageNotFoundError,
    InvalidRequestError,
    PromoterError,
    TagDigestMismatchError,
)
from promoter.gates.base import GateDeps
from promoter.model.config import PromotionConfig
from promoter.model.events import Event, ImagePushed, PromotionRequested, SweepDue
from promoter.model.outcomes import ALREADY_PRESENT, FAILED, ActionResult, gates_said, signature_of
from promoter.model.plan import (
    Action,
    Plan,
    Provenance,
    plan_event,
    request_provenance,
)
from promoter.model.verdicts import GateStore, Waiting
from promoter.workflows import gating
from promoter.workflows.attest import attesting

logger = logging.getLogger(__name__)

ActionRunner = Callable[[Action], ActionResult]
# The out-of-band check of a push (promoter.workflows.out_of_band.push_check): its `foreign` result,
# or None when the push is the promoter's own or not into a target.
PushCheck = Callable[[ImagePushed], ActionResult | None]
# Epoch seconds, read at call time: gate deadlines are compared against it (tests move it).
clock: Callable[[], float] = time.time


def gate_deps(registry: Registry, gates: GateStore | None = None) -> GateDeps:
    """What the gates of a run get: the source registry, this module's clock (read at call time,
    so a test that moves it moves every deadline) and the gates table."""
    return GateDeps(registry, clock=lambda: clock(), store=gates)


WOULD_PROMOTE = "would-promote"


@dataclass(frozen=True)
class EventResult:
    """The outcomes for one event. `retry` is True when some action failed in a way a later
    delivery can fix (throttling that outlasted the retries, a service fault, a busy record)."""

    event_id: str
    results: tuple[ActionResult, ...] = ()
    ignored_reason: str | None = None
    error: str | None = None
    retry: bool = False
    history_failures: int = 0  # outcomes the history table did not take (logged at ERROR)

    @property
    def succeeded(self) -> bool:
        """Nothing failed: every action promoted or already present (an ignored event included)."""
        return self.error is None and all(r.succeeded for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_plan(event: Event, config: PromotionConfig, registry: Registry) -> Plan:
    """Plans the event; a request first reads the image it names, once, in the source repository:
    - by tag: the digest the tag points at now is what gets promoted and recorded (BatchGetImage);
    - by tag and digest: the pair is bound, promoted only if the tag points at that digest now
      (one BatchGetImage with both in one imageId); else InvalidRequestError naming both;
    - by digest alone: the tags the image carries there (DescribeImages), through which alone it
      passes a rule's tag filter.
    Raises ImageNotFoundError when the image is not there, InvalidRequestError for a bad request."""
    if not isinstance(event, PromotionRequested):
        return plan_event(event, config)
    repository = event.repository
    if event.tag and event.digest and not event.tag_resolved:
        try:
            registry.get_tagged(repository, event.tag, event.digest)
        except TagDigestMismatchError as exc:
            raise InvalidRequestError(
                f"requested tag {repository}:{event.tag} does not point at the requested digest "
                f"{event.digest}: not promoted ({exc})"
            ) from exc
        except ImageNotFoundError as exc:
            raise ImageNotFoundError(
                f"requested image {repository}:{event.tag}@{event.digest} does not exist"
            ) from exc
        return plan_event(event, config)
    if event.digest and event.tag:  # resumed from a scan wait: the digest resolved back then
        if event.digest not in registry.get_manifests(repository, [event.digest]):
            raise ImageNotFoundError(f"requested image {repository}@{event.digest} does not exist")
        return plan_event(event, config)
    if event.digest:
        tags = registry.image_tags(repository, event.digest)
        if tags is None:
            raise ImageNotFoundError(f"requested image {repository}@{event.digest} does not exist")
        return plan_event(event, config, source_tags=tags)
    image = registry.get_manifests(repository, [event.tag]).get(event.tag)
    if image is None:
        raise ImageNotFoundError(f"requested image {repository}:{event.tag} does not exist")
    return plan_event(event, config, image.digest)


def handle_delivered(
    event: Event,
    config: PromotionConfig,
    registry: Registry,
    promoter: Any,
    run: ActionRunner,
    history: History | None = None,
    results: ResultSink | None = None,
    gates: GateStore | None = None,
    *,
    out_of_band: PushCheck | None = None,
) -> EventResult:
    """Every delivered event, one path for the Lambda and `promoter handle`: a signature, SBOM or
    attestation that arrives after its image is carried to where the image went
    (workflows.late_trust, with `promoter`, the engine's Promoter); any other event is handled."""
    from promoter.workflows.late_trust import carry_late_trust_material, trust_arrival  # imports us

    arrival = trust_arrival(event)
    if arrival is not None:
        return carry_late_trust_material(arrival, config, registry, promoter, run, history, results, gates)
    return handle_event(event, config, registry, run, history, results, gates, out_of_band=out_of_band)


def handle_event(
    event: Event,
    config: PromotionConfig,
    registry: Registry,
    run: ActionRunner,
    history: History | None = None,
    results: ResultSink | None = None,
    gates: GateStore | None = None,
    *,
    out_of_band: PushCheck | None = None,
) -> EventResult:
    """Runs every action of the event; one action's failure does not stop the others. Each
    executed action's outcome is recorded in `history` and announced on `results` when given.
    A scan event resumes the promotions waiting on that image's scan (`gates`). A push that
    `out_of_band` finds written behind the promoter's back is recorded and announced first, and
    its `foreign` result leads the event's results."""
    if out_of_band is None or not isinstance(event, ImagePushed):
        return _handle(event, config, registry, run, history, results, gates)
    try:
        foreign = out_of_band(event)
    except PromoterError as exc:
        if not exc.retryable:
            raise
        return EventResult(event.event_id, error=str(exc), retry=True)  # both checks run again
    unrecorded = 0
    if foreign is not None:
        provenance = Provenance(trigger="push", request_id=event.event_id)
        if history is not None and not record_history(history, event.event_id, foreign, provenance):
            unrecorded = 1
        if results is not None:
            results.publish([foreign], provenance)
    handled = _handle(event, config, registry, run, history, results, gates)
    if foreign is None:
        return handled
    return replace(
        handled,
        results=(foreign, *handled.results),
        history_failures=handled.history_failures + unrecorded,
    )


def _handle(
    event: Event,
    config: PromotionConfig,
    registry: Registry,
    run: ActionRunner,
    history: History | None,
    results: ResultSink | None,
    gates: GateStore | None,
) -> EventResult:
    """`handle_event` without the out-of-band check."""
    deps = gate_deps(registry, gates)
    if isinstance(event, SweepDue):
        if gates is None or not gating.has_waiting_gate(config):
            return EventResult(
                event.event_id, ignored_reason="no rule has a gate that waits: nothing to sweep"
            )
        try:
            swept = sweep_gates(config, registry, run, gates, history, results)
        except PromoterError as exc:
            return EventResult(event.event_id, error=str(exc), retry=exc.retryable)
        return replace(swept, event_id=event.event_id)
    try:
        resumed = gating.waits_resumed_by(config, deps, event)
    except PromoterError as exc:
        return EventResult(event.event_id, error=str(exc), retry=exc.retryable)
    if resumed is not None:
        return _resume_gated(event, resumed, config, registry, run, history, results, gates)
    if isinstance(event, PromotionRequested):
        refused = refuse_unwritable(event.event_id, request_provenance(event))
        if refused is not None:
            return refused
    try:
        plan = resolve_plan(event, config, registry)
    except PromoterError as exc:
        if isinstance(event, PromotionRequested) and results is not None and not exc.retryable:
            _announce_bad_request(event, str(exc), results)
        return EventResult(event.event_id, error=str(exc), retry=exc.retryable)
    if not plan.actions:
        logger.info("event %s ignored: %s", event.event_id, plan.ignored_reason)
        return EventResult(event.event_id, ignored_reason=plan.ignored_reason)
    return run_plan(plan, run, history, results, gating.GateCheck(event, config, deps))


def _announce_bad_request(event: PromotionRequested, reason: str, results: ResultSink) -> None:
    """A request that cannot be planned still answers its requester: one `Image Promotion Failed`
    with the reason and no target."""
    failed = ActionResult(
        rule=event.rule or "",
        source_repository=event.repository,
        source_tag=event.tag,
        source_digest=event.digest or "",
        target_repository="",
        target_tag="",
        outcome=FAILED,
        reason=reason,
    )
    provenance = request_provenance(event)
    results.publish([failed], provenance)


def refuse_unwritable(event_id: str, provenance: Provenance) -> EventResult | None:
    """A request whose free text no record can hold (`aws.history.unwritable_text`: a lone
    surrogate) is bad input, refused before anything is written, logged at ERROR and answered as a
    failed event (counted, never retried): promoting it would leave an image without its record."""
    unwritable = unwritable_text(provenance)
    if unwritable is None:
        return None
    reason = (
        f"promotion request {event_id!r}: its {unwritable} is not Unicode text (a lone surrogate such "
        "as \\ud800): refused before anything is written, since no history record or result could hold it"
    )
    logger.error(reason)
    return EventResult(event_id, error=reason)


def record_history(history: History, event_id: str, result: ActionResult, provenance: Provenance) -> bool:
    """Records one outcome; a write that fails is logged at ERROR and answered False (ECR is the
    source of truth: the promotion stands, the caller counts the gap or fails on it)."""
    try:
        history.record(event_id, result, provenance)
    except HistoryWriteError as exc:
        logger.error("history not written for %s:%s: %s", result.target_location, result.target_tag, exc)
        return False
    return True


def run_plan(
    plan: Plan,
    run: ActionRunner,
    history: History | None = None,
    results: ResultSink | None = None,
    gate_check: gating.GateCheck | None = None,
    audit_required: bool = False,
) -> EventResult:
    """Runs the actions of a plan (also `promoter promote`, which builds its plan by hand). With
    `audit_required` (break-glass), an outcome the history did not take makes the event fail. A
    provenance whose free text no record can hold runs nothing (`refuse_unwritable`)."""
    refused = refuse_unwritable(plan.event_id, plan.provenance)
    if refused is not None:
        return refused
    done: list[ActionResult] = []
    # Outcomes to record and announce: final ones, said once. A retried failure is not final (the
    # redelivery decides, and a deploy pipeline must not see "failed" for what then succeeds), and
    # a replay was recorded and announced by the run it replays.
    final: list[ActionResult] = []
    retry = False
    unrecorded = 0
    for action in plan.actions:
        if action.skip_reason:
            done.append(ActionResult.not_run(action))
        else:
            try:
                gated = gate_check.run(action) if gate_check else gating.Gated(None)
                # The action carries its gates' evidence and provenance into its attestation.
                attested = attesting(action, gated.evidence, plan.provenance, plan.event_id)
                result = gated.stopped or run(attested)
                if gated.stopped is None and gated.evidence:  # what the gates that passed found
                    result = replace(result, evidence=gated.evidence, signature=signature_of(gated.evidence))
                done.append(result)
            except PromoterError as exc:
                if not exc.retryable:
                    raise  # a runner only lets retryable errors through; anything else is a bug
                logger.warning(
                    "action %s:%s failed, will retry: %s", action.target_repository, action.target_tag, exc
                )
                done.append(ActionResult.for_action(action, FAILED, reason=str(exc)))
                retry = True
                continue
        if not done[-1].replayed:
            final.append(done[-1])
            if history is not None and not record_history(history, plan.event_id, done[-1], plan.provenance):
                unrecorded += 1
    if gate_check is not None:
        gate_check.release_decided()
    if results is not None:
        results.publish(final, plan.provenance)
    error = None
    if audit_required and unrecorded:
        error = f"{unrecorded} outcome(s) not recorded in the history: the audit is part of the action"
    return EventResult(plan.event_id, tuple(done), error=error, retry=retry, history_failures=unrecorded)


def sweep_gate_check(
    config: PromotionConfig, registry: Registry
) -> Callable[[Action], tuple[ActionResult | None, dict[str, str] | None]]:
    """The rule's gates for the reconciliation sweep, which must never promote what an event was
    refused: each image decided once per pass, nothing held (a pending scan stays pending until the
    image's scan event or a later pass). Answers (the stopped result, None) or (None, the signature
    that passed the signature gate, if any)."""
    return gating.GateCheck(None, config, gate_deps(registry)).check


def _resume_gated(
    event: Event,
    waiting: list[Waiting],
    config: PromotionConfig,
    registry: Registry,
    run: ActionRunner,
    history: History | None,
    results: ResultSink | None,
    gates: GateStore | None,
) -> EventResult:
    """An event a waiting gate declared (a finished scan, an approval decision): run again every
    event that waits on it (`waiting`, found by the gates it resumes)."""
    if gates is None or not waiting:
        where = (
            getattr(event, "wait_id", "")
            or f"{getattr(event, 'repository', '')}@{getattr(event, 'digest', '')}"
        )
        return EventResult(event.event_id, ignored_reason=f"no promotion waits on {where}")

    def rerun(waiting_event: Event) -> EventResult:
        return handle_event(waiting_event, config, registry, run, history, results, gates)

    resumed, retry = gating.rerun_waits(waiting, rerun, gates, end=False)
    combined = tuple(r for item in resumed for r in item.results)
    unrecorded = sum(item.history_failures for item in resumed)
    return EventResult(event.event_id, combined, retry=retry, history_failures=unrecorded)


def sweep_gates(
    config: PromotionConfig,
    registry: Registry,
    run: ActionRunner,
    gates: GateStore,
    history: History | None = None,
    results: ResultSink | None = None,
    now: float | None = None,
) -> EventResult:
    """The periodic sweep: every wait past its own deadline, whatever the gate, is run once more
    (so a scan that finished unannounced still promotes) and otherwise ends (`gate-timeout`, or
    the gate's own final verdict, e.g. `expired`); either way the wait ends."""

    def rerun(waiting_event: Event) -> EventResult:
        return handle_event(waiting_event, config, registry, run, history, results, gates)

    expired = gates.expired(clock() if now is None else now)
    resumed, retry = gating.rerun_waits(expired, rerun, gates, end=True)
    combined = tuple(r for item in resumed for r in item.results)
    unrecorded = sum(item.history_failures for item in resumed)
    return EventResult("gate-sweep", combined, retry=retry, history_failures=unrecorded)


def preview_event(event: Event, config: PromotionConfig, registry: Registry) -> EventResult:
    """What `handle_event` would do, with reads only: outcome `would-promote`, `already-present`
    or `skipped` per action, or the outcome of the first gate that would stop it; `gates` says
    what each of the rule's gates would decide (all of them, in order), and `signature` which
    signature would pass the signature gate. Nothing is held: a pending scan only says so."""
    try:
        plan = resolve_plan(event, config, registry)
    except PromoterError as exc:
        return EventResult(event.event_id, error=str(exc), retry=exc.retryable)
    results = []
    gate_check = gating.GateCheck(event, config, gate_deps(registry))
    for action in plan.actions:
        if action.skip_reason:
            results.append(ActionResult.not_run(action))
            continue
        try:
            decided = [(gate, gate_check.decided(action, gate)) for gate in gate_check.gates(action.rule)]
        except PromoterError as exc:
            results.append(ActionResult.for_action(action, FAILED, reason=str(exc)))
            continue
        evidence = tuple(verdict.record(gate.name) for gate, verdict in decided) or None
        said = gates_said(evidence)
        signature = signature_of(evidence)
        stopped = next((r for g, v in decided if (r := gating.outcome_of(action, g, v))), None)
        if stopped is not None:
            results.append(replace(stopped, gates=said, evidence=evidence))
            continue
        try:
            target = target_registry_of(action, registry)  # another account's or region's, maybe
            current = target.get_manifests(action.target_repository, [action.target_tag]).get(
                action.target_tag
            )
        except PromoterError as exc:
            results.append(ActionResult.for_action(action, FAILED, reason=str(exc)))
            continue
        if current is not None and current.digest == action.source.digest:
            result = ActionResult.for_action(action, ALREADY_PRESENT, target_digest=current.digest)
        else:
            result = ActionResult.for_action(
                action,
                WOULD_PROMOTE,
                target_digest=current.digest if current else None,
                reason="the target tag holds another digest" if current else None,
            )
        results.append(replace(result, gates=said, signature=signature, evidence=evidence))
    return EventResult(event.event_id, tuple(results), ignored_reason=plan.ignored_reason)
