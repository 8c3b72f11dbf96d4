"""Rollback: move a release tag back to the digest it had before, which only our history knows.

ECR keeps no tag history; the promotion history does (one record per executed action). Read in
time order it is a stack of digests per target tag: a promotion pushes its digest, a rollback pops
back to the digest it restored. "Before" is the entry under the one the tag holds now, so rolling
back twice goes two steps back, not back and forth.

The move is a same-repository retag through `Promoter` (one read, at most one PutImage), not through
the idempotent runner: an idempotency record of an earlier identical move would otherwise answer
"done" and leave the tag where it is. An immutable tag is refused before any write (the repository's
mutability and exclusion filters, as ECR applies them), and ImageTagAlreadyExistsException is
refused the same way should ECR disagree. Every rollback is recorded with outcome `rollback`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from promoter.aws.history import History
from promoter.aws.registry import RepositoryInfo
from promoter.exceptions import RepositoryNotFoundError, RollbackRefusedError
from promoter.model.manifests import Manifest
from promoter.model.outcomes import ALREADY_PRESENT, CONFLICT, PROMOTED, ActionResult
from promoter.model.plan import Action, Provenance, SourceImage
from promoter.workflows.promote import Promoter
from promoter.workflows.reconcile import HoldBack

logger = logging.getLogger(__name__)

# The history outcome (and rule name) of a rollback.
ROLLBACK = "rollback"
# Records that say "the tag was at target_digest afterwards".
_PLACING_OUTCOMES = frozenset({PROMOTED, ALREADY_PRESENT})
ROLLED_BACK = "rolled-back"
ALREADY_THERE = "already-there"


class HistoryReader(History, Protocol):
    """The history as rollback reads it (`DynamoDbHistory`)."""

    def for_target(self, repository: str, tag: str) -> list[dict[str, Any]]: ...


class RollbackRegistry(Protocol):
    """What rollback reads from the registry (`EcrRegistry`)."""

    def describe_repository(self, repository: str) -> RepositoryInfo: ...

    def get_manifests(self, repository: str, references: Sequence[str]) -> dict[str, Manifest]: ...


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback did: `outcome` is `rolled-back`, or `already-there` (no write)."""

    repository: str
    tag: str
    from_digest: str | None
    to_digest: str
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def digest_stack(records: Sequence[dict[str, Any]]) -> list[str]:
    """The digests a tag held, oldest first, with rolled-back ones popped (records in any order)."""
    stack: list[str] = []
    for record in sorted(records, key=lambda r: str(r.get("sk", ""))):
        digest = str(record.get("target_digest") or "")
        if not digest:
            continue
        outcome = record.get("outcome")
        if outcome == ROLLBACK:
            while stack and stack[-1] != digest:
                stack.pop()
            if not stack:
                stack.append(digest)
        elif outcome in _PLACING_OUTCOMES and (not stack or stack[-1] != digest):
            stack.append(digest)
    return stack


def previous_digest(records: Sequence[dict[str, Any]], current: str | None) -> str | None:
    """The digest before `current` (what ECR holds now); if the tag was moved outside the promoter
    (current unknown to the history), the last digest the history placed there."""
    stack = digest_stack(records)
    if stack and stack[-1] == current:
        return stack[-2] if len(stack) > 1 else None
    return stack[-1] if stack else None


def rollback(
    repository: str,
    tag: str,
    registry: RollbackRegistry,
    promoter: Promoter,
    history: HistoryReader,
    to: str | None = None,
) -> RollbackResult:
    """Moves `repository:tag` back; raises RollbackRefusedError with the reason when it cannot."""
    try:
        info = registry.describe_repository(repository)
    except RepositoryNotFoundError as exc:
        raise RollbackRefusedError(f"repository {repository!r} does not exist") from exc
    if info.tag_is_immutable(tag):
        raise RollbackRefusedError(_immutable_message(info, tag))
    records = history.for_target(repository, tag)
    held = registry.get_manifests(repository, [tag]).get(tag)
    current = held.digest if held else None
    if to is None:
        to = previous_digest(records, current)
        if to is None:
            raise RollbackRefusedError(
                f"the history holds no earlier digest for {repository}:{tag} (now at {current or 'nothing'})"
            )
    elif not any(r.get("target_digest") == to for r in records):
        # Only digests the promoter placed under this very tag: a rollback restores a state the
        # tag had, never one it did not (and never a digest the history cannot vouch for).
        raise RollbackRefusedError(
            f"{to} is not a digest the history knows for {repository}:{tag}; "
            "rollback only goes back to images the promoter placed there"
        )
    if to == current:
        return RollbackResult(repository, tag, current, to, ALREADY_THERE)
    action = Action(ROLLBACK, SourceImage(repository, tag, to), repository, tag)
    result = promoter.promote(action)
    if result.outcome == CONFLICT:
        raise RollbackRefusedError(
            f"{repository}:{tag} is immutable, ECR refused to move it: {result.reason}"
        )
    if not result.succeeded:
        raise RollbackRefusedError(f"{repository}:{tag} not moved to {to}: {result.reason}")
    history.record(
        f"{ROLLBACK}:{uuid.uuid4()}",
        ActionResult.for_action(
            action, ROLLBACK, target_digest=to, reason=f"rolled back from {current or 'no digest'}"
        ),
        Provenance(trigger=ROLLBACK),
    )
    logger.info("rolled back %s:%s from %s to %s", repository, tag, current, to)
    return RollbackResult(repository, tag, current, to, ROLLED_BACK)


def rollback_hold(history: HistoryReader) -> HoldBack:
    """For reconciliation: a target whose last record is a rollback to the digest it holds now was
    set back on purpose; the sweep leaves it (a new push or request moves it forward)."""

    def hold(action: Action, current: str | None) -> str | None:
        records = history.for_target(action.target_repository, action.target_tag)
        if not records or current is None:
            return None
        last = max(records, key=lambda r: str(r.get("sk", "")))
        if last.get("outcome") == ROLLBACK and last.get("target_digest") == current:
            return f"rolled back to {current} on purpose ({last.get('sk', '')}); not re-promoted"
        return None

    return hold


def _immutable_message(info: RepositoryInfo, tag: str) -> str:
    filters = f" (exclusion filters: {', '.join(info.exclusion_filters)})" if info.exclusion_filters else ""
    return (
        f"{info.name}:{tag} is immutable: the repository's tag mutability is {info.tag_mutability}{filters}, "
        "so ECR will not move the tag; promote the wanted digest under a new tag instead"
    )
