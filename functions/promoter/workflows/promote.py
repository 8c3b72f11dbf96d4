"""Executing one promotion action against a `Registry`, with ECR's semantics.

Order of writes (as go-containerregistry's pusher does it), so that a failure part-way never leaves
a tag on an incomplete image and a retry only finishes what is missing:

    check the target tag  ->  read the source tree  ->  blobs (mount, else copy; in parallel)
    ->  child manifests by digest  ->  referrers and cosign tags  ->  OUR ATTESTATION (issue 19)
    ->  the tagged manifest, LAST

The attestation (with an `Attestor`: a signing key is configured) is the promoted digest's signed
promotion record, an OCI 1.1 referrer put by digest in the target repository, its blobs (the empty
config, the bundle) first. Exactly once per (digest, target, rule): one listing of the digest's
bundle referrers in the target says whether ours is there already (a redelivery after a crash
between the attestation and the tag finds it and writes none), and a tag already in place whose
attestation is missing gets it (`already-present`, repaired). A referrer that came with the source
tree (an attestation of ours on the source image, carried like any referrer) is never taken for
this promotion's, even when its annotations say so. Nothing is attested for an action that writes
no tag (kept, skipped, failed; the gates stop unverified ones before), and a tag move that ECR
would refuse (an immutable tag) is found to be a conflict before anything is written. An
attestation that cannot be signed or put fails the action before its tag (retryable errors
propagate, as any other): a tag is never written on an image without its attestation.

A target tag already at the wanted digest costs no PutImage (and so emits no PUSH event). A target
tag that holds another image moves only if the image being promoted is newer (model/ordering.py:
version for a floating tag, push time in the source repository for any other tag of a rule's
action); else the outcome is `kept` and nothing is written. That read costs one DescribeImages in
the source repository (two when the held image is not there), only when the tag would move.
Permanent problems (conflict, missing image or repository, a manifest ECR refuses) come back as
outcomes; retryable ones (`PromoterError.retryable`) propagate so the caller can hand the work back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from promoter.aws.registry import IMAGE_ACTIVATING, IMAGE_ACTIVE, IMAGE_ARCHIVED, Registry, cosign_tags
from promoter.aws.remote import TargetRegistries, default_target_registries
from promoter.exceptions import (
    AttestationError,
    ImageNotFoundError,
    InvalidManifestError,
    RegistryError,
    RepositoryNotFoundError,
    TagConflictError,
    TrustTreeTooLargeError,
)
from promoter.model.config import CreateMissing
from promoter.model.manifests import Blob, Manifest
from promoter.model.ordering import highest_version, push_is_newer, spell, version_is_newer
from promoter.model.outcomes import (
    ALREADY_PRESENT,
    CONFLICT,
    FAILED,
    KEPT,
    PROMOTED,
    SKIPPED,
    ActionResult,
    CopyStats,
)
from promoter.model.plan import Action
from promoter.workflows.attest import Attestor, our_attestations

logger = logging.getLogger(__name__)

# Blobs moved at once per action: bounds memory (one upload part each) and request rate.
BLOB_COPY_CONCURRENCY = 4
# Bounds on the trust material carried with an image (children, referrers, cosign tags, and theirs,
# recursively): levels below the image, and manifests in all. A real tree is ~3 levels deep (index
# -> platform child -> SBOM -> its signature); past either bound the promotion fails, permanently.
TRUST_TREE_MAX_DEPTH = 8
TRUST_TREE_MAX_MANIFESTS = 500


@dataclass(frozen=True)
class ImageTree:
    """Everything that goes along with a promoted image, in the order it must be put."""

    image: Manifest
    dependencies: tuple[Manifest, ...]  # children, then referrers and their children (put by digest)
    signatures: tuple[tuple[str, Manifest], ...]  # cosign tags (put with their tag)

    def manifests(self) -> tuple[Manifest, ...]:
        return (*self.dependencies, *(m for _, m in self.signatures), self.image)


class TrustMaterialArchivedError(RegistryError):
    """Referrers of an image being promoted (signatures, SBOMs, attestations) are in ECR's archive
    storage class: they cannot be pulled, so they cannot go along until they are restored."""

    def __init__(self, message: str, archived: dict[str, str]) -> None:
        super().__init__(message)
        self.archived = archived  # digest -> ARCHIVED or ACTIVATING


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
        attestor: Attestor | None = None,
    ) -> None:
        self._registry = registry  # where targets are read and written
        self._source = source or registry  # where sources are read
        self._targets = targets
        self._concurrency = concurrency
        self._attestor = attestor  # None: no attestation (no signing key configured)

    def _for_target(self, action: Action) -> Promoter:
        """The Promoter that writes this action's target: this one, or one on the other registry."""
        if not action.remote_target or self._source is not self._registry:
            return self
        targets = self._targets or default_target_registries()
        registry = targets.registry_for(action.target_account, action.target_region, action.target_role)
        return Promoter(
            registry, concurrency=self._concurrency, source=self._registry, attestor=self._attestor
        )

    def target_digest(self, action: Action) -> str | None:
        """The digest the action's target tag holds now (one BatchGetImage in the target's registry);
        None when the tag or its repository is not there, or the read failed for good (the action
        itself then reports why). Raises only retryable errors."""
        promoter = self if action.same_repository else self._for_target(action)
        try:
            held = promoter._registry.get_manifests(action.target_repository, [action.target_tag])
        except RegistryError as exc:
            if exc.retryable:
                raise
            return None
        current = held.get(action.target_tag)
        return current.digest if current else None

    def promote(self, action: Action) -> ActionResult:
        """Executes the action; raises only retryable errors (see module docstring)."""
        if action.skip_reason:
            return ActionResult.not_run(action)
        try:
            if action.same_repository:
                return self._retag(action)
            return self._for_target(action)._copy(action)
        except (RegistryError, AttestationError) as exc:
            if exc.retryable:
                raise
            return ActionResult.for_action(action, FAILED, reason=str(exc))

    def ensure_attestation(self, action: Action) -> ActionResult:
        """For a target tag that holds the action's digest already (reconciliation's in-sync
        targets): its attestation, attached when missing. `already-present` with the attestation's
        digest (`stats.manifests_put` 1 when it was written now), `failed` when the tag no longer
        holds the digest or the attestation could not be attached. Raises only retryable errors."""
        try:
            promoter = self if action.same_repository else self._for_target(action)
            found = promoter._registry.get_manifests(action.target_repository, [action.target_tag])
            held = found.get(action.target_tag)
            if held is None or held.digest != action.source.digest:
                where = f"{action.target_repository}:{action.target_tag}"
                return ActionResult.for_action(
                    action,
                    FAILED,
                    target_digest=held.digest if held else None,
                    reason=f"{where} no longer holds {action.source.digest}: not attested",
                )
            return promoter._already_present(action, held)
        except (RegistryError, AttestationError) as exc:
            if exc.retryable:
                raise
            return ActionResult.for_action(action, FAILED, reason=str(exc))

    def _already_present(self, action: Action, image: Manifest) -> ActionResult:
        """The target tag holds the digest: nothing to copy; its attestation attached if missing."""
        attestation, written = self._attest(action, image, None)
        return ActionResult.for_action(
            action, ALREADY_PRESENT, target_digest=image.digest, stats=CopyStats(manifests_put=written)
        ).with_attestation(attestation)

    def attach_attestation(self, action: Action, image: Manifest) -> str | None:
        """Our attestation of `image` for an action that writes its tag itself (a rollback: this
        Promoter's registry is the target's), attached when missing, before that write; its digest
        (None: nothing attests here, or a person's unattested move). Raises AttestationError,
        RegistryError."""
        return self._attest(action, image, set())[0]

    def _attest(self, action: Action, image: Manifest, carried: set[str] | None) -> tuple[str | None, int]:
        """Our attestation of `image` for the action in the target repository (this Promoter's
        registry): (its digest, 1 when put now else 0); (None, 0) without an Attestor.

        One listing of the digest's bundle referrers says whether it is there; a listed one whose
        annotations name this rule and target is ours unless it came with the source tree
        (`carried`: the digests put from the source; None = not known here, so a match is looked
        up among the source image's own referrers, one more listing, only for a match in another
        repository). Otherwise: its blobs the target lacks (one BatchCheckLayerAvailability, then
        the layer-upload API), then the manifest by digest (PutImage, no tag).
        Raises AttestationError, RegistryError."""
        attestor = self._attestor
        if attestor is None:
            return None, 0
        found = self._ours(attestor, action, image.digest, carried)
        if found is not None:
            return found, 0
        repository = action.target_repository
        host = self._registry.registry_host()
        try:
            artifact = attestor.build(
                action, image, host, attestor.source(self._source.registry_host(), action)
            )
        except AttestationError as exc:
            if exc.retryable or attestor.required:
                raise
            # A person's break-glass move or rollback: the key policy may not let them sign. The
            # move goes on, unattested, and says so (`promoter status` shows the gap).
            logger.error("%s:%s not attested: %s", repository, action.target_tag, exc)
            return None, 0
        for digest in sorted(self._registry.missing_blobs(repository, list(artifact.blobs))):
            self._registry.upload_blob(repository, artifact.blobs[digest])
        self._registry.put_manifest(repository, artifact.manifest, None)
        logger.info(
            "attestation %s of %s@%s for %s (rule %s) attached",
            artifact.manifest.digest,
            repository,
            image.digest,
            attestor.target(host, action),
            action.rule,
        )
        return artifact.manifest.digest, 1

    def _ours(self, attestor: Attestor, action: Action, digest: str, carried: set[str] | None) -> str | None:
        """Our attestation of `digest` for the action's rule and target in the target repository
        (this Promoter's registry), None when there is none; `carried` as `_attest` says."""
        ours = our_attestations(self._registry, action, digest)
        if ours and carried is None and not action.same_repository:
            source = action.source
            carried = set(
                self._source.referrer_annotations(source.repository, source.digest, attestor.artifact_type)
            )
        return next((d for d in ours if d not in (carried or ())), None)

    @property
    def attests(self) -> bool:
        """Whether this Promoter attaches attestations (a signing key is configured)."""
        return self._attestor is not None

    def attestation_of(self, action: Action) -> str | None:
        """Our attestation of the action's digest for its rule and target, in the target
        repository, None when it is missing (or nothing attests here): one listing of the digest's
        bundle referrers. Raises RegistryError."""
        if self._attestor is None:
            return None
        promoter = self if action.same_repository else self._for_target(action)
        return promoter._ours(self._attestor, action, action.source.digest, None)

    def _refused_tag(self, action: Action, current: Manifest | None) -> ActionResult | None:
        """With an Attestor, a tag move ECR would refuse (the tag is immutable there) is the
        `conflict` it would end in, found before the attestation is written: never an attestation
        of a promotion that did not happen. One DescribeRepositories, only for a tag that moves."""
        if self._attestor is None or current is None:
            return None
        info = self._registry.describe_repository(action.target_repository)
        if not info.tag_is_immutable(action.target_tag):
            return None
        return ActionResult.for_action(
            action,
            CONFLICT,
            target_digest=current.digest,
            reason=(
                f"{action.target_repository}:{action.target_tag} is immutable and holds {current.digest}: "
                f"not moved to {action.source.digest}"
            ),
        )

    def _retag(self, action: Action) -> ActionResult:
        """Same repository: the blobs and children are there already; one read, at most one write."""
        repo, digest, tag = action.target_repository, action.source.digest, action.target_tag
        found = self._registry.get_manifests(repo, [digest, tag])
        current = found.get(tag)
        if current is not None and current.digest == digest:
            return self._already_present(action, current)
        kept = self._kept(action, current)
        if kept is not None:
            return kept
        image = found.get(digest)
        if image is None:
            return self._source_unreadable(action)
        refused = self._refused_tag(action, current)
        if refused is not None:
            return refused
        attestation, written = self._attest(action, image, set())
        result = self._put_tag(action, image, current)
        stats = CopyStats(manifests_put=written + (result.outcome == PROMOTED))
        return replace(result, stats=stats).with_attestation(attestation)

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
            empty_target = False
        except RepositoryNotFoundError:
            refused = self._missing_target(action)
            if refused is not None:
                return refused
            # An empty target: created just now (create_missing), or by ECR on the first push.
            present, empty_target = {}, True
        current = present.get(tag)
        if current is not None and current.digest == digest:
            return self._already_present(action, current)
        kept = self._kept(action, current)
        if kept is not None:
            return kept
        refused = self._refused_tag(action, current)
        if refused is not None:
            return refused
        try:
            tree = self._read_tree(source, digest)
        except ImageNotFoundError:
            return self._source_unreadable(action)
        except TrustMaterialArchivedError as exc:
            return self._trust_material_archived(action, exc)
        # The first read answered the top digest and its cosign tags (a missing reference is an
        # answer too: absent). A signature is compared by its tag, so its own digest needs no read.
        stats = self._put_trust_material(
            source, target, tree, present, {tag, digest, *cosign_tags(digest)}, empty_target
        )
        carried = {m.digest for m in tree.manifests()}
        attestation, written = self._attest(action, tree.image, carried)
        result = self._put_tag(action, tree.image, current)
        stats = replace(stats, manifests_put=stats.manifests_put + written + (result.outcome == PROMOTED))
        return ActionResult.for_action(
            action, result.outcome, target_digest=result.target_digest, reason=result.reason, stats=stats
        ).with_attestation(attestation)

    def _put_trust_material(
        self,
        source: str,
        target: str,
        tree: ImageTree,
        present: dict[str, Manifest],
        asked: set[str],
        empty_target: bool = False,
    ) -> CopyStats:
        """Everything of `tree` but its top manifest's tag that the target lacks: blobs, children and
        referrers by digest, cosign tags. `present` holds what was read of the target (`asked`:
        the references that read named); the rest is read here, once. A target known to be empty
        (`empty_target`: created just now, or not yet, by a creation template on the first push)
        lacks everything and is not read again: ECR would answer RepositoryNotFoundException."""
        unanswered = [m.digest for m in tree.dependencies] + [t for t, _ in tree.signatures]
        unanswered = [r for r in dict.fromkeys(unanswered) if r not in asked]
        if unanswered and not empty_target:
            present = {**present, **self._registry.get_manifests(target, unanswered)}
        signature_held = {
            m.digest for t, m in tree.signatures if (held := present.get(t)) and held.digest == m.digest
        }
        needed = [m for m in tree.manifests() if m.digest not in present and m.digest not in signature_held]
        mounted, copied, nbytes = self._transfer_blobs(
            source, target, [b for m in needed for b in m.blobs()], empty_target
        )
        puts = 0
        for manifest in tree.dependencies:
            if manifest.digest not in present:
                puts += self._registry.put_manifest(target, manifest, None)
        for sig_tag, manifest in tree.signatures:
            held = present.get(sig_tag)
            if held is None or held.digest != manifest.digest:
                puts += self._put_signature(target, sig_tag, manifest)
        return CopyStats(mounted, copied, nbytes, puts)

    def _missing_target(self, action: Action) -> ActionResult | None:
        """The target repository does not exist. None when a repository creation template applied
        for CREATE_ON_PUSH covers it (ECR creates it, with the template's settings, on the first
        push-type call: a layer upload, PutImage), or when none does and the target says
        `create_missing` (created here, with CreateRepository): the promotion goes on into an empty
        target. Otherwise `failed`, saying so (a template read that fails for good is named there,
        and logged). Raises only retryable errors."""
        target = action.target_repository
        try:
            prefix = self._registry.creation_template_for(target)
        except RegistryError as exc:
            if exc.retryable:
                raise
            logger.warning("repository creation templates of the target's registry not read: %s", exc)
            return ActionResult.for_action(
                action,
                FAILED,
                reason=(
                    f"target repository {target!r} does not exist (its registry's repository creation "
                    f"templates could not be read: {exc})"
                ),
            )
        if prefix is None and action.create_missing is not None:
            return self._create_target(action)
        if prefix is None:
            return ActionResult.for_action(
                action,
                FAILED,
                reason=(
                    f"target repository {target!r} does not exist and no CREATE_ON_PUSH repository "
                    "creation template covers it"
                ),
            )
        logger.info(
            "target repository %s does not exist: the repository creation template %r (CREATE_ON_PUSH) "
            "creates it with the promotion's first push",
            target,
            prefix,
        )
        return None

    def _create_target(self, action: Action) -> ActionResult | None:
        """The rule's `create_missing`: CreateRepository with its settings (None: created, or
        created meanwhile by another run; the promotion goes on into it), or `failed` saying why
        it could not be created. Raises only retryable errors."""
        target = action.target_repository
        settings = CreateMissing.from_dict(json.loads(action.create_missing or "{}"))
        try:
            created = self._registry.create_repository(target, settings)
        except RegistryError as exc:
            if exc.retryable:
                raise
            return ActionResult.for_action(
                action,
                FAILED,
                reason=f"target repository {target!r} does not exist and could not be created: {exc}",
            )
        if created:
            logger.info("target repository %s created (create_missing): %s", target, action.create_missing)
        return None

    def carry_trust_material(self, action: Action) -> ActionResult:
        """Trust material that arrived after the image was promoted (a signature, an SBOM, an
        attestation: referrers and cosign tags, and theirs) put into the action's target, which
        holds the image already; the target tag is not touched. `promoted` when something was
        written, `already-present` when the target lacked nothing (a replay costs reads only),
        `failed` when the target no longer holds the image, or as `promote` says for a source that
        is gone or trust material that is archived. Raises only retryable errors."""
        if action.same_repository:
            return ActionResult.for_action(action, ALREADY_PRESENT, target_digest=action.source.digest)
        try:
            return self._for_target(action)._carry(action)
        except RegistryError as exc:
            if exc.retryable:
                raise
            return ActionResult.for_action(action, FAILED, reason=str(exc))

    def _carry(self, action: Action) -> ActionResult:
        source, target, digest = action.source.repository, action.target_repository, action.source.digest
        asked = {digest, *cosign_tags(digest)}
        try:
            present = self._registry.get_manifests(target, list(asked))
        except RepositoryNotFoundError:
            return ActionResult.for_action(
                action, FAILED, reason=f"target repository {target!r} does not exist"
            )
        if digest not in present:
            return ActionResult.for_action(
                action, FAILED, reason=f"{target} no longer holds {digest}: its trust material is not carried"
            )
        try:
            tree = self._read_tree(source, digest)
        except ImageNotFoundError:
            return self._source_unreadable(action)
        except TrustMaterialArchivedError as exc:
            return self._trust_material_archived(action, exc)
        stats = self._put_trust_material(source, target, tree, present, asked)
        outcome = PROMOTED if stats.manifests_put else ALREADY_PRESENT
        return ActionResult.for_action(action, outcome, target_digest=digest, stats=stats)

    def _source_unreadable(self, action: Action) -> ActionResult:
        """The source image could not be read: gone, or in ECR's archive storage class (not pullable
        until restored, which takes up to 20 minutes). An archived source is reported as such, or,
        when its rule says `source: {restore_archived: true}`, restored and skipped for now: the
        reconciliation sweep promotes it once it is ACTIVE again (a failure is not remembered by the
        idempotency record, so nothing holds that back)."""
        repository, digest = action.source.repository, action.source.digest
        where = f"{repository}@{digest}"
        try:
            status = self._source.image_status(repository, digest)
        except RegistryError as exc:
            if exc.retryable:
                raise
            logger.warning("status of %s unknown (%s); taking it as gone", where, exc)
            status = None
        if status not in (IMAGE_ARCHIVED, IMAGE_ACTIVATING):
            return _source_gone(action)
        if not action.restore_archived:
            state = "archived" if status == IMAGE_ARCHIVED else "being restored from the archive (ACTIVATING)"
            return ActionResult.for_action(
                action,
                FAILED,
                reason=(
                    f"source image {where} is {state} (ECR archive storage class) and cannot be pulled "
                    "until it is restored (UpdateImageStorageClass to STANDARD; a rule with "
                    "source.restore_archived restores its sources itself)"
                ),
            )
        if status == IMAGE_ARCHIVED:
            restored = self._restore(action, repository, digest, f"source image {where}")
            if isinstance(restored, ActionResult):
                return restored
            status = restored
        return ActionResult.for_action(
            action,
            SKIPPED,
            reason=(
                f"source image {where} is archived; restore requested ({status}): the reconciliation "
                "sweep promotes it once it is ACTIVE"
            ),
        )

    def _restore(self, action: Action, repository: str, digest: str, what: str) -> str | ActionResult:
        """Asks ECR to restore an archived image: its status after, or the action's `failed` result
        naming `what` when the restore is refused for good (a retryable refusal propagates)."""
        try:
            status = self._source.restore_image(repository, digest)
        except RegistryError as exc:
            if exc.retryable:
                raise
            return ActionResult.for_action(
                action, FAILED, reason=f"{what} is archived and could not be restored: {exc}"
            )
        logger.info("restore of archived %s requested: %s", what, status)
        return status

    def _trust_material_archived(self, action: Action, exc: TrustMaterialArchivedError) -> ActionResult:
        """Trust material of the image is archived: the promotion names it (`failed`, nothing
        written: the image would arrive without what verifies it), or, when its rule says
        `source: {restore_archived: true}`, asks ECR to restore it and is `skipped` for now (the
        reconciliation sweep promotes the image, with it, once it is ACTIVE again)."""
        source = action.source.repository
        named = ", ".join(f"{d} ({s})" for d, s in exc.archived.items())
        if not action.restore_archived:
            return ActionResult.for_action(
                action,
                FAILED,
                reason=(
                    f"trust material of {source}@{action.source.digest} is archived (ECR archive storage "
                    f"class): {named}; not promoted without it (restore it with UpdateImageStorageClass "
                    "to STANDARD; a rule with source.restore_archived restores it itself)"
                ),
            )
        for digest, status in exc.archived.items():
            if status != IMAGE_ARCHIVED:
                continue  # ACTIVATING: a restore is under way already
            restored = self._restore(action, source, digest, f"trust material {source}@{digest}")
            if isinstance(restored, ActionResult):
                return restored
        return ActionResult.for_action(
            action,
            SKIPPED,
            reason=(
                f"trust material of {source}@{action.source.digest} is archived: {named}; restore "
                "requested: the reconciliation sweep promotes the image with it once it is ACTIVE"
            ),
        )

    def _kept(self, action: Action, current: Manifest | None) -> ActionResult | None:
        """`kept` when the target tag holds an image newer than the one promoted (model/ordering.py),
        else None: the tag moves."""
        if current is None:
            return None
        if action.floating_version is not None:
            return self._floating_kept_back(action, current)
        if not action.forward_only:
            return None
        source = action.source.repository
        times = self._source.pushed_times(source, [current.digest, action.source.digest])
        if push_is_newer(times.get(action.source.digest), times.get(current.digest)):
            return None
        return ActionResult.for_action(
            action,
            KEPT,
            target_digest=current.digest,
            reason=(
                f"{action.target_repository}:{action.target_tag} stays on {current.digest}, "
                f"pushed to {source} after {action.source.digest}"
            ),
        )

    def _floating_kept_back(self, action: Action, current: Manifest) -> ActionResult | None:
        """A floating tag only moves forward: the version it holds now is the highest semantic
        version among the tags of its image in the target repository (so rules that float a tag
        should also put the exact `{tag}` there). Unknown there = nothing to compare: it moves."""
        version = action.floating_version or ""
        tags = self._registry.tags_of(action.target_repository, current.digest)
        if version_is_newer(version, tags):
            return None
        held = highest_version(tags)
        return ActionResult.for_action(
            action,
            KEPT,
            target_digest=current.digest,
            reason=(
                f"floating tag {action.target_tag!r} stays on {spell(held) if held else current.digest}: "
                f"{version} is not newer"
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
        """The image and all trust material that goes with it, so that what verifies here also
        verifies in the target: its children (recursively), and for the image, every child and
        every referrer found, their OCI 1.1 referrers (all pages) and cosign tags (a signature on a
        platform child, an SBOM of a child, a signature on an SBOM).

        Read level by level: a manifest's digest is asked for together with its cosign tags, and
        the referrers of a level are listed side by side, so each level costs one read of the
        source whatever its width. Bounded (TRUST_TREE_MAX_DEPTH levels, TRUST_TREE_MAX_MANIFESTS
        manifests): past a bound the action fails with `TrustTreeTooLargeError` rather than carry a
        part of it, which would not verify in the target as the whole does here.

        Referrers are listed with every status: an archived one (not pullable) stops the read with
        `TrustMaterialArchivedError` naming it, and so does a listed referrer that cannot be read
        because ECR holds it archived (the /v2 referrers API says no status). A failure to list
        referrers is an error of the action, never a promotion without them.

        Raises ImageNotFoundError (no image), InvalidManifestError (an index lists a manifest that
        is not there), TrustTreeTooLargeError, TrustMaterialArchivedError, the listing's errors."""
        found = self._source.get_manifests(repository, [digest, *cosign_tags(digest)])
        image = found.get(digest)
        if image is None:
            raise ImageNotFoundError(f"{repository}@{digest}")
        known: dict[str, Manifest] = {digest: image}
        signatures: dict[str, Manifest] = {t: found[t] for t in cosign_tags(digest) if t in found}
        level = [image, *signatures.values()]
        depth = 0
        while level:
            # Children must exist (an index without them cannot be put); referrers and cosign tags
            # are optional (absent or deleted meanwhile: nothing to carry). A signature stored
            # under a cosign tag is not a subject of referrers: its referrers are not listed.
            children = [d for m in level for d in m.children() if d not in known]
            held_by_tag = signatures_digests(signatures)
            subjects = [m.digest for m in level if m.digest not in held_by_tag]
            referrers = [d for d in self._referrers_of(repository, subjects) if d not in known]
            fresh = list(dict.fromkeys(children + referrers))
            if not fresh:
                break
            depth += 1
            if (
                depth > TRUST_TREE_MAX_DEPTH
                or len(known) + len(signatures) + len(fresh) > TRUST_TREE_MAX_MANIFESTS
            ):
                raise TrustTreeTooLargeError(
                    f"{repository}@{digest} carries more than {TRUST_TREE_MAX_MANIFESTS} manifests or "
                    f"{TRUST_TREE_MAX_DEPTH} levels of children and referrers: not promoted, since a "
                    "part of its trust material would not verify in the target as the whole does here"
                )
            tags = [t for d in fresh for t in cosign_tags(d) if t not in signatures]
            found = self._source.get_manifests(repository, [*fresh, *tags])
            lost = [d for d in children if d not in found]
            if lost:
                raise InvalidManifestError(f"index in {repository} lists {lost[0]}, which is not there")
            self._raise_if_archived(repository, [d for d in referrers if d not in found])
            level = [found[d] for d in fresh if d in found]
            known.update((m.digest, m) for m in level)
            tagged = {t: found[t] for t in tags if t in found}
            signatures.update(tagged)
            level += [m for m in tagged.values() if m.digest not in known]
        held_by_tag = signatures_digests(signatures)
        return ImageTree(
            image=image,
            dependencies=tuple(
                m
                for m in _children_first(known, digest)
                if m.digest != digest and m.digest not in held_by_tag
            ),
            signatures=tuple(signatures.items()),
        )

    def _referrers_of(self, repository: str, subjects: Sequence[str]) -> list[str]:
        """The referrers of each subject (ListImageReferrers follows every page), listed side by
        side. Raises TrustMaterialArchivedError when any of them is archived."""
        if not subjects:
            return []
        if len(subjects) == 1:
            listed = [self._referrers(repository, subjects[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(self._concurrency, len(subjects))) as pool:
                listed = list(pool.map(lambda subject: self._referrers(repository, subject), subjects))
        archived = {d: s for statuses in listed for d, s in statuses.items() if s != IMAGE_ACTIVE}
        if archived:
            raise TrustMaterialArchivedError(f"trust material in {repository} is archived", archived)
        return [d for statuses in listed for d in statuses]

    def _referrers(self, repository: str, digest: str) -> dict[str, str]:
        """The referrers of one subject with their status. A listing that fails for good (say
        AccessDenied on ListImageReferrers) is the action's failure, naming it: the image never goes
        without the signatures and SBOMs it may have. Retryable failures propagate as they are."""
        try:
            return self._source.referrer_statuses(repository, digest)
        except RegistryError as exc:
            if exc.retryable:
                raise
            raise type(exc)(
                f"referrers of {repository}@{digest} could not be listed, so its signatures, SBOMs "
                f"and attestations could not be carried: not promoted without them ({exc})"
            ) from exc

    def _raise_if_archived(self, repository: str, unread: Sequence[str]) -> None:
        """Listed referrers the read did not return: deleted meanwhile (nothing to carry), or
        archived (the /v2 referrers API lists them without a status): TrustMaterialArchivedError."""
        archived: dict[str, str] = {}
        for digest in unread:
            status = self._source.image_status(repository, digest)
            if status in (IMAGE_ARCHIVED, IMAGE_ACTIVATING):
                archived[digest] = status
        if archived:
            raise TrustMaterialArchivedError(f"trust material in {repository} is archived", archived)

    def _transfer_blobs(
        self, source: str, target: str, blobs: Sequence[Blob], empty_target: bool = False
    ) -> tuple[int, int, int]:
        """Mounts or copies the blobs the target lacks; returns (mounted, copied, bytes copied).
        An empty target lacks every blob (and one a creation template creates on push does not
        answer BatchCheckLayerAvailability yet): the first blob is copied alone, its upload
        creating such a repository, and the rest follow as usual."""
        if not blobs:
            return 0, 0, 0
        digests = [b.digest for b in blobs]
        if empty_target:
            first = min(digests)
            crossing = self._source is not self._registry
            nbytes = self._registry.copy_blob(source, target, first, self._source if crossing else None)
            rest = [b for b in blobs if b.digest != first]
            mounted, copied, more_bytes = self._transfer_blobs(source, target, rest)
            return mounted, copied + 1, nbytes + more_bytes
        missing = sorted(self._registry.missing_blobs(target, digests))
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


def signatures_digests(signatures: dict[str, Manifest]) -> set[str]:
    """The digests of the manifests held under cosign tags."""
    return {m.digest for m in signatures.values()}


def _children_first(known: dict[str, Manifest], top: str) -> list[Manifest]:
    """Every manifest of `known`, each after the manifests it lists (PutImage refuses an index
    whose children are missing), in the order they were found otherwise."""
    ordered: list[Manifest] = []
    done: set[str] = set()

    def visit(manifest: Manifest) -> None:
        if manifest.digest in done:
            return
        done.add(manifest.digest)
        for child in manifest.children():
            if child in known:
                visit(known[child])
        ordered.append(manifest)

    for manifest in known.values():
        if manifest.digest != top:
            visit(manifest)
    return ordered


def _source_gone(action: Action) -> ActionResult:
    return ActionResult.for_action(
        action,
        FAILED,
        reason=f"source image {action.source.repository}@{action.source.digest} no longer exists",
    )
