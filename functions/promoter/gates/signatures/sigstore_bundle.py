"""Sigstore bundles (keyless): a Fulcio certificate, a transparency-log proof, a signature of the image.

Verification is sigstore-python's (`sigstore.verify.Verifier`, the client procedure of the Sigstore
client specification, sigstore/architecture-docs `client-spec.md` §4 "Verification"): the leaf
chains to the trusted root's Fulcio CA at a time the transparency log (integratedTime with its
inclusion promise) or a timestamp authority proves, its SCT verifies against the root's CT logs,
the log entry's inclusion proof and checkpoint verify against the root's Rekor keys, and the log
entry records exactly this signature. This module adds what the promoter needs on top:
- the identity policy (`Identity`: OIDC issuer and SAN, each exact or "re:<regex>", see `_x509`);
- the binding to the promoted image. A message signature (bundle `messageSignature`, Sigstore
  bundle spec `sigstore_bundle.proto`) is verified over the image digest itself, so its
  `messageDigest` must be that digest; a DSSE envelope (`dsseEnvelope`, secure-systems-lab DSSE
  v1.0 `protocol.md`) must carry an in-toto Statement (in-toto attestation spec v0.1/v1,
  `statement.md`) whose `subject[].digest.sha256` names the image.
Bundles v0.1 to v0.3 are read (`application/vnd.dev.sigstore.bundle+json;version=0.1|0.2`,
`application/vnd.dev.sigstore.bundle.v0.3+json`), as far as sigstore-python accepts them.

Never any network: the trusted root is given, or it is the production root sigstore-python ships
inside its package (its TUF bootstrap copy); there is no TUF refresh. `sigstore` is imported only
when a bundle is verified (it pulls in pydantic and more).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from promoter.gates.signatures import SIGSTORE, Identity, SignatureRejected, VerifiedSignature
from promoter.gates.signatures._trusted_root import default_trusted_root
from promoter.gates.signatures._x509 import UNREADABLE_CERTIFICATE_ERRORS, from_unix, iso, match_identity

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = ["IN_TOTO_PAYLOAD_TYPE", "Identity", "default_trusted_root", "verify_bundle"]

# The DSSE payload type of an in-toto attestation, and the Statement types read.
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1")
_DIGEST_PREFIX = "sha256:"


def verify_bundle(
    bundle: bytes,
    image_digest: str,
    identities: Sequence[Identity],
    trusted_root: bytes | None = None,
) -> VerifiedSignature:
    """Verify a Sigstore bundle as a signature of `image_digest` by one of `identities`.

    `trusted_root` is a Sigstore TrustedRoot JSON (`application/vnd.dev.sigstore.trustedroot+json`);
    None means `default_trusted_root()`. Returns the identity "<subject> (<issuer>)" and the
    integratedTime of the log entry as `signed_at`.

    Raises SignatureRejected for a malformed bundle, an identity not listed, a chain or log proof
    that does not verify, or a signature of anything but `image_digest`; ValueError when
    `trusted_root` is not a usable trusted root (a configuration fault).
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore_models.common.v1 import HashAlgorithm

    image_hex = _digest_hex(image_digest)
    if not identities:
        raise SignatureRejected("no Sigstore identity is configured")
    verifier = _verifier(default_trusted_root() if trusted_root is None else trusted_root)
    try:
        parsed = Bundle.from_json(bundle)
    except (SigstoreError, KeyError, IndexError, TypeError, *UNREADABLE_CERTIFICATE_ERRORS) as exc:
        raise SignatureRejected(f"not a Sigstore bundle sigstore-python can read: {exc}") from exc
    policy = _IdentityPolicy(identities)
    try:
        if parsed._dsse_envelope is not None:
            payload_type, payload = verifier.verify_dsse(parsed, policy)
            _check_statement(payload_type, payload, image_hex)
        else:
            digest = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(image_hex))
            verifier.verify_artifact(digest, parsed, policy)
    except (SigstoreError, KeyError, IndexError, TypeError, *UNREADABLE_CERTIFICATE_ERRORS) as exc:
        # sigstore-python parses some of the bundle only while verifying (a checkpoint's base64,
        # a certificate's extensions): damage found there is a rejection like any other.
        raise SignatureRejected(f"Sigstore bundle does not verify: {exc!r}") from exc
    return VerifiedSignature(SIGSTORE, policy.matched or "", image_digest, _integrated_time(bundle))


class _IdentityPolicy:
    """A sigstore-python VerificationPolicy accepting any one of the configured identities."""

    def __init__(self, identities: Sequence[Identity]) -> None:
        self._identities = list(identities)
        self.matched: str | None = None

    def verify(self, cert: Certificate) -> None:
        from sigstore.errors import VerificationError

        try:
            self.matched = match_identity(cert, self._identities)
        except SignatureRejected as exc:
            raise VerificationError(str(exc)) from exc


@functools.lru_cache(maxsize=4)
def _verifier(trusted_root: bytes) -> Any:
    """A Verifier for one trusted root, kept: parsing a root costs more than a verification."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier
    from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootMessage

    try:
        root = TrustedRoot(TrustedRootMessage.from_json(trusted_root))
        return Verifier(trusted_root=root)
    except (SigstoreError, ValueError) as exc:
        raise ValueError(f"not a usable Sigstore trusted root: {exc}") from exc


def _digest_hex(image_digest: str) -> str:
    hex_part = image_digest.removeprefix(_DIGEST_PREFIX)
    if not image_digest.startswith(_DIGEST_PREFIX) or len(hex_part) != 64:
        raise SignatureRejected(f"{image_digest!r} is not a sha256 digest")
    try:
        bytes.fromhex(hex_part)
    except ValueError as exc:
        raise SignatureRejected(f"{image_digest!r} is not a sha256 digest") from exc
    return hex_part.lower()


def _check_statement(payload_type: str, payload: bytes, image_hex: str) -> None:
    """The verified DSSE payload is an in-toto Statement with the image among its subjects."""
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise SignatureRejected(f"DSSE payload type is {payload_type!r}, not {IN_TOTO_PAYLOAD_TYPE!r}")
    try:
        statement = json.loads(payload)
        kind = statement["_type"]
        subjects = statement["subject"]
        digests = [subject["digest"].get("sha256", "").lower() for subject in subjects]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SignatureRejected(f"DSSE payload is not an in-toto Statement: {exc!r}") from exc
    if kind not in IN_TOTO_STATEMENT_TYPES:
        raise SignatureRejected(f"DSSE payload is a {kind!r}, not an in-toto Statement")
    if image_hex not in digests:
        named = ", ".join(f"sha256:{d}" for d in digests if d) or "no sha256 digest"
        raise SignatureRejected(f"attestation subjects ({named}) do not include sha256:{image_hex}")


def _integrated_time(bundle: bytes) -> str | None:
    """The first log entry's integratedTime (already verified by the Verifier), as ISO UTC."""
    try:
        entries = json.loads(bundle)["verificationMaterial"]["tlogEntries"]
        seconds = int(entries[0]["integratedTime"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return iso(from_unix(seconds)) if seconds > 0 else None
