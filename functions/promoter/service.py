"""One event, end to end: plan it, run each action, collect the outcomes.

The Lambda handler and the `promoter handle` command both call `handle_event`; they differ only
in the `ActionRunner` they pass (the Lambda's is wrapped in Powertools idempotency, and so is the
CLI's). `preview_event` is the read-only twin for `promoter plan`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from promoter.config import PromotionConfig
from promoter.events import Event, PromotionRequested
from promoter.exceptions import ImageNotFoundError, PromoterError
from promoter.history import History
from promoter.outcomes import ALREADY_PRESENT, FAILED, SKIPPED, ActionResult
from promoter.plan import Action, Plan, plan_event, requested_digest_needed
from promoter.registry import Registry
from promoter.remote import target_registry_of

logger = logging.getLogger(__name__)

ActionRunner = Callable[[Action], ActionResult]
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

    @property
    def succeeded(self) -> bool:
        """Nothing failed: every action promoted or already present (an ignored event included)."""
        return self.error is None and all(r.succeeded for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_plan(event: Event, config: PromotionConfig, registry: Registry) -> Plan:
    """Plans the event; a request by tag first reads the digest the tag points at (one read)."""
    resolved = None
    if requested_digest_needed(event):
        assert isinstance(event, PromotionRequested)
        image = registry.get_manifests(event.repository, [event.tag]).get(event.tag)
        if image is None:
            raise ImageNotFoundError(f"requested image {event.repository}:{event.tag} does not exist")
        resolved = image.digest
    return plan_event(event, config, resolved)


def handle_event(
    event: Event,
    config: PromotionConfig,
    registry: Registry,
    run: ActionRunner,
    history: History | None = None,
) -> EventResult:
    """Runs every action of the event; one action's failure does not stop the others. Each
    executed action's outcome is recorded in `history` when one is given."""
    try:
        plan = resolve_plan(event, config, registry)
    except PromoterError as exc:
        return EventResult(event.event_id, error=str(exc), retry=exc.retryable)
    if not plan.actions:
        logger.info("event %s ignored: %s", event.event_id, plan.ignored_reason)
        return EventResult(event.event_id, ignored_reason=plan.ignored_reason)
    results: list[ActionResult] = []
    retry = False
    for action in plan.actions:
        if action.skip_reason:
            results.append(ActionResult.for_action(action, SKIPPED, reason=action.skip_reason))
            continue
        try:
            results.append(run(action))
        except PromoterError as exc:
            if not exc.retryable:
                raise  # a runner only lets retryable errors through; anything else is a bug
            logger.warning(
                "action %s:%s failed, will retry: %s", action.target_repository, action.target_tag, exc
            )
            results.append(ActionResult.for_action(action, FAILED, reason=str(exc)))
            retry = True
        if history is not None and not results[-1].replayed:
            history.record(event.event_id, results[-1])
    return EventResult(event.event_id, tuple(results), retry=retry)


def preview_event(event: Event, config: PromotionConfig, registry: Registry) -> EventResult:
    """What `handle_event` would do, with reads only: outcome `would-promote`, `already-present`
    or `skipped` per action."""
    try:
        plan = resolve_plan(event, config, registry)
    except PromoterError as exc:
        return EventResult(event.event_id, error=str(exc), retry=exc.retryable)
    results = []
    for action in plan.actions:
        if action.skip_reason:
            results.append(ActionResult.for_action(action, SKIPPED, reason=action.skip_reason))
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
            results.append(ActionResult.for_action(action, ALREADY_PRESENT, target_digest=current.digest))
        else:
            results.append(
                ActionResult.for_action(
                    action,
                    WOULD_PROMOTE,
                    target_digest=current.digest if current else None,
                    reason="the target tag holds another digest" if current else None,
                )
            )
    return EventResult(event.event_id, tuple(results), ignored_reason=plan.ignored_reason)
