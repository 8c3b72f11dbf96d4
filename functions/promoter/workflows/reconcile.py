"""Reconciliation: the periodic sweep that catches what lost ECR events left behind.

ECR's events are best effort (ECR.md): a push whose event never arrived is never promoted. For each
push rule, the sweep lists the tagged images of its source repositories (DescribeImages, in pages),
plans each one exactly as its push event would be planned (a synthesized `ImagePushed`), reads the
targets in one BatchGetImage per target repository and page, and hands only the targets that are
missing or behind to the runner: the same idempotent `Promoter` path as the Lambda. Over a
consistent registry it therefore reads and never writes.

Bounded: before each page it asks how much time is left; when too little, it saves a `Cursor`
(rule, repository, DescribeImages token of the page not yet done) and stops. The next run resumes
there, so every rule is reached however large the registry. A page half done when time ran out is
read again: what it already promoted is now in sync and costs a read, not a write.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from promoter.aws.history import History
from promoter.aws.registry import ImagePage, ListedImage, RepositoryInfo
from promoter.aws.remote import target_registry_of
from promoter.aws.results import ResultSink
from promoter.exceptions import (
    PageTokenExpiredError,
    PromoterError,
    RegistryError,
    RepositoryNotFoundError,
)
from promoter.model.config import TRIGGER_PUSH, TRIGGER_REQUEST, PromotionConfig, Rule
from promoter.model.events import ImagePushed, PromotionRequested
from promoter.model.manifests import Manifest
from promoter.model.ordering import push_is_newer, version_is_newer
from promoter.model.outcomes import (
    ALREADY_PRESENT,
    FAILED,
    FAILED_OUTCOMES,
    KEPT,
    PROMOTED,
    ActionResult,
    signature_of,
)
from promoter.model.plan import Action, Provenance, plan_event
from promoter.workflows import gating
from promoter.workflows.attest import attesting
from promoter.workflows.service import WOULD_PROMOTE, ActionRunner, gate_deps, record_history

# A target tag in its registry: (account, region, repository, tag); None = the promoter's own.
TargetKey = tuple[str | None, str | None, str, str]

logger = logging.getLogger(__name__)

# DescribeImages maxResults (the API allows 1-1000): one page is one batch of target reads.
DEFAULT_PAGE_SIZE = 100
# No new page is started with less time than this left: a page of promotions (blob copies
# included) must finish inside the invocation, and the cursor must still be saved.
DEFAULT_TIME_RESERVE_SECONDS = 60.0
RECONCILE_EVENT_PREFIX = "reconcile"
# What history records and result events say started the promotions a sweep runs.
RECONCILE_PROVENANCE = Provenance(trigger="reconcile")


class AttestationRepair(Protocol):
    """Finds and attaches a target's missing attestation (issue 19; `Promoter` has both)."""

    def attestation_of(self, action: Action) -> str | None: ...

    def ensure_attestation(self, action: Action) -> ActionResult: ...


class SourceRegistry(Protocol):
    """What reconciliation needs from the registry besides manifests (`EcrRegistry` has it all)."""

    def get_manifests(self, repository: str, references: Sequence[str]) -> dict[str, Manifest]: ...

    def describe_repository(self, repository: str) -> RepositoryInfo: ...

    def list_repositories(self) -> list[RepositoryInfo]: ...

    def list_tagged_images(self, repository: str, page_size: int, token: str | None) -> ImagePage: ...

    def pushed_at(self, repository: str, digest: str) -> float | None: ...


@dataclass(frozen=True)
class Cursor:
    """Where an unfinished pass resumes: this rule, this source repository, this DescribeImages page
    (`next_token` None = its first page)."""

    rule: str
    repository: str
    next_token: str | None = None


class CursorStore(Protocol):
    """Keeps the one cursor of the scheduled pass between invocations."""

    def load(self) -> Cursor | None: ...

    def save(self, cursor: Cursor) -> None: ...

    def clear(self) -> None: ...


# A hook that may hold back a behind target (e.g. a tag someone rolled back on purpose): given the
# action and the digest the target tag holds now, the reason to leave it, or None.
HoldBack = Callable[[Action, str | None], str | None]
# A hook that names what a promotion repaired (an out-of-band write: workflows.out_of_band.repair_note):
# given the action and the digest the target held before, the outcome's reason, or None.
RepairNote = Callable[[Action, str | None], str | None]


@dataclass(frozen=True)
class ReconcileReport:
    """What one run found and did. `results` lists every target that was not in sync (promoted,
    would-promote, conflicts, failures, skips); in-sync targets are only counted, and so are
    `superseded` images (a newer image of the same source feeds, or already holds, their target)."""

    complete: bool
    dry_run: bool
    rules: int = 0
    repositories: int = 0
    images: int = 0
    in_sync: int = 0
    superseded: int = 0
    results: tuple[ActionResult, ...] = ()
    errors: tuple[str, ...] = ()
    cursor: Cursor | None = None
    retry: bool = False
    history_failures: int = 0  # outcomes the history table did not take (logged at ERROR)

    @property
    def outcomes(self) -> dict[str, int]:
        return dict(Counter(r.outcome for r in self.results))

    @property
    def succeeded(self) -> bool:
        """Nothing failed: no error, no failed or conflicting target. Would-promote (a dry run),
        kept and skipped targets are answers, not failures."""
        return not self.errors and not any(r.outcome in FAILED_OUTCOMES for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcomes"] = self.outcomes
        return data


@dataclass
class _Tally:
    """The running counts of one pass (mutable inside `reconcile` only)."""

    rules: int = 0
    repositories: int = 0
    images: int = 0
    in_sync: int = 0
    superseded: int = 0
    results: list[ActionResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    history_failures: int = 0

    def report(
        self, *, complete: bool, dry_run: bool, cursor: Cursor | None, retry: bool = False
    ) -> ReconcileReport:
        return ReconcileReport(
            complete=complete,
            dry_run=dry_run,
            rules=self.rules,
            repositories=self.repositories,
            images=self.images,
            in_sync=self.in_sync,
            superseded=self.superseded,
            results=tuple(self.results),
            errors=tuple(self.errors),
            cursor=cursor,
            retry=retry,
            history_failures=self.history_failures,
        )


def reconcile(
    config: PromotionConfig,
    registry: SourceRegistry,
    run: ActionRunner | None,
    *,
    history: History | None = None,
    cursors: CursorStore | None = None,
    remaining_seconds: Callable[[], float] = lambda: math.inf,
    time_reserve_seconds: float = DEFAULT_TIME_RESERVE_SECONDS,
    page_size: int = DEFAULT_PAGE_SIZE,
    hold_back: HoldBack | None = None,
    results: ResultSink | None = None,
    repair_note: RepairNote | None = None,
    attestations: AttestationRepair | None = None,
) -> ReconcileReport:
    """One pass (or the rest of one) over every push rule. `run=None` is a dry run: reads only,
    behind targets reported as `would-promote`, no cursor written. What runs is recorded in
    `history` and announced on `results` (trigger `reconcile`), as for an event. With
    `attestations` (a signing key is configured), an in-sync target whose attestation is missing
    gets it, once its rule's gates pass (one referrers listing per in-sync target); so does, once
    the push rules are done, a request rule's target holding an image the rule could have promoted
    (`_repair_request_rules`: the tag never moves)."""
    dry_run = run is None
    tally = _Tally()
    # The rule's gates, each image decided once per pass, nothing held (a pending scan stays
    # pending until the image's scan event or a later pass): never promote what an event was refused.
    gate = gating.GateCheck(None, config, gate_deps(registry)).run  # type: ignore[arg-type]
    start = loaded = cursors.load() if cursors is not None else None
    rules = config.rules_for(TRIGGER_PUSH)
    if start is not None and start.rule not in {r.name for r in rules}:
        logger.info("saved cursor names rule %r, no longer a push rule: starting over", start.rule)
        start = None
    for rule in rules:
        if start is not None and rule.name != start.rule:
            continue  # before the rule the saved pass stopped in
        tally.rules += 1
        for repository in _source_repositories(rule, registry, tally):
            if start is not None and repository < start.repository:
                continue
            token = start.next_token if start is not None and repository == start.repository else None
            start = None  # resumed: from here on, everything
            tally.repositories += 1
            while True:
                if remaining_seconds() < time_reserve_seconds:
                    cursor = Cursor(rule.name, repository, token)
                    if cursors is not None and not dry_run:
                        cursors.save(cursor)
                    logger.info("reconcile out of time; resumes at %s", cursor)
                    return tally.report(complete=False, dry_run=dry_run, cursor=cursor)
                try:
                    page = registry.list_tagged_images(repository, page_size, token)
                except PageTokenExpiredError as exc:
                    logger.warning("saved page token refused, listing %s again: %s", repository, exc)
                    token = None
                    continue
                except RegistryError as exc:
                    if exc.retryable:
                        return _stop(tally, cursors, Cursor(rule.name, repository, token), dry_run, exc)
                    tally.errors.append(f"rule {rule.name}: listing {repository}: {exc}")
                    break
                try:
                    _reconcile_page(
                        rule,
                        config,
                        registry,
                        repository,
                        page,
                        run,
                        history,
                        hold_back,
                        results,
                        tally,
                        gate,
                        repair_note,
                        None if dry_run else attestations,
                    )
                except PromoterError as exc:
                    if exc.retryable:
                        return _stop(tally, cursors, Cursor(rule.name, repository, token), dry_run, exc)
                    # e.g. access denied on a read: reported and counted; the other sources go on.
                    logger.error("reconcile of %s (rule %s) failed: %s", repository, rule.name, exc)
                    tally.errors.append(f"rule {rule.name}: {repository}: {exc}")
                    break
                token = page.next_token
                if token is None:
                    break
        start = None  # the saved repository may be gone: the next rules run in full
    if cursors is not None and not dry_run and loaded is not None:
        cursors.clear()
    complete = True
    if attestations is not None and not dry_run:
        complete = _repair_request_rules(
            config,
            registry,
            gate,
            attestations,
            history,
            results,
            tally,
            remaining_seconds,
            time_reserve_seconds,
            page_size,
        )
    return tally.report(complete=complete, dry_run=dry_run, cursor=None)


def _repair_request_rules(
    config: PromotionConfig,
    registry: SourceRegistry,
    gate: Callable[[Action], gating.Gated],
    attestations: AttestationRepair,
    history: History | None,
    results: ResultSink | None,
    tally: _Tally,
    remaining_seconds: Callable[[], float],
    time_reserve_seconds: float,
    page_size: int,
) -> bool:
    """After the push rules: each target tag of a request rule holding an image the rule could have
    promoted (`promoted_from_source`) gets its missing attestation, once the rule's gates pass for
    that image now (as for a push rule's in-sync target). It never moves a tag: a request rule's
    target moves only when asked. Per page of a source: one DescribeImages, one BatchGetImage per
    target repository, one referrers listing per target tag holding such an image (two when the
    attestation is there: the source's too, to tell a carried one). False when time ran out or a
    retryable fault stopped it (no cursor: the next pass repairs from the first request rule)."""
    for rule in config.rules_for(TRIGGER_REQUEST):
        for repository in _source_repositories(rule, registry, tally):
            token: str | None = None
            while True:
                if remaining_seconds() < time_reserve_seconds:
                    logger.info("reconcile out of time repairing the attestations of rule %s", rule.name)
                    return False
                try:
                    page = registry.list_tagged_images(repository, page_size, token)
                    desired = desired_targets(rule, config, repository, page.images)
                    held = current_digests([d.action for d in desired.targets.values()], registry)
                    for key in desired.targets:
                        digest = held.get(key)
                        fed = promoted_from_source(desired, key, digest) if isinstance(digest, str) else None
                        if fed is not None:
                            _repair_attestation(
                                fed.action, attestations, gate, fed.event_id, history, results, tally
                            )
                except PromoterError as exc:
                    tally.errors.append(f"rule {rule.name}: {repository}: {exc}")
                    if exc.retryable:  # throttled, a service error: the next pass repairs it
                        logger.warning(
                            "attestation repair stopped at %s (rule %s): %s", repository, rule.name, exc
                        )
                        return False
                    logger.error("attestation repair of %s (rule %s) failed: %s", repository, rule.name, exc)
                    break
                token = page.next_token
                if token is None:
                    break
    return True


def _stop(
    tally: _Tally, cursors: CursorStore | None, cursor: Cursor, dry_run: bool, exc: PromoterError
) -> ReconcileReport:
    """A fault a later run can outlive (throttling, a service error): keep the place and stop."""
    logger.warning("reconcile stopped at %s, will resume: %s", cursor, exc)
    if cursors is not None and not dry_run:
        cursors.save(cursor)
    tally.errors.append(f"rule {cursor.rule}: {cursor.repository}: {exc}")
    return tally.report(complete=False, dry_run=dry_run, cursor=cursor, retry=True)


def _source_repositories(rule: Rule, registry: SourceRegistry, tally: _Tally) -> list[str]:
    """The rule's source repositories, sorted (the cursor relies on the order); errors counted."""
    try:
        return source_repositories(rule, registry)
    except RepositoryNotFoundError:
        tally.errors.append(f"rule {rule.name}: source repository {rule.source.repository!r} does not exist")
    except RegistryError as exc:
        tally.errors.append(f"rule {rule.name}: listing repositories: {exc}")
    return []


def source_repositories(rule: Rule, registry: SourceRegistry) -> list[str]:
    """The rule's source repositories, sorted: the one it names, or those its glob matches
    (DescribeRepositories). Raises RepositoryNotFoundError, RegistryError."""
    pattern = rule.source.repository_pattern
    if pattern.is_exact:
        return [registry.describe_repository(pattern.text).name]
    return sorted(r.name for r in registry.list_repositories() if pattern.matches(r.name))


# How a target tag compares with what its rule says it should hold (`target_state`).
IN_SYNC = "in-sync"
MISSING = "missing"
BEHIND = "behind"
AHEAD = "ahead"  # it holds a newer image of the rule (model/ordering.py): it stays
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class DesiredTarget:
    """What one target tag should hold: the action from the newest source image that feeds it."""

    image: ListedImage
    event_id: str
    action: Action


@dataclass(frozen=True)
class DesiredTargets:
    """A rule's plan for listed images of one source repository: the target tags with what they
    should hold, the actions planned as skipped, how many images the rule takes and how many were
    superseded by a newer image feeding the same target tag."""

    targets: dict[TargetKey, DesiredTarget]
    skipped: tuple[Action, ...]
    images: int
    superseded: int
    # Every image that feeds each target tag, by digest (the newest of them is in `targets`): what
    # the rule could have promoted there.
    feeds: dict[TargetKey, dict[str, DesiredTarget]] = field(default_factory=dict)


def promoted_from_source(desired: DesiredTargets, key: TargetKey, held: str) -> DesiredTarget | None:
    """The planned target of the image the target tag holds (`held`), when the rule could have
    promoted it there: an image of this listing, under a tag the rule's source takes, planned onto
    that tag; None when the source holds no such image (a break-glass move of something else)."""
    return desired.feeds.get(key, {}).get(held)


def desired_targets(
    rule: Rule, config: PromotionConfig, repository: str, images: Sequence[ListedImage]
) -> DesiredTargets:
    """Plans each image the rule takes exactly as its event would be planned (a push rule: its push
    event; a request rule: a request naming the rule, on the rule's own source when it names
    requesters), limited to this rule: an image two rules take is planned once per rule, and each
    target belongs to the rule the event would give it to (first rule wins). Several images can
    feed one target tag (`latest`, a floating tag): the newest one, in the engine's sense of newer
    (model/ordering.py: the version for a floating tag, else the push time), is the one the target
    should hold."""
    chosen: dict[TargetKey, DesiredTarget] = {}
    feeds: dict[TargetKey, dict[str, DesiredTarget]] = {}
    skipped: list[Action] = []
    taken = superseded = 0
    for image in images:
        if not rule.source.matches(repository, image.tag):
            continue
        event_id = f"{RECONCILE_EVENT_PREFIX}:{repository}:{image.tag}"
        event: ImagePushed | PromotionRequested
        if rule.trigger == TRIGGER_PUSH:
            event = ImagePushed(event_id, repository, image.digest, image.tag)
        else:
            # A rule with requesters takes requests only on its own source (model/plan.py).
            source_rule = rule.name if rule.requesters else None
            event = PromotionRequested(
                event_id, repository, image.tag, image.digest, rule=rule.name, source_rule=source_rule
            )
        planned = [a for a in plan_event(event, config).actions if a.rule == rule.name]
        if planned:
            taken += 1
        for action in planned:
            if action.skip_reason:
                skipped.append(action)
                continue
            key = _target_key(action)
            feeding = DesiredTarget(image, event_id, action)
            feeds.setdefault(key, {}).setdefault(image.digest, feeding)
            prior = chosen.get(key)
            if prior is None or _supersedes(action, image, prior.image):
                chosen[key] = feeding
            if prior is not None:
                superseded += 1
    return DesiredTargets(chosen, tuple(skipped), taken, superseded, feeds)


def target_state(
    desired: DesiredTarget, held: str | RegistryError | None, registry: SourceRegistry, repository: str
) -> str:
    """IN_SYNC, MISSING, BEHIND, AHEAD (the target holds a newer image of the rule, as the engine
    decides it: `_moves`) or UNREADABLE, for a target tag holding `held` (from `current_digests`)."""
    if isinstance(held, RegistryError):
        return UNREADABLE
    if held is None:
        return MISSING
    if held == desired.action.source.digest:
        return IN_SYNC
    if not _moves(desired.action, desired.image, held, registry):
        return AHEAD
    return BEHIND


def _reconcile_page(
    rule: Rule,
    config: PromotionConfig,
    registry: SourceRegistry,
    repository: str,
    page: ImagePage,
    run: ActionRunner | None,
    history: History | None,
    hold_back: HoldBack | None,
    results: ResultSink | None,
    tally: _Tally,
    gate: Callable[[Action], gating.Gated],
    repair_note: RepairNote | None = None,
    attestations: AttestationRepair | None = None,
) -> None:
    """Plans the page's images as their push events, reads the targets in batches, runs the rest
    through the rule's gates first: an image its event was refused (unsigned, blocked) stays out.
    A stopped action is counted in the report, not recorded or announced again every pass."""
    desired = desired_targets(rule, config, repository, page.images)
    tally.images += desired.images
    tally.superseded += desired.superseded
    for action in desired.skipped:
        tally.results.append(ActionResult.not_run(action))
    current = current_digests([d.action for d in desired.targets.values()], registry)
    for key, target in desired.targets.items():
        action, held = target.action, current.get(key)
        state = target_state(target, held, registry, repository)
        if state == IN_SYNC:
            tally.in_sync += 1
            if attestations is not None:
                _repair_attestation(action, attestations, gate, target.event_id, history, results, tally)
            continue
        if isinstance(held, RegistryError):
            tally.results.append(ActionResult.for_action(action, FAILED, reason=str(held)))
            continue
        if state == AHEAD:
            tally.superseded += 1  # the target holds a newer image of this rule: it is ahead
            continue
        reason = hold_back(action, held) if hold_back is not None else None
        if reason is not None:
            tally.results.append(ActionResult.for_action(action, KEPT, target_digest=held, reason=reason))
            continue
        gated = gate(action)
        if gated.stopped is not None:
            tally.results.append(gated.stopped)
            continue
        if run is None:
            tally.results.append(
                ActionResult.for_action(
                    action,
                    WOULD_PROMOTE,
                    target_digest=held,
                    reason="the target tag holds another digest" if held else "the target tag is missing",
                )
            )
            continue
        logger.info(
            "reconcile: %s:%s is %s, promoting %s",
            action.target_repository,
            action.target_tag,
            f"at {held}" if held else "missing",
            action.source.digest,
        )
        # Retryable errors propagate: the caller keeps the place.
        result = run(attesting(action, gated.evidence, RECONCILE_PROVENANCE, target.event_id))
        if gated.evidence and not result.replayed:
            result = replace(result, evidence=gated.evidence, signature=signature_of(gated.evidence))
        if repair_note is not None and result.outcome == PROMOTED and not result.replayed:
            note = repair_note(action, held)
            result = replace(result, reason=note) if note else result
        tally.results.append(result)
        if result.replayed:
            continue
        if history is not None and not record_history(history, target.event_id, result, RECONCILE_PROVENANCE):
            tally.history_failures += 1
        if results is not None:
            results.publish([result], RECONCILE_PROVENANCE)


def _repair_attestation(
    action: Action,
    attestations: AttestationRepair,
    gate: Callable[[Action], gating.Gated],
    event_id: str,
    history: History | None,
    results: ResultSink | None,
    tally: _Tally,
) -> None:
    """An in-sync target whose attestation is missing (promoted before a key was configured, an
    attestation deleted, a break-glass move a person could not sign) gets it, once the rule's gates
    pass for its image: recorded and announced as `already-present` naming the attestation."""
    if attestations.attestation_of(action) is not None:
        return
    gated = gate(action)
    if gated.stopped is not None:
        logger.info(
            "reconcile: %s:%s lacks its attestation; not attested: %s",
            action.target_repository,
            action.target_tag,
            gated.stopped.reason,
        )
        return
    result = attestations.ensure_attestation(
        attesting(action, gated.evidence, RECONCILE_PROVENANCE, event_id)
    )
    if result.outcome == ALREADY_PRESENT and result.stats.manifests_put:
        result = replace(
            result,
            evidence=gated.evidence or None,
            signature=signature_of(gated.evidence),
            reason=f"its attestation was missing: attached {result.attestation}",
        )
    elif result.outcome == ALREADY_PRESENT:
        return  # attached meanwhile (a promotion of the same image ran): nothing to say
    tally.results.append(result)
    if history is not None and not record_history(history, event_id, result, RECONCILE_PROVENANCE):
        tally.history_failures += 1
    if results is not None:
        results.publish([result], RECONCILE_PROVENANCE)


def _supersedes(action: Action, image: ListedImage, prior: ListedImage) -> bool:
    """Whether `image` is newer than `prior` for the action's target (model/ordering.py)."""
    if action.floating_version is not None:
        return version_is_newer(image.tag, [prior.tag])
    return push_is_newer(image.pushed_at, prior.pushed_at)


def _moves(action: Action, image: ListedImage, held: str, registry: SourceRegistry) -> bool:
    """Whether the target tag, holding `held`, should move to `image`: as the engine decides it
    (a floating tag by the versions `held` carries in the target repository, one DescribeImages
    there; any other tag by push time in the source repository, one DescribeImages here)."""
    if action.floating_version is not None:
        tags = target_registry_of(action, registry).tags_of(action.target_repository, held)
        return version_is_newer(action.floating_version, tags)
    return push_is_newer(image.pushed_at, registry.pushed_at(action.source.repository, held))


def _target_key(action: Action) -> TargetKey:
    """A target tag, in its registry: the same name in another account or region is another."""
    return (action.target_account, action.target_region, action.target_repository, action.target_tag)


def current_digests(
    actions: Sequence[Action], registry: SourceRegistry
) -> dict[TargetKey, str | RegistryError | None]:
    """The digest each target tag holds now (None: no such tag), one batch read per target
    repository (in its own registry: another account's or region's for a remote target); a target
    repository that cannot be read maps its tags to the error."""
    by_repository: dict[tuple[str | None, str | None, str], list[Action]] = {}
    for action in actions:
        account, region, repository, _ = _target_key(action)
        by_repository.setdefault((account, region, repository), []).append(action)
    found: dict[TargetKey, str | RegistryError | None] = {}
    for (_, _, repository), grouped in by_repository.items():
        keys = [_target_key(a) for a in grouped]
        tags = [a.target_tag for a in grouped]
        try:
            manifests = target_registry_of(grouped[0], registry).get_manifests(repository, tags)
        except RepositoryNotFoundError:
            error = RepositoryNotFoundError(f"target repository {repository!r} does not exist")
            found.update({k: error for k in keys})
            continue
        except RegistryError as exc:
            if exc.retryable:
                raise
            found.update({k: exc for k in keys})
            continue
        found.update({k: (m.digest if (m := manifests.get(k[3])) else None) for k in keys})
    return found
