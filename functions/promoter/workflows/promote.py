"""Executing one promotion action against a `Registry`, with ECR's semantics.

Order of writes (as go-containerregistry's pusher does it), so that a failure part-way never leaves
a tag on an incomplete image and a retry only finishes what is missing:

    check the target tag  ->  read the source tree  ->  blobs (mount, else copy; in parallel)
    ->  child manifests by digest  ->  referrers and cosign tags  ->  the tagged manifest, LAST

A target tag already at the wanted digest costs no PutImage (and so emits no PUSH event).
Permanent problems (conflict, missing image or repository, a manifest ECR refuses) come back as
outcomes; retryable ones (`PromoterError.retryable`) propagate so the caller can hand the work back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from promoter.aws.registry import Registry, cosign_tags
from promoter.aws.remote import TargetRegistries, default_target_registries
from promoter.exceptions import (
    ImageNotFoundError,
    InvalidManifestError,
    RegistryError,
    RepositoryNotFoundError,
    TagConflictError,
)
from promoter.model.manifests import Blob, Manifest
from promoter.model.outcomes import (
    ALREADY_PRESENT,
    CONFLICT,
    FAILED,
    PROMOTED,
    SKIPPED,
    ActionResult,
    CopyStats,
)
from promoter.model.plan import Action
from promoter.model.templates import SemVer, parse_semver

logger = logging.getLogger(__name__)

# Blobs moved at once per action: bounds memory (one upload part each) and request rate.
BLOB_COPY_CONCURRENCY = 4


@dataclass(frozen=True)
class ImageTree:
    """Everything that goes along with a promoted image, in the order it must be put."""

    image: Manifest
    dependencies: tuple[Manifest, ...]  # children, then referrers and their children (put by digest)
    signatures: tuple[tuple[str, Manifest], ...]  # cosign tags (put with their tag)

    def manifests(self) -> tuple[Manifest, ...]:
        return (*self.dependencies, *(m for _, m in self.signatures), self.image)


class Promoter:
    """Runs actions on one registry. `concurrency` caps parallel blob transfers.

    An action whose target is in another account or region runs on a Promoter for that registry
    (from `targets`; default: one per process, on the Lambda's own credentials) that reads its
    sources from this one (`source`)."""

    def __init__(
        self,
        registry: Registry,
        *,
        concurrency: int = BLOB_COPY_CONCURRENCY,
        source: Registry | None = None,
        targets: TargetRegistries | None = None,
    ) -> None:
        self._registry = registry  # where targets are read and written
        self._source = source or registry  # where sources are read
        self._targets = targets
        self._concurrency = concurrency

    def _for_target(self, action: Action) -> Promoter:
        """The Promoter that writes this action's target: this one, or one on the other registry."""
        if not action.remote_target or self._source is not self._registry:
            return self
        targets = self._targets or default_target_registries()
        registry = targets.registry_for(action.target_account, action.target_region, action.target_role)
        return Promoter(registry, concurrency=self._concurrency, source=self._registry)

    def promote(self, action: Action) -> ActionResult:
        """Executes the action; raises only retryable errors (see module docstring)."""
        if action.skip_reason:
            return ActionResult.for_action(action, SKIPPED, reason=action.skip_reason)
        try:
            if action.same_repository:
                return self._retag(action)
            return self._for_target(action)._copy(action)
        except RegistryError as exc:
            if exc.retryable:
                raise
            return ActionResult.for_action(action, FAILED, reason=str(exc))

    def _retag(self, action: Action) -> ActionResult:
        """Same repository: the blobs and children are there already; one read, at most one write."""
        repo, digest, tag = action.target_repository, action.source.digest, action.target_tag
        found = self._registry.get_manifests(repo, [digest, tag])
        current = found.get(tag)
        if current is not None and current.digest == digest:
            return ActionResult.for_action(action, ALREADY_PRESENT, target_digest=digest)
        kept = self._floating_kept_back(action, current)
        if kept is not None:
            return kept
        image = found.get(digest)
        if image is None:
            return _source_gone(action)
        return self._put_tag(action, image, current)

    def _copy(self, action: Action) -> ActionResult:
        """Reads (bench/minimum.py; BENCHMARKS.md, figure 1): the target once up front for the tag,
        the digest and its cosign tags, so a replay (at-least-once events, our own PUSH events, the
        reconciliation sweep) ends after one call; the source tree (1 read, +1 for an index or
        referrers); then the target again only for what the first read could not name (children,
        referrers, their cosign tags), never for an image without any."""
        source, target, tag = action.source.repository, action.target_repository, action.target_tag
        digest = action.source.digest
        try:
            present = self._registry.get_manifests(target, [tag, digest, *cosign_tags(digest)])
        except RepositoryNotFoundError:
            return ActionResult.for_action(
                action, FAILED, reason=f"target repository {target!r} does not exist"
            )
        current = present.get(tag)
        if current is not None and current.digest == digest:
            return ActionResult.for_action(action, ALREADY_PRESENT, target_digest=current.digest)
        kept = self._floating_kept_back(action, current)
        if kept is not None:
            return kept
        try:
            tree = self._read_tree(source, digest)
        except ImageNotFoundError:
            return _source_gone(action)
        # The first read answered the top digest and its cosign tags (a missing reference is an
        # answer too: absent). A signature is compared by its tag, so its own digest needs no read.
        asked = {tag, digest, *cosign_tags(digest)}
        unanswered = [m.digest for m in tree.dependencies] + [t for t, _ in tree.signatures]
        unanswered = [r for r in dict.fromkeys(unanswered) if r not in asked]
        if unanswered:
            present = {**present, **self._registry.get_manifests(target, unanswered)}
        signature_held = {
            m.digest for t, m in tree.signatures if (held := present.get(t)) and held.digest == m.digest
        }
        needed = [m for m in tree.manifests() if m.digest not in present and m.digest not in signature_held]
        mounted, copied, nbytes = self._transfer_blobs(source, target, [b for m in needed for b in m.blobs()])
        puts = 0
        for manifest in tree.dependencies:
            if manifest.digest not in present:
                puts += self._registry.put_manifest(target, manifest, None)
        for sig_tag, manifest in tree.signatures:
            held = present.get(sig_tag)
            if held is None or held.digest != manifest.digest:
                puts += self._put_signature(target, sig_tag, manifest)
        result = self._put_tag(action, tree.image, current)
        stats = CopyStats(mounted, copied, nbytes, puts + (result.outcome == PROMOTED))
        return ActionResult.for_action(
            action, result.outcome, target_digest=result.target_digest, reason=result.reason, stats=stats
        )

    def _floating_kept_back(self, action: Action, current: Manifest | None) -> ActionResult | None:
        """A floating tag only moves forward: the version it holds now is the highest semantic
        version among the tags of its image in the target repository (so rules that float a tag
        should also put the exact `{tag}` there). Unknown there = nothing to compare: it moves."""
        if action.floating_version is None or current is None:
            return None
        new = parse_semver(action.floating_version)
        tags = self._registry.tags_of(action.target_repository, current.digest)
        held = [v for t in tags if (v := parse_semver(t))]
        if new is None or not held:
            return None
        newest = max(held, key=_version_key)
        if _version_key(new) > _version_key(newest):
            return None
        return ActionResult.for_action(
            action,
            SKIPPED,
            target_digest=current.digest,
            reason=(
                f"floating tag {action.target_tag!r} stays on {_spell(newest)}: "
                f"{action.floating_version} is not newer"
            ),
        )

    def _put_tag(self, action: Action, image: Manifest, current: Manifest | None) -> ActionResult:
        try:
            written = self._registry.put_manifest(action.target_repository, image, action.target_tag)
        except TagConflictError as exc:
            return ActionResult.for_action(
                action, CONFLICT, target_digest=current.digest if current else None, reason=str(exc)
            )
        return ActionResult.for_action(
            action, PROMOTED if written else ALREADY_PRESENT, target_digest=image.digest
        )

    def _put_signature(self, target: str, tag: str, manifest: Manifest) -> int:
        """A signature tag that cannot move (immutable repository) is logged, not fatal: the image
        itself is still promoted, and its signatures remain verifiable by digest in the source."""
        try:
            return int(self._registry.put_manifest(target, manifest, tag))
        except TagConflictError as exc:
            logger.warning("signature tag %s not copied: %s", tag, exc)
            return 0

    def _read_tree(self, repository: str, digest: str) -> ImageTree:
        """The image, its children (recursively), its OCI referrers, and the cosign tags of the
        image and of its direct children (`cosign sign --recursive`). The image comes with its own
        cosign tags (the digest is known up front); what it lists and its referrers are known only
        after that, so they cost a second read, and only when there are any."""
        top_tags = cosign_tags(digest)
        found = self._source.get_manifests(repository, [digest, *top_tags])
        image = found.get(digest)
        if image is None:
            raise ImageNotFoundError(f"{repository}@{digest}")
        referrers = self._referrers(repository, digest)
        child_tags = tuple(t for child in image.children() for t in cosign_tags(child))
        signature_tags = top_tags + child_tags
        below = [*image.children(), *referrers, *child_tags]
        if below:
            found = {**found, **self._source.get_manifests(repository, below)}
        missing = [d for d in image.children() if d not in found]
        if missing:
            raise InvalidManifestError(
                f"index {repository}@{digest} lists {len(missing)} manifest(s) not in it, e.g. {missing[0]}"
            )
        roots = [found[d] for d in image.children()] + [found[d] for d in referrers if d in found]
        signatures = tuple((t, found[t]) for t in signature_tags if t in found)
        dependencies = self._with_descendants(repository, roots + [m for _, m in signatures])
        signature_digests = {m.digest for _, m in signatures}
        return ImageTree(
            image=image,
            dependencies=tuple(m for m in dependencies if m.digest not in signature_digests),
            signatures=signatures,
        )

    def _referrers(self, repository: str, digest: str) -> tuple[str, ...]:
        try:
            return self._source.list_referrers(repository, digest)
        except RegistryError as exc:
            if exc.retryable:
                raise
            logger.warning(
                "referrers of %s@%s not listed, promoting without them: %s", repository, digest, exc
            )
            return ()

    def _with_descendants(self, repository: str, roots: Sequence[Manifest]) -> list[Manifest]:
        """`roots` and all manifests below them, children before parents, each once."""
        known: dict[str, Manifest] = {m.digest: m for m in roots}
        level = list(roots)
        while level:
            wanted = [d for m in level for d in m.children() if d not in known]
            found = self._source.get_manifests(repository, wanted) if wanted else {}
            lost = [d for d in wanted if d not in found]
            if lost:
                raise InvalidManifestError(f"index in {repository} lists {lost[0]}, which is not there")
            known.update(found)
            level = list(found.values())
        ordered: list[Manifest] = []
        done: set[str] = set()

        def visit(manifest: Manifest) -> None:
            if manifest.digest in done:
                return
            done.add(manifest.digest)
            for child in manifest.children():
                visit(known[child])
            ordered.append(manifest)

        for root in roots:
            visit(root)
        return ordered

    def _transfer_blobs(self, source: str, target: str, blobs: Sequence[Blob]) -> tuple[int, int, int]:
        """Mounts or copies the blobs the target lacks; returns (mounted, copied, bytes copied)."""
        if not blobs:
            return 0, 0, 0
        missing = sorted(self._registry.missing_blobs(target, [b.digest for b in blobs]))
        if not missing:
            return 0, 0, 0
        # Mounting works only inside one registry (same account and region).
        crossing = self._source is not self._registry
        mount = not crossing and self._registry.blob_mounting_enabled()

        def move(digest: str) -> int | None:
            if mount and self._registry.mount_blob(target, digest, source):
                return None
            return self._registry.copy_blob(source, target, digest, self._source if crossing else None)

        with ThreadPoolExecutor(max_workers=min(self._concurrency, len(missing))) as pool:
            moved = list(pool.map(move, missing))
        copied = [n for n in moved if n is not None]
        return len(moved) - len(copied), len(copied), sum(copied)


def _version_key(version: SemVer) -> tuple[int, int, int, int]:
    # A release outranks its own pre-releases (semver.org, rule 11); pre-releases never float.
    return (version.major, version.minor, version.patch, 0 if version.prerelease else 1)


def _spell(version: SemVer) -> str:
    text = f"{version.major}.{version.minor}.{version.patch}"
    return f"{text}-{version.prerelease}" if version.prerelease else text


def _source_gone(action: Action) -> ActionResult:
    return ActionResult.for_action(
        action,
        FAILED,
        reason=f"source image {action.source.repository}@{action.source.digest} no longer exists",
    )
