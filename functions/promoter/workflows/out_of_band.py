"""Writes behind the promoter's back: a tag of a target repository that anything but the promoter
wrote or moved (issue 18.3).

The stack routes the push events of the target repositories to the promoter too
(infra.event_patterns.watched_repository_globs). A tagged push into a target repository is the
promoter's own when a promotion of ours explains it, checked in this order:

1. the idempotency record of a promotion that puts exactly this digest on exactly this tag (for
   each rule that writes the repository, and for a break-glass `promoter promote`). Powertools
   writes that record (INPROGRESS) before the promotion runs, so before its PutImage, so before
   ECR emits the push event: whenever the event is processed, the record is there (a consistent
   read). No ordering race: the record precedes the write, the write precedes the event;
2. the history: a digest the promoter placed on this tag before (a promotion's record, written
   after its PutImage, precedes the record of a rollback that restores that digest; so a rollback
   is always explained by the promotion it goes back to).

Anything else is `foreign`: announced (`Image Written Outside The Promoter`), counted
(`OutOfBandWrites`), recorded in the history (which `promoter status` reads to show `foreign`).
Nothing is written to the registry here: the reconciliation repairs what the rules say the tag
should hold, and says so (`repair_note`).

Not checked: cosign's signature, attestation and SBOM tags (`sha256-<hex>.sig`): they travel with
their image and are never a rule's target tag. Targets in another account or region: their pushes
are events of that account or region, which this stack's rule does not receive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from promoter.model.config import PromotionConfig, template_to_glob
from promoter.model.events import ImagePushed
from promoter.model.outcomes import ALREADY_PRESENT, FOREIGN, PROMOTED, ActionResult
from promoter.model.patterns import NamePattern
from promoter.model.plan import COSIGN_TAG_PATTERN, TRIGGER_MANUAL, Action, SourceImage

logger = logging.getLogger(__name__)

# History outcomes that say "the promoter left the tag at target_digest": a promotion, an image found
# already there, and a rollback (workflows.rollback.ROLLBACK; its record names the digest restored).
PLACING_OUTCOMES = frozenset({PROMOTED, ALREADY_PRESENT, "rollback"})
# The rule name of a break-glass `promoter promote` action (the CLI's MANUAL_RULE).
MANUAL_RULE = TRIGGER_MANUAL


class PromotionRecords(Protocol):
    """Whether an idempotency record (in progress or completed) of this promotion exists
    (promoter.aws.ledger.IdempotencyLedger)."""

    def recorded(self, action: Action) -> bool: ...


class TargetHistory(Protocol):
    """The recorded outcomes of a target tag (promoter.aws.history.DynamoDbHistory)."""

    def for_target(self, repository: str, tag: str, newest_first: bool = False) -> list[dict[str, Any]]: ...


def rules_writing(config: PromotionConfig, repository: str, tag: str) -> tuple[str, ...]:
    """The rules with a target in the promoter's own registry that can put `tag` on `repository`:
    a repository that is one rule's source and another's target holds tags no rule writes (a CI
    push of `sha-1` into a repository a request rule writes only `released-*` to is no one's
    business here)."""
    found = []
    for rule in config.rules:
        source = rule.source
        for target in rule.targets:
            if target.registry is not None:
                continue
            if not NamePattern(template_to_glob(target.repository, source.repository_glob, "*")).matches(
                repository
            ):
                continue
            tag_globs = {
                template_to_glob(template, source.repository_glob, pattern.as_glob())
                for template in target.tags
                for pattern in source.tag_patterns
            }
            if any(NamePattern(glob).matches(tag) for glob in tag_globs):
                found.append(rule.name)
                break
    return tuple(found)


def watched_rules(event: ImagePushed, config: PromotionConfig) -> tuple[str, ...]:
    """The rules that can write the tag a push wrote, when the out-of-band check looks at it (a
    tagged push, no cosign tag); () for a push it leaves alone."""
    if not event.tag or COSIGN_TAG_PATTERN.fullmatch(event.tag):
        return ()
    return rules_writing(config, event.repository, event.tag)


def _promotion(rule: str, event: ImagePushed) -> Action:
    """The action whose idempotency record would explain the push: the key is the rule, the digest
    (a promotion keeps it) and the target; the source's name is not part of it."""
    return Action(rule, SourceImage("", "", event.digest), event.repository, event.tag)


def check_push(
    event: ImagePushed, config: PromotionConfig, records: PromotionRecords, history: TargetHistory
) -> ActionResult | None:
    """The `foreign` result for a push into a target repository that no promotion of ours
    explains; None for the promoter's own writes, untagged pushes, cosign tags and tags no rule
    writes. Raises what the idempotency table or the history raise (retryable: the event
    is delivered again)."""
    rules = watched_rules(event, config)
    if not rules:
        return None
    for rule in (*rules, MANUAL_RULE):
        if records.recorded(_promotion(rule, event)):
            return None
    placed = [
        r
        for r in history.for_target(event.repository, event.tag, newest_first=True)
        if r.get("outcome") in PLACING_OUTCOMES and r.get("target_digest")
    ]
    if any(r["target_digest"] == event.digest for r in placed):
        return None
    expected = str(placed[0]["target_digest"]) if placed else None
    logger.warning(
        "%s:%s was written outside the promoter: %s (the promoter expected %s)",
        event.repository,
        event.tag,
        event.digest,
        expected or "no image there",
    )
    return ActionResult(
        rule=",".join(rules),
        source_repository="",
        source_tag="",
        source_digest="",
        target_repository=event.repository,
        target_tag=event.tag,
        outcome=FOREIGN,
        target_digest=event.digest,
        reason=(
            f"{event.repository}:{event.tag} was set to {event.digest} outside the promoter; the promoter "
            + (f"last placed {expected} there" if expected else "never placed an image there")
        ),
        expected_digest=expected,
        written_at=event.time or None,
    )


class LastRecordReader(Protocol):
    """The newest record of a target tag (`DynamoDbHistory.last_for_target`)."""

    def last_for_target(self, repository: str, tag: str) -> dict[str, Any] | None: ...


def repair_note(history: LastRecordReader) -> Callable[[Action, str | None], str | None]:
    """For the reconciliation: when the digest a behind target holds was written outside the
    promoter (its newest record is `foreign` with that digest), the reason its promotion gives."""

    def note(action: Action, held: str | None) -> str | None:
        if held is None or action.remote_target:
            return None
        last = history.last_for_target(action.target_repository, action.target_tag)
        if last and last.get("outcome") == FOREIGN and last.get("target_digest") == held:
            where = f"{action.target_repository}:{action.target_tag}"
            return (
                f"repaired an out-of-band write: {where} held {held}, written outside the promoter "
                f"({last.get('at', '')}); the rules put {action.source.digest} there"
            )
        return None

    return note


def push_check(
    config: PromotionConfig, records: PromotionRecords, history: TargetHistory
) -> Callable[[ImagePushed], ActionResult | None]:
    """`check_push` bound to its dependencies: what `handle_event` takes as `out_of_band`."""
    return lambda event: check_push(event, config, records, history)
