"""The attestor (issue 19): the signed promotion attestation of one promoted image, built from the
action itself, the evidence of the gates it passed, who asked and why (the action's provenance) and
the configuration's digest, signed with the stack's KMS key (env `ATTESTATION_KEY_ARN`).

The format is `promoter.model.attestation`'s (an in-toto Statement v1 with the SLSA VSA predicate,
in a DSSE envelope, in a Sigstore bundle v0.3, attached as an OCI 1.1 referrer of the promoted
digest); where it goes and when is `workflows.promote`'s (after the trust material, before the tag).
This module only builds and signs: one KMS `Sign` per attestation, nothing else.

No key configured = no attestation: said once per process at WARNING, since every promotion of the
process would say the same. The evidence comes from the same `ActionResult` record history and
result events are written from (`Action.evidence`, set by `workflows.service.run_plan`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from promoter import settings
from promoter.model import attestation as vsa
from promoter.model.config import PromotionConfig
from promoter.model.manifests import Manifest
from promoter.model.plan import Action, Provenance

logger = logging.getLogger(__name__)

# The policy a break-glass `promote` or a rollback followed: no rule of the configuration, so no
# configuration's bytes; the digest is of these bytes instead (the name says why).
NO_CONFIGURATION = b""
NO_CONFIGURATION_NAME = "none"
# What an action built without provenance (by hand, not through run_plan) says started it.
UNKNOWN_TRIGGER = "unknown"

_warned_lock = threading.Lock()
_warned_no_key = False


class AttestationSigner(Protocol):
    """Signs the DSSE pre-authentication encoding (`promoter.aws.attestations.KmsAttestationSigner`)."""

    def sign(self, message: bytes) -> bytes:
        """The DER ECDSA P-256 signature over `message`. Raises AttestationError (retryable or not)."""
        ...


@dataclass(frozen=True)
class AttestationArtifact:
    """One attestation ready to put: the referrer manifest (exact bytes) and the blobs it names."""

    manifest: Manifest
    blobs: Mapping[str, bytes]  # digest -> bytes: the empty config and the bundle


class Attestor:
    """Builds and signs the attestation of one promotion (`build`), and says whether a referrer
    already listed is ours for it (`is_ours`). `config_bytes` is the configuration the rules come
    from (its sha256 is the policy's digest); None for a promotion no rule made (break-glass,
    rollback). `required`: an attestation that cannot be signed for good fails the action before
    its tag (the engine's promotions); False only for a person's break-glass move or rollback,
    which then goes on unattested, logged at ERROR. `clock` gives `timeVerified` (UTC)."""

    artifact_type = vsa.BUNDLE_MEDIA_TYPE

    def __init__(
        self,
        signer: AttestationSigner,
        key_id: str,
        *,
        config_bytes: bytes | None,
        config_name: str = settings.DEFAULT_CONFIG_FILE,
        required: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._signer = signer
        self.key_id = key_id
        self.required = required
        known = config_bytes is not None
        self._config_digest = vsa.config_sha256(config_bytes if known else NO_CONFIGURATION)
        self._config_name = config_name if known else NO_CONFIGURATION_NAME
        self._clock = clock
        self._version = vsa.promoter_version()

    @staticmethod
    def target(registry_host: str, action: Action) -> str:
        """The attestation's target, `registry/repository:tag` (its identity with digest and rule)."""
        return vsa.resource_uri(registry_host, action.target_repository, action.target_tag)

    @staticmethod
    def source(registry_host: str, action: Action) -> str:
        """The image promoted from: `registry/repository:tag`, or `...@digest` when untagged."""
        image = action.source
        if image.tag:
            return vsa.resource_uri(registry_host, image.repository, image.tag)
        return f"{registry_host}/{image.repository}@{image.digest}"

    @staticmethod
    def is_ours(annotations: Mapping[str, str] | None, action: Action, target: str) -> bool:
        """Whether a referrer's annotations name our attestation of this action's rule and target."""
        return vsa.is_our_attestation(annotations, action.rule, target)

    def build(
        self, action: Action, image: Manifest, target_registry: str, source: str
    ) -> AttestationArtifact:
        """The signed attestation that `image` (the promoted digest) was promoted by `action` into
        `target_registry`. `source` names the image promoted from (`registry/repository:tag`).
        Raises AttestationError (retryable when KMS may answer later)."""
        now = self._clock()
        statement = vsa.build_statement(
            subject_digest=image.digest,
            target_registry=target_registry,
            target_repository=action.target_repository,
            target_tag=action.target_tag,
            rule=action.rule,
            config_digest=self._config_digest,
            config_name=self._config_name,
            source=source,
            source_digest=action.source.digest,
            requested_by=action.authenticated_requester or None,
            trigger=action.trigger or UNKNOWN_TRIGGER,
            evidence=[dict(e) for e in action.evidence],
            time_verified=now,
            version=self._version,
            event_id=action.event_id or None,
        )
        signature = self._signer.sign(vsa.pae(vsa.IN_TOTO_PAYLOAD_TYPE, statement))
        bundle = vsa.bundle(vsa.envelope(statement, signature, self.key_id), self.key_id)
        annotations = vsa.attestation_annotations(action.rule, self.target(target_registry, action), now)
        body, blobs = vsa.referrer_manifest(
            bundle, image.digest, image.media_type, len(image.body.encode("utf-8")), annotations
        )
        manifest = Manifest(vsa.sha256_digest(body), vsa.OCI_MANIFEST_MEDIA_TYPE, body.decode("utf-8"))
        return AttestationArtifact(manifest, blobs)


class AttestationReader(Protocol):
    """What finding an attestation reads from the target's registry (`EcrRegistry`)."""

    def registry_host(self) -> str: ...

    def referrer_annotations(
        self, repository: str, digest: str, artifact_type: str
    ) -> dict[str, dict[str, str]]: ...


def our_attestations(registry: AttestationReader, action: Action, digest: str) -> list[str]:
    """The digests of our attestations of `digest` for the action's rule and target among its
    referrers in the target repository (`registry`: the target's): one listing of its bundle
    referrers (the registry's host is read once per process). Raises RegistryError."""
    target = Attestor.target(registry.registry_host(), action)
    listed = registry.referrer_annotations(action.target_repository, digest, Attestor.artifact_type)
    return [d for d, notes in listed.items() if Attestor.is_ours(notes, action, target)]


def attesting(
    action: Action, evidence: Sequence[Mapping[str, Any]] | None, provenance: Provenance, event_id: str
) -> Action:
    """The action with what its attestation says besides it: the evidence of the gates it passed
    (the same records history and result events get) and who asked, as authenticated, and why."""
    return replace(
        action,
        evidence=tuple(evidence or ()),
        trigger=provenance.trigger,
        authenticated_requester=provenance.authenticated_as,
        event_id=event_id,
    )


def attestor_from_environment(
    config: PromotionConfig | None,
    *,
    required: bool = True,
    signer_factory: Callable[[str], AttestationSigner] | None = None,
) -> Attestor | None:
    """The Attestor on the key `ATTESTATION_KEY_ARN` names, for promotions by `config`'s rules
    (None: break-glass or rollback; `required` as `Attestor` says); None when no key is
    configured (said once, at WARNING)."""
    key = settings.attestation_key_arn()
    if key is None:
        _warn_no_key()
        return None
    if signer_factory is None:
        from promoter.aws.attestations import KmsAttestationSigner

        signer_factory = KmsAttestationSigner
    config_bytes = config.to_json().encode("utf-8") if config is not None else None
    return Attestor(signer_factory(key), key, config_bytes=config_bytes, required=required)


def _warn_no_key() -> None:
    global _warned_no_key
    with _warned_lock:
        if _warned_no_key:
            return
        _warned_no_key = True
    logger.warning(
        "no attestation key configured (%s is not set): promotions are not attested",
        settings.ATTESTATION_KEY_ENV,
    )
