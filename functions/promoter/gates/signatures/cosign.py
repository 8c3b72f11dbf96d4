"""cosign simple-signing signatures: key pairs (PEM or AWS KMS) and keyless (Fulcio + Rekor).

What is verified, and where it is specified:
- the payload is cosign's "simple signing" JSON (sigstore/cosign `specs/SIGNATURE_SPEC.md`,
  "Simple Signing"; containers/image `docs/containers-signature.5.md`): `critical.type` must be
  "cosign container image signature" and `critical.image.docker-manifest-digest` the promoted
  digest. The signature is over the payload's exact bytes (never re-serialised);
- the signature algorithm follows the key (SIGNATURE_SPEC.md, "Signature"; sigstore/sigstore
  `pkg/signature`): ECDSA (DER signature, SHA-256, or the curve's own hash for P-384/P-521),
  RSA PKCS#1 v1.5 or PSS with SHA-256, Ed25519 over the message itself;
- an optional Rekor bundle (the `dev.sigstore.cosign/bundle` annotation): the SignedEntryTimestamp
  is an ECDSA signature by the log (identified by logID = sha256 of its DER public key) over the
  RFC 8785 canonical JSON of {body, integratedTime, logID, logIndex} (sigstore/rekor
  `pkg/generated/models`, cosign `pkg/cosign/verify.go` VerifyBundle), and the body, a
  `hashedrekord` 0.0.1 entry, must name the payload's sha256, the same signature and the same key
  (the check against CVE-2022-36056's entry swap);
- keyless: the Fulcio leaf (`dev.sigstore.cosign/certificate`) must chain to a trusted Fulcio root
  **at the Rekor integratedTime** and hold an accepted identity (see `_x509`); the Rekor bundle is
  then mandatory, since it is the only proof of when the ten-minute certificate was used; and an
  SCT embedded in the certificate must verify with a trusted CT log key (RFC 6962 §3.2), as the
  Sigstore client specification requires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from promoter.gates.signatures import COSIGN, Identity, SignatureRejected, VerifiedSignature
from promoter.gates.signatures._trusted_root import keyless_trust
from promoter.gates.signatures._x509 import (
    from_unix,
    iso,
    load_pem_certificates,
    match_identity,
    verify_code_signing_chain,
    verify_embedded_sct,
)

# The `critical.type` of every cosign image signature payload (SIGNATURE_SPEC.md).
SIMPLE_SIGNING_TYPE = "cosign container image signature"
# A key reference verified by KMS Verify rather than by key material in the configuration.
AWS_KMS_PREFIX = "awskms://"
# The only Rekor entry kind cosign writes for a simple-signing signature.
HASHEDREKORD_KIND, HASHEDREKORD_VERSION = "hashedrekord", "0.0.1"

KmsVerify = Callable[[str, bytes, bytes], bool]
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

_CURVE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def verify_simple_signing(
    payload: bytes,
    signature_b64: str,
    image_digest: str,
    keys: Sequence[str],
    *,
    kms_verify: KmsVerify | None = None,
    rekor_bundle: str | bytes | None = None,
    rekor_public_keys: Sequence[str] = (),
    trusted_root: bytes | None = None,
) -> VerifiedSignature:
    """Verify a cosign key-pair signature of `image_digest`; return who signed it.

    `keys` are PEM public keys or "awskms:///<key ARN>" references; a reference is checked by
    `kms_verify(reference, payload, signature) -> bool` (KMS Verify, implemented by the caller).
    With `rekor_bundle` (the `dev.sigstore.cosign/bundle` annotation), its SignedEntryTimestamp must
    verify with one of `rekor_public_keys` (none given: the Rekor keys of `trusted_root`, itself by
    default Sigstore's public-good root) and its entry must be this very signature; `signed_at` is
    then the entry's integratedTime.

    Raises SignatureRejected (no listed key verifies the signature, the payload names another
    digest or is not a cosign payload, the Rekor bundle does not verify); ValueError if an
    "awskms://" key is listed and no `kms_verify` is given, or a listed PEM key cannot be read
    (a configuration fault, not a bad signature). Exceptions from `kms_verify` propagate.
    """
    signature = _decode_signature(signature_b64)
    identity, key = _verify_with_listed_keys(payload, signature, keys, kms_verify)
    _check_payload(payload, image_digest)
    signed_at = None
    if rekor_bundle is not None:
        log_keys = rekor_public_keys or keyless_trust(trusted_root).rekor_keys
        signed_at = iso(_verify_rekor_bundle(rekor_bundle, log_keys, payload, signature, key))
    return VerifiedSignature(COSIGN, identity, image_digest, signed_at)


def verify_keyless_simple_signing(
    payload: bytes,
    signature_b64: str,
    image_digest: str,
    certificate_pem: str | bytes,
    chain_pem: str | bytes | None,
    rekor_bundle: str | bytes,
    identities: Sequence[Identity],
    *,
    fulcio_roots: Sequence[str] | None = None,
    rekor_public_keys: Sequence[str] | None = None,
    ct_log_keys: Sequence[str] | None = None,
    trusted_root: bytes | None = None,
) -> VerifiedSignature:
    """Verify a cosign keyless signature (Fulcio certificate, Rekor bundle) of `image_digest`.

    `certificate_pem` and `chain_pem` are the `dev.sigstore.cosign/certificate` and `/chain`
    annotations; `fulcio_roots` the trusted Fulcio CA certificates (PEM, roots and intermediates as
    a trusted root lists them); `rekor_public_keys` the Rekor log keys (PEM); `ct_log_keys` the
    certificate-transparency log keys (PEM), one of which must have signed an SCT embedded in the
    certificate (an explicit empty list skips that check, for a private Fulcio without CT). Any of
    the three left out comes from `trusted_root` (a Sigstore TrustedRoot JSON; default: the
    public-good root, see `_trusted_root`). The chain must be valid at the Rekor entry's
    integratedTime, and the certificate must hold one of `identities`.

    Raises SignatureRejected for any failed check, saying which.
    """
    if fulcio_roots is None or rekor_public_keys is None or ct_log_keys is None:
        trust = keyless_trust(trusted_root)
        fulcio_roots = trust.fulcio_certificates if fulcio_roots is None else fulcio_roots
        rekor_public_keys = trust.rekor_keys if rekor_public_keys is None else rekor_public_keys
        ct_log_keys = trust.ct_log_keys if ct_log_keys is None else ct_log_keys
    signature = _decode_signature(signature_b64)
    leaf, *_ = load_pem_certificates(certificate_pem, "signing certificate")
    intermediates = load_pem_certificates(chain_pem, "certificate chain") if chain_pem else []
    trusted = [cert for pem in fulcio_roots for cert in load_pem_certificates(pem, "Fulcio root")]
    leaf_key = leaf.public_key()
    if not _verifies(leaf_key, payload, signature):
        raise SignatureRejected("signature does not verify with the signing certificate's key")
    _check_payload(payload, image_digest)
    integrated = _verify_rekor_bundle(rekor_bundle, rekor_public_keys, payload, signature, leaf)
    issuers = verify_code_signing_chain(leaf, intermediates, trusted, integrated)
    if ct_log_keys:
        verify_embedded_sct(leaf, issuers[0], ct_log_keys)
    identity = match_identity(leaf, identities)
    return VerifiedSignature(COSIGN, identity, image_digest, iso(integrated))


def key_id(key: PublicKey) -> str:
    """A key's identity as reported: "sha256:<hex of its DER SubjectPublicKeyInfo>"."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def load_public_key(pem: str | bytes) -> PublicKey:
    """A PEM public key of a kind cosign signs with; raises ValueError for anything else."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ValueError(f"unsupported public key type {type(key).__name__}")
    return key


def _decode_signature(signature_b64: str) -> bytes:
    try:
        return base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureRejected(f"signature is not valid base64: {exc}") from exc


def _verify_with_listed_keys(
    payload: bytes, signature: bytes, keys: Sequence[str], kms_verify: KmsVerify | None
) -> tuple[str, PublicKey | None]:
    """(identity, key) of the first listed key the signature verifies with (key None for KMS)."""
    if not keys:
        raise SignatureRejected("no cosign key is configured")
    for listed in keys:
        reference = listed.strip()
        if reference.startswith(AWS_KMS_PREFIX):
            if kms_verify is None:
                raise ValueError(f"key {reference} needs KMS Verify, and no kms_verify was given")
            if kms_verify(reference, payload, signature):
                return reference, None
            continue
        key = load_public_key(reference)
        if _verifies(key, payload, signature):
            return key_id(key), key
    raise SignatureRejected(f"signature does not verify with any of the {len(keys)} configured cosign key(s)")


def _verifies(key: Any, message: bytes, signature: bytes) -> bool:
    """True if `signature` over `message` verifies with `key` under an algorithm cosign uses."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            candidates = [_CURVE_HASHES.get(key.curve.name, hashes.SHA256), hashes.SHA256]
            for algorithm in dict.fromkeys(candidates):
                try:
                    key.verify(signature, message, ec.ECDSA(algorithm()))
                    return True
                except InvalidSignature:
                    continue
            return False
        if isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            for scheme in (padding.PKCS1v15(), pss):
                try:
                    key.verify(signature, message, scheme, hashes.SHA256())
                    return True
                except InvalidSignature:
                    continue
            return False
    except InvalidSignature:
        return False
    raise SignatureRejected(f"unsupported signing key type {type(key).__name__}")


def _check_payload(payload: bytes, image_digest: str) -> None:
    """The payload is a cosign image signature and names exactly `image_digest`."""
    try:
        document = json.loads(payload)
        critical = document["critical"]
        kind = critical["type"]
        signed = critical["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureRejected(f"payload is not a cosign simple-signing document: {exc!r}") from exc
    if kind != SIMPLE_SIGNING_TYPE:
        raise SignatureRejected(f"payload type is {kind!r}, not {SIMPLE_SIGNING_TYPE!r}")
    if signed != image_digest:
        raise SignatureRejected(f"payload signs {signed}, not the promoted {image_digest}")


@dataclass(frozen=True)
class _RekorEntry:
    body: str
    integrated_time: int
    log_id: str
    log_index: int


def _verify_rekor_bundle(
    bundle: str | bytes,
    rekor_public_keys: Sequence[str],
    payload: bytes,
    signature: bytes,
    signer: PublicKey | x509.Certificate | None,
) -> datetime:
    """Check the bundle's SET and that its entry is this signature; return the integrated time."""
    try:
        document = json.loads(bundle)
        set_signature = base64.b64decode(document["SignedEntryTimestamp"], validate=True)
        raw = document["Payload"]
        entry = _RekorEntry(raw["body"], raw["integratedTime"], raw["logID"], raw["logIndex"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SignatureRejected(f"Rekor bundle is malformed: {exc!r}") from exc
    if not (
        isinstance(entry.body, str)
        and isinstance(entry.log_id, str)
        and type(entry.integrated_time) is int
        and type(entry.log_index) is int
    ):
        raise SignatureRejected("Rekor bundle payload fields have the wrong types")
    log_key = _rekor_key(entry.log_id, rekor_public_keys)
    canonical = canonical_json(
        {
            "body": entry.body,
            "integratedTime": entry.integrated_time,
            "logID": entry.log_id,
            "logIndex": entry.log_index,
        }
    )
    if not _verifies(log_key, canonical, set_signature):
        raise SignatureRejected(f"Rekor SignedEntryTimestamp does not verify with log {entry.log_id}")
    _check_hashedrekord(entry.body, payload, signature, signer)
    return from_unix(entry.integrated_time)


def _rekor_key(log_id: str, rekor_public_keys: Sequence[str]) -> PublicKey:
    """The trusted Rekor key whose sha256(DER SPKI) is `log_id`."""
    for pem in rekor_public_keys:
        key = load_public_key(pem)
        if key_id(key) == f"sha256:{log_id}":
            return key
    raise SignatureRejected(
        f"Rekor log {log_id} is not among the {len(rekor_public_keys)} trusted log key(s)"
    )


def _check_hashedrekord(
    body_b64: str, payload: bytes, signature: bytes, signer: PublicKey | x509.Certificate | None
) -> None:
    """The log entry records this payload's hash, this signature and this signer (key or cert)."""
    try:
        body = json.loads(base64.b64decode(body_b64, validate=True))
        kind, version, spec = body["kind"], body["apiVersion"], body["spec"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SignatureRejected(f"Rekor entry body is malformed: {exc!r}") from exc
    if (kind, version) != (HASHEDREKORD_KIND, HASHEDREKORD_VERSION):
        raise SignatureRejected(
            f"Rekor entry is {kind} {version}, not {HASHEDREKORD_KIND} {HASHEDREKORD_VERSION}"
        )
    try:
        digest = spec["data"]["hash"]
        recorded_signature = base64.b64decode(spec["signature"]["content"], validate=True)
        recorded_signer = base64.b64decode(spec["signature"]["publicKey"]["content"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SignatureRejected(f"Rekor hashedrekord entry is malformed: {exc!r}") from exc
    if digest != {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}:
        raise SignatureRejected("Rekor entry records another payload hash than this signature's payload")
    if recorded_signature != signature:
        raise SignatureRejected("Rekor entry records another signature")
    if signer is None:  # a KMS key: KMS verified the signature, the entry records that same signature
        return
    if isinstance(signer, x509.Certificate):
        recorded, *_ = load_pem_certificates(recorded_signer, "Rekor entry") or [None]
        if recorded != signer:
            raise SignatureRejected("Rekor entry records another signing certificate")
        return
    try:
        recorded_key = load_public_key(recorded_signer)
    except ValueError as exc:
        raise SignatureRejected("Rekor entry does not record a public key") from exc
    if key_id(recorded_key) != key_id(signer):
        raise SignatureRejected("Rekor entry records another public key")


def canonical_json(document: dict[str, str | int]) -> bytes:
    """RFC 8785 (JCS) canonical JSON of a flat object of strings and integers.

    For such an object JCS is: members sorted by key (UTF-16 code units; the keys here are ASCII),
    no whitespace, integers in plain decimal, strings with only `"`, `\\` and control characters
    escaped (`\\b \\f \\n \\r \\t` short forms, others `\\u00xx` lowercase), which is what
    `json.dumps(..., ensure_ascii=False)` writes. Raises ValueError for anything else.
    """
    for key, value in document.items():
        if not key.isascii() or not (isinstance(value, str) or type(value) is int):
            raise ValueError(f"canonical_json handles flat str/int objects only, not {key!r}: {value!r}")
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")
