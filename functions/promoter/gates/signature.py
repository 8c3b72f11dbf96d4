"""The signature gate (`require.signature`): promote only a digest that a listed verifier accepts.

Where the signatures of a digest are (all in the source repository, for the exact digest promoted;
for an index, the index's own):
- cosign's tag `sha256-<hex>.sig`: a manifest whose layers are simple-signing payloads
  (`application/vnd.dev.cosign.simplesigning.v1+json`), each signed in its
  `dev.cosignproject.cosign/signature` annotation;
- OCI 1.1 referrers (ListImageReferrers, every page, with their annotations), by artifact type: cosign's
  (`application/vnd.dev.cosign.artifact.sig.v1+json`, the same layers), Sigstore bundles
  (`application/vnd.dev.sigstore.bundle.v0.3+json`, `...bundle+json;version=0.x`: the layer is the
  bundle) and Notary Project signatures (`application/vnd.cncf.notary.signature`: the layer is a JWS
  or COSE envelope; ECR managed signing makes these with AWS Signer).
The promoter's own attestations are Sigstore bundles too, of a source that was itself promoted
(staging -> prod): their listed annotations say so (`promoter.model.attestation.is_our_attestation`)
and they are passed over unread, so they cost no read and no place among the candidates (anyone who
may push could write such annotations on a referrer: that only ever takes a signature away).

Each candidate's blob is read (bounded, `SIGNATURE_BLOB_MAX_BYTES`) and handed to the verifier for
its kind (`promoter.gates.signatures`, imported here, so only for a rule with this gate). The first
that verifies passes the gate and is named in the history and the result; none → `unverified`, with
what was found and why each was refused.

Anyone who may push to the source repository may store signatures beside the image, so no one place
may crowd out another: candidates are taken in turns, one from each place (the cosign tag, then each
referrer) before a second from any, duplicates once, and those of a kind the rule does not accept are
refused without a read. The first `MAX_SIGNATURES_CHECKED` of the rest are verified; the verdict
says how many more were not tried. So a 33-layer cosign tag written by someone else cannot hide a
valid signature stored as a referrer.

Calls to AWS a verifier needs go through the adapters: KMS `Verify` for `awskms:///` keys
(`promoter.aws.kms`, its client from `GateDeps.kms_client`), AWS Signer `GetRevocationStatus` for
Notation signatures by AWS Signer (`promoter.aws.signer`). Throttling or a fault there, or in ECR, is
retryable: the event comes back. A listed KMS key that cannot verify (disabled, in another state,
kms:Verify not granted) is no verdict on the signature: when no candidate verifies, the verdict is
`failed`, naming the key and its state (never `unverified`, never retried); so is a read of the
source repository that is refused for want of a grant (AccessDenied listing or reading signatures).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from promoter.aws.kms import KmsKeyUnusableError, KmsVerifier
from promoter.aws.registry import Registry, cosign_tags
from promoter.aws.signer import SignerRevocation
from promoter.exceptions import AccessDeniedError, PromoterError, RegistryError
from promoter.gates.base import GateDeps, GateImage
from promoter.model.attestation import is_our_attestation
from promoter.model.config import SignatureGate
from promoter.model.manifests import Manifest
from promoter.model.verdicts import FAILED, PASSED, SIGNATURE_GATE, UNVERIFIED, Evidence, Verdict, Waiting

logger = logging.getLogger(__name__)

COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIGSTORE_BUNDLE_TYPE_PREFIXES = ("application/vnd.dev.sigstore.bundle",)
NOTATION_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
NOTATION_ENVELOPE_MEDIA_TYPES = frozenset({"application/jose+json", "application/cose"})
# A payload is ~300 bytes, a bundle or an envelope with its chain ~10 KB: 1 MiB is generous and
# keeps a hostile blob from filling the function's memory.
SIGNATURE_BLOB_MAX_BYTES = 1024 * 1024
# Candidates verified per image (of a kind the rule accepts, taken in turns from each place): each
# costs a blob read and a verification (a KMS Verify for an awskms:/// key).
MAX_SIGNATURES_CHECKED = 64
# Reasons quoted in an `unverified` verdict (the rest are counted).
MAX_REASONS_QUOTED = 5

KmsVerify = Callable[[str, bytes, bytes], bool]


@dataclass(frozen=True)
class Candidate:
    """One signature found for the digest: its kind, where it is, the blob to verify and, for a
    simple-signing payload, the signature from the layer's annotation."""

    kind: str  # "cosign", "sigstore" or "notation"
    where: str  # "tag sha256-<hex>.sig" or "referrer sha256:..."
    blob_digest: str
    media_type: str
    signature_b64: str = ""
    manifest_digest: str = ""  # the manifest that holds it (the cosign tag's, or the referrer)


class SignatureCheck:
    """The signature gate of one rule, reading `deps.registry`. `kms_verify` and `revocation`
    default to the AWS adapters (KMS through `deps.kms_client` when given, else one client per
    process; their clients made on first use, from the environment)."""

    name = SIGNATURE_GATE
    timeout_minutes: int | None = None  # a signature is there or not: never pending

    def __init__(
        self,
        gate: SignatureGate,
        deps: GateDeps,
        *,
        kms_verify: KmsVerify | None = None,
        revocation: SignerRevocation | None = None,
    ) -> None:
        self.gate = gate
        self._registry = deps.registry
        if kms_verify is None:
            kms_verify = (
                KmsVerifier(client_factory=deps.kms_client) if deps.kms_client else shared_kms_verifier()
            )
        self._kms_verify = kms_verify
        self._revocation = revocation or shared_signer_revocation()
        self._unusable: dict[str, KmsKeyUnusableError] = {}  # keys found unusable, this decision

    def decide(self, image: GateImage, waiting: Waiting | None = None) -> Verdict:
        """Finds and verifies the digest's signatures. Raises only retryable errors."""
        registry = self._registry
        self._unusable = {}
        repository, digest = image.repository, image.digest
        tag = _signature_tag(digest)
        try:
            listed = registry.referrer_annotations(repository, digest)
            # Our own attestations (a source that was itself promoted holds one per rule and
            # target) are no signatures: passed over by their listed annotations, never read.
            referrers = [d for d, notes in listed.items() if not is_our_attestation(notes)]
            found = registry.get_manifests(repository, [digest, tag, *referrers])
        except AccessDeniedError as exc:  # a grant missing: no verdict on the signatures
            reason = f"the signature gate cannot read the signatures of {image}: access denied ({exc})"
            return Verdict(
                FAILED, reason, Evidence(SIGNATURE_GATE, reason, details={"access_denied": str(exc)})
            )
        except RegistryError as exc:
            if exc.retryable:
                raise
            return Verdict(UNVERIFIED, f"signatures of {image} could not be read: {exc}")
        subject = found.get(digest)
        if subject is None:
            return Verdict(UNVERIFIED, f"{image} is not in the source repository")
        attested = len(listed) - len(referrers)
        candidates = _in_turns(_candidates(found.get(tag), tag, [found[d] for d in referrers if d in found]))
        if not candidates:
            return Verdict(
                UNVERIFIED,
                f"no signature of {image}: no cosign tag {tag} and no signature among its "
                f"{len(referrers)} referrer(s)"
                + (f" besides {attested} attestation(s) of the promoter's own" if attested else ""),
            )
        refusals: list[str] = []
        passed_over: list[str] = []  # of a kind the rule does not accept: refused without a read
        accepted: list[Candidate] = []
        for candidate in candidates:
            unaccepted = self._unaccepted(candidate.kind)
            if unaccepted:
                passed_over.append(f"{candidate.kind} {candidate.where}: {unaccepted}")
            else:
                accepted.append(candidate)
        for candidate in accepted[:MAX_SIGNATURES_CHECKED]:
            try:
                verified = self._verify(candidate, registry, repository, subject)
            except _Refused as exc:
                refusals.append(f"{candidate.kind} {candidate.where}: {exc}")
                continue
            signature = {k: v for k, v in asdict(verified).items() if v is not None}
            said = f"{verified.verifier} signature by {verified.identity} ({candidate.where})"
            where = candidate.manifest_digest
            inputs = ({"uri": f"ecr://{repository}@{where}", "digest": where},) if where else ()
            return Verdict(PASSED, said, Evidence(SIGNATURE_GATE, said, inputs, signature))
        if self._unusable:  # no verdict on the signatures: a key could not be used at all
            keys = "; ".join(f"KMS key {e.key_id}: {e.code} ({e.state})" for e in self._unusable.values())
            reason = f"the signature gate cannot check the signatures of {image}: {keys}"
            details = {"kms_keys": {k: e.code for k, e in self._unusable.items()}}
            return Verdict(FAILED, reason, Evidence(SIGNATURE_GATE, reason, details=details))
        skipped = len(accepted) - MAX_SIGNATURES_CHECKED
        refusals += passed_over
        quoted = "; ".join(refusals[:MAX_REASONS_QUOTED])
        more = len(refusals) - MAX_REASONS_QUOTED
        return Verdict(
            UNVERIFIED,
            f"no acceptable signature of {image}: {quoted}"
            + (f"; and {more} more refused" if more > 0 else "")
            + (f"; {skipped} more not tried" if skipped > 0 else ""),
        )

    def _verify(self, candidate: Candidate, registry: Registry, repository: str, subject: Manifest) -> Any:
        """The VerifiedSignature of one candidate. Raises _Refused (with the reason) or a
        retryable PromoterError."""
        from promoter.gates.signatures import SignatureRejected

        gate = self.gate
        try:
            blob = registry.read_blob(repository, candidate.blob_digest, SIGNATURE_BLOB_MAX_BYTES)
            if candidate.kind == "cosign":
                return self._verify_cosign(blob, candidate.signature_b64, subject.digest)
            if candidate.kind == "sigstore":
                from promoter.gates.signatures import Identity
                from promoter.gates.signatures.sigstore_bundle import verify_bundle

                identities = [Identity(i.issuer, i.subject) for i in gate.sigstore_identities]
                return verify_bundle(blob, subject.digest, identities)
            return self._verify_notation(blob, candidate.media_type, subject)
        except SignatureRejected as exc:
            raise _Refused(str(exc)) from exc
        except ValueError as exc:  # a listed key or root the verifier cannot use
            raise _Refused(f"cannot be checked: {exc}") from exc
        except PromoterError as exc:
            if exc.retryable:
                raise
            raise _Refused(str(exc)) from exc

    def _unaccepted(self, kind: str) -> str | None:
        """Why the rule takes no signature of this kind (None: it takes some)."""
        gate = self.gate
        if kind == "cosign" and not gate.cosign_keys:
            return "the rule lists no cosign key"
        if kind == "sigstore" and not gate.sigstore_identities:
            return "the rule lists no Sigstore identity"
        if kind == "notation" and not gate.notation:
            return "the rule accepts no Notation signature"
        return None

    def _verify_cosign(self, payload: bytes, signature_b64: str, digest: str) -> Any:
        """Each listed key on its own, so that one unusable key (a disabled KMS key) does not
        hide another that verifies."""
        from promoter.gates.signatures import SignatureRejected
        from promoter.gates.signatures.cosign import verify_simple_signing

        refused: list[str] = []
        for key in self.gate.cosign_keys:
            unusable = self._unusable.get(key)
            if unusable is not None:  # asked once per decision
                refused.append(str(unusable))
                continue
            try:
                return verify_simple_signing(
                    payload, signature_b64, digest, [key], kms_verify=self._kms_verify
                )
            except KmsKeyUnusableError as exc:
                self._unusable[key] = exc
                refused.append(str(exc))
            except (SignatureRejected, ValueError) as exc:
                refused.append(str(exc))
        distinct = list(dict.fromkeys(refused))
        raise SignatureRejected("; ".join(distinct))

    def _verify_notation(self, envelope: bytes, media_type: str, subject: Manifest) -> Any:
        from promoter.gates.signatures.notation import verify_envelope

        return verify_envelope(  # no trust_roots: the verifier's default, AWS Signer's roots
            envelope,
            media_type,
            subject.digest,
            len(subject.body.encode("utf-8")),
            subject.media_type,
            self.gate.notation_trust_roots,
            self.gate.notation_signing_profiles,
            signer_revocation_check=self._revocation,
        )


class _Refused(Exception):
    """One candidate signature did not pass; str() says why."""


def _signature_tag(digest: str) -> str:
    return next(t for t in cosign_tags(digest) if t.endswith(".sig"))


def _in_turns(places: Sequence[Sequence[Candidate]]) -> list[Candidate]:
    """The candidates of every place, one from each in turn (the first of each place, then the
    second of each, ...), each (kind, blob, signature) once."""
    ordered: dict[tuple[str, str, str], Candidate] = {}
    for turn in range(max((len(p) for p in places), default=0)):
        for place in places:
            if turn < len(place):
                candidate = place[turn]
                ordered.setdefault(
                    (candidate.kind, candidate.blob_digest, candidate.signature_b64), candidate
                )
    return list(ordered.values())


def _candidates(tagged: Manifest | None, tag: str, referrers: Sequence[Manifest]) -> list[list[Candidate]]:
    """The signatures found in each place: cosign's tag first, then referrers in the registry's order."""
    found: list[list[Candidate]] = []
    if tagged is not None:
        found.append(_simple_signing_layers(tagged, f"tag {tag}"))
    for manifest in referrers:
        try:
            document = manifest.document
        except RegistryError:
            continue  # not JSON: nothing to verify in it
        artifact_type = str(
            document.get("artifactType") or (document.get("config") or {}).get("mediaType", "")
        )
        where = f"referrer {manifest.digest}"
        if artifact_type == COSIGN_ARTIFACT_TYPE:
            found.append(_simple_signing_layers(manifest, where))
        elif artifact_type.startswith(SIGSTORE_BUNDLE_TYPE_PREFIXES):
            found.append(
                [
                    Candidate(
                        "sigstore",
                        where,
                        layer["digest"],
                        str(layer.get("mediaType", "")),
                        manifest_digest=manifest.digest,
                    )
                    for layer in _layers(document)
                ][:1]
            )
        elif artifact_type == NOTATION_ARTIFACT_TYPE:
            found.append(
                [
                    Candidate(
                        "notation",
                        where,
                        layer["digest"],
                        str(layer["mediaType"]),
                        manifest_digest=manifest.digest,
                    )
                    for layer in _layers(document)
                    if layer.get("mediaType") in NOTATION_ENVELOPE_MEDIA_TYPES
                ][:1]
            )
    return found


def _simple_signing_layers(manifest: Manifest, where: str) -> list[Candidate]:
    try:
        layers = _layers(manifest.document)
    except RegistryError:
        return []
    return [
        Candidate(
            "cosign", where, layer["digest"], SIMPLE_SIGNING_MEDIA_TYPE, str(annotation), manifest.digest
        )
        for layer in layers
        if layer.get("mediaType") == SIMPLE_SIGNING_MEDIA_TYPE
        and (annotation := (layer.get("annotations") or {}).get(COSIGN_SIGNATURE_ANNOTATION))
    ]


def _layers(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        layer
        for layer in document.get("layers") or ()
        if isinstance(layer, dict) and isinstance(layer.get("digest"), str)
    ]


def make_gate(config: SignatureGate, deps: GateDeps) -> SignatureCheck:
    return SignatureCheck(config, deps)


@cache
def shared_kms_verifier() -> KmsVerifier:
    """One KMS client per process (a warm Lambda keeps it)."""
    return KmsVerifier()


@cache
def shared_signer_revocation() -> SignerRevocation:
    """One AWS Signer client per process."""
    return SignerRevocation()
