"""Rollback: move a release tag back to the digest it had before, which only our history knows.

ECR keeps no tag history; the promotion history does (one record per executed action). Read in
time order it is a stack of digests per target tag: a promotion pushes its digest, a rollback pops
back to the digest it restored. "Before" is the entry under the one the tag holds now, so rolling
back twice goes two steps back, not back and forth. The whole history of the tag is read (every
Query page), never one page of it.

A rollback cannot lose work. It reads the tag first, decides from the history, then reads the tag
again right before its PutImage (the read that also fetches the manifest to put): if the tag moved
in between, a promotion landed while the rollback ran, that promotion wins and the rollback is
refused with what it found (`RollbackSupersededError`). ECR has no conditional PutImage, so the gap
left is the one between that last read and the put (milliseconds, not the history read). An
immutable tag is refused before any write (the repository's mutability and exclusion filters, as
ECR applies them), and ImageTagAlreadyExistsException is refused the same way should ECR disagree.

The move is a same-repository retag on the target's registry (another account's or region's when
asked; its history key is `repo@account,region:tag`), never through the idempotent runner, and
every rollback is recorded with outcome `rollback`, who asked and why. The record is part of the
rollback (the next rollback reads it): a record that cannot be written fails the rollback after the
move, with `HistoryWriteError`. A later promotion of the rolled-back digest moves the tag again:
the idempotency record of its first promotion no longer matches the tag (aws/idempotency.py).

Cost (ECR calls): DescribeRepositories 1, BatchGetImage 2 (the tag; the tag and the wanted image),
PutImage 1.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from promoter.aws.history import History, unwritable_text
from promoter.aws.registry import IMAGE_ACTIVATING, IMAGE_ARCHIVED, RepositoryInfo
from promoter.exceptions import (
    HistoryWriteError,
    RepositoryNotFoundError,
    RollbackRefusedError,
    RollbackSupersededError,
    TagConflictError,
)
from promoter.model.manifests import Manifest
from promoter.model.outcomes import ALREADY_PRESENT, PROMOTED, ActionResult, target_location
from promoter.model.plan import Action, Provenance, SourceImage
from promoter.workflows.reconcile import HoldBack

logger = logging.getLogger(__name__)

# The history outcome (and rule name) of a rollback.
ROLLBACK = "rollback"
# Records that say "the tag was at target_digest afterwards".
_PLACING_OUTCOMES = frozenset({PROMOTED, ALREADY_PRESENT})
ROLLED_BACK = "rolled-back"
ALREADY_THERE = "already-there"


# Attaches the attestation of a digest about to be tagged (`Promoter.attach_attestation`): its digest.
Attest = Callable[[Action, Manifest], str | None]


class HistoryReader(History, Protocol):
    """The history as rollback reads it (`DynamoDbHistory`)."""

    def for_target(self, repository: str, tag: str, newest_first: bool = False) -> list[dict[str, Any]]: ...


class RollbackRegistry(Protocol):
    """What rollback needs from the target's registry (`EcrRegistry`)."""

    def describe_repository(self, repository: str) -> RepositoryInfo: ...

    def get_manifests(self, repository: str, references: Sequence[str]) -> dict[str, Manifest]: ...

    def put_manifest(self, repository: str, manifest: Manifest, tag: str | None) -> bool: ...

    def image_status(self, repository: str, digest: str) -> str | None: ...


@dataclass(frozen=True)
class RollbackTarget:
    """The tag to move back, in its registry (account and region None: the promoter's own)."""

    repository: str
    tag: str
    account: str | None = None
    region: str | None = None

    @property
    def location(self) -> str:
        """The repository as history keys name it (`app@210987654321,eu-west-1` when remote)."""
        return target_location(self.repository, self.account, self.region)


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback did: `outcome` is `rolled-back`, or `already-there` (no write)."""

    repository: str
    tag: str
    from_digest: str | None
    to_digest: str
    outcome: str
    account: str | None = None
    region: str | None = None
    attestation: str | None = None  # issue 19: the attestation of the rolled-back-to digest, if any

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
    target: RollbackTarget,
    registry: RollbackRegistry,
    history: HistoryReader,
    to: str | None = None,
    *,
    requested_by: str = "",
    reason: str = "",
    attest: Attest | None = None,
    authenticated_as: str = "",
) -> RollbackResult:
    """Moves `target` back (on `registry`, the target's own). Raises RollbackRefusedError with the
    reason when it cannot (RollbackSupersededError when a promotion moved the tag meanwhile), and
    HistoryWriteError when the tag moved but the history did not take the record. With `attest`
    (issue 19), the digest gets its attestation for rule `rollback` (trigger `rollback`, requester
    `authenticated_as`) right before the tag moves: the tag last, as for any promotion."""
    repository, tag = target.repository, target.tag
    unwritable = unwritable_text(Provenance(trigger=ROLLBACK, requested_by=requested_by, reason=reason))
    if unwritable is not None:  # checked before the put: the record is part of the rollback
        raise RollbackRefusedError(
            f"the rollback's {unwritable} is not Unicode text: no record could hold it"
        )
    try:
        info = registry.describe_repository(repository)
    except RepositoryNotFoundError as exc:
        raise RollbackRefusedError(f"repository {target.location!r} does not exist") from exc
    if info.tag_is_immutable(tag):
        raise RollbackRefusedError(_immutable_message(info, tag))
    held = registry.get_manifests(repository, [tag]).get(tag)
    current = held.digest if held else None
    records = history.for_target(target.location, tag, newest_first=True)
    if to is None:
        to = previous_digest(records, current)
        if to is None:
            raise RollbackRefusedError(
                f"the history holds no earlier digest for {target.location}:{tag} "
                f"(now at {current or 'nothing'})"
            )
    elif not any(r.get("target_digest") == to for r in records):
        # Only digests the promoter placed under this very tag: a rollback restores a state the
        # tag had, never one it did not (and never a digest the history cannot vouch for).
        raise RollbackRefusedError(
            f"{to} is not a digest the history knows for {target.location}:{tag}; "
            "rollback only goes back to images the promoter placed there"
        )
    if to == current:
        return RollbackResult(repository, tag, current, to, ALREADY_THERE, target.account, target.region)
    # Right before the put: the tag must still hold what the decision was made on.
    found = registry.get_manifests(repository, [to, tag])
    now = found.get(tag)
    if (now.digest if now else None) != current:
        raise RollbackSupersededError(
            f"{target.location}:{tag} moved from {current or 'nothing'} to "
            f"{now.digest if now else 'nothing'} while the rollback ran (a promotion landed): "
            "it wins, nothing rolled back; run the rollback again to go back from there"
        )
    image = found.get(to)
    if image is None:
        status = registry.image_status(repository, to)
        if status in (IMAGE_ARCHIVED, IMAGE_ACTIVATING):
            raise RollbackRefusedError(
                f"{target.location}@{to} is {status.lower()} (ECR archive storage class) and cannot be "
                "put until it is restored (UpdateImageStorageClass to STANDARD)"
            )
        raise RollbackRefusedError(f"{to} no longer exists in {target.location}")
    rollback_id = f"{ROLLBACK}:{uuid.uuid4()}"
    action = Action(
        ROLLBACK,
        SourceImage(repository, tag, to),
        repository,
        tag,
        target_account=target.account,
        target_region=target.region,
        forward_only=False,
        trigger=ROLLBACK,
        authenticated_requester=authenticated_as,
        event_id=rollback_id,
    )
    attestation = attest(action, image) if attest is not None else None
    try:
        registry.put_manifest(repository, image, tag)
    except TagConflictError as exc:
        raise RollbackRefusedError(
            f"{target.location}:{tag} is immutable, ECR refused to move it: {exc}"
        ) from exc
    logger.info("rolled back %s:%s from %s to %s", target.location, tag, current, to)
    try:
        history.record(
            rollback_id,
            ActionResult.for_action(
                action, ROLLBACK, target_digest=to, reason=f"rolled back from {current or 'no digest'}"
            ).with_attestation(attestation),
            Provenance(
                trigger=ROLLBACK,
                request_id=rollback_id,
                requested_by=requested_by,
                reason=reason,
                authenticated_as=authenticated_as,
            ),
        )
    except HistoryWriteError as exc:
        raise HistoryWriteError(
            f"{target.location}:{tag} was rolled back to {to}, but the history did not take the record "
            f"(the next rollback will not know of it): {exc}"
        ) from exc
    return RollbackResult(
        repository, tag, current, to, ROLLED_BACK, target.account, target.region, attestation
    )


class LastRecordReader(Protocol):
    """The newest record of a target tag (`DynamoDbHistory.last_for_target`)."""

    def last_for_target(self, repository: str, tag: str) -> dict[str, Any] | None: ...


def rollback_hold(history: LastRecordReader) -> HoldBack:
    """For reconciliation: a target whose last record is a rollback to the digest it holds now was
    set back on purpose; the sweep keeps it there (outcome `kept`; a new push or request moves it
    forward). One Query (one item) per target that is behind."""

    def hold(action: Action, current: str | None) -> str | None:
        if current is None:
            return None
        location = target_location(action.target_repository, action.target_account, action.target_region)
        last = history.last_for_target(location, action.target_tag)
        if last and last.get("outcome") == ROLLBACK and last.get("target_digest") == current:
            return f"rolled back to {current} on purpose ({last.get('sk', '')}); not re-promoted"
        return None

    return hold


def _immutable_message(info: RepositoryInfo, tag: str) -> str:
    filters = f" (exclusion filters: {', '.join(info.exclusion_filters)})" if info.exclusion_filters else ""
    return (
        f"{info.name}:{tag} is immutable: the repository's tag mutability is {info.tag_mutability}{filters}, "
        "so ECR will not move the tag; promote the wanted digest under a new tag instead"
    )
