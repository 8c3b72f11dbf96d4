"""Notary Project signatures (Notation, and ECR managed signing with AWS Signer): JWS and COSE envelopes.

Follows the Notary Project specifications (notaryproject/specifications, `specs/`):
- `signature-specification.md`: the payload `{"targetArtifact": <OCI descriptor>}` of media type
  `application/vnd.cncf.notary.payload.v1+json`; the signed attributes (`io.cncf.notary.signingScheme`
  `notary.x509` with `signingTime`, or `notary.x509.signingAuthority` with `authenticSigningTime`;
  optional `expiry`; `verificationPlugin`); critical attributes; algorithm selection by the signing
  key (RSASSA-PSS with a salt as long as the hash: RSA 2048/3072/4096 -> PS256/384/512; ECDSA
  P-256/384/521 -> ES256/384/512); the certificate requirements (leaf: digitalSignature key usage,
  codeSigning if an EKU is present, not a CA; issuers: CA with keyCertSign; RSA >= 2048 bits).
- `signature-envelope-jws.md`: JWS JSON serialization, signing input
  ASCII(BASE64URL(protected) "." BASE64URL(payload)), `x5c` and `io.cncf.notary.timestampSignature`
  in the unprotected header; ECDSA signatures are R||S (RFC 7518 §3.4).
- `signature-envelope-cose.md`: a tagged COSE_Sign1 (RFC 9052 §4.2, tag 18) whose signature is over
  Sig_structure ["Signature1", protected, h'', payload] (RFC 9052 §4.4); `x5chain` is label 33
  (RFC 9360); times are CBOR tag 1 dates.
- `trust-store-trust-policy.md`, "Signature Verification details": integrity, authenticity (the
  chain reaches a certificate of the trust store), authentic timestamp (the chain is valid at
  `authenticSigningTime` for signingAuthority, at a verified RFC 3161 countersignature's time when
  TSA roots are configured, else at verification time), expiry, then revocation.
AWS Signer (ECR managed signing) is the `com.amazonaws.signer.notation.plugin` verification plugin;
its two checks are done here the way aws/aws-signer-notation-plugin does them: the trusted identity
(a signing-profile ARN matches each of its versions, a version ARN itself, an alias ARN the
`signingProfileAlias` attribute) and revocation (GetRevocationStatus, performed by the caller with
the `SignerRevocationQuery` given to it).

A countersignature covers only the signature bytes, so it never stands in for verifying the
envelope itself. `cbor2` is imported only for COSE envelopes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID

from promoter.gates.signatures import (
    COSE_MEDIA_TYPE,
    JWS_MEDIA_TYPE,
    NOTATION,
    SignatureRejected,
    SignerRevocationQuery,
    VerifiedSignature,
)
from promoter.gates.signatures._x509 import UNREADABLE_CERTIFICATE_ERRORS, iso, load_der_certificates

PAYLOAD_CONTENT_TYPE = "application/vnd.cncf.notary.payload.v1+json"

SCHEME_X509 = "notary.x509"
SCHEME_SIGNING_AUTHORITY = "notary.x509.signingAuthority"

SIGNING_SCHEME = "io.cncf.notary.signingScheme"
SIGNING_TIME = "io.cncf.notary.signingTime"
AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
EXPIRY = "io.cncf.notary.expiry"
VERIFICATION_PLUGIN = "io.cncf.notary.verificationPlugin"
VERIFICATION_PLUGIN_MIN_VERSION = "io.cncf.notary.verificationPluginMinVersion"
TIMESTAMP_SIGNATURE = "io.cncf.notary.timestampSignature"

AWS_SIGNER_PLUGIN = "com.amazonaws.signer.notation.plugin"
AWS_SIGNING_PROFILE_VERSION = "com.amazonaws.signer.signingProfileVersion"
AWS_SIGNING_JOB = "com.amazonaws.signer.signingJob"
AWS_SIGNING_PROFILE_ALIAS = "com.amazonaws.signer.signingProfileAlias"
# The platform AWS Signer signs container images with (GetRevocationStatus's platformId).
AWS_SIGNER_PLATFORM = "Notation-OCI-SHA384-ECDSA"

# Critical attributes this verifier understands; any other critical attribute refuses the signature.
_UNDERSTOOD_CRITICAL = {
    SIGNING_SCHEME,
    EXPIRY,
    AUTHENTIC_SIGNING_TIME,
    VERIFICATION_PLUGIN,
    VERIFICATION_PLUGIN_MIN_VERSION,
}
_AWS_ATTRIBUTES = {AWS_SIGNING_PROFILE_VERSION, AWS_SIGNING_JOB, AWS_SIGNING_PROFILE_ALIAS}

# Signature algorithm: (hash, key family). The names are JWS's; COSE's integers map onto them.
_ALGORITHMS: dict[str, tuple[type[hashes.HashAlgorithm], str]] = {
    "PS256": (hashes.SHA256, "rsa"),
    "PS384": (hashes.SHA384, "rsa"),
    "PS512": (hashes.SHA512, "rsa"),
    "ES256": (hashes.SHA256, "ec"),
    "ES384": (hashes.SHA384, "ec"),
    "ES512": (hashes.SHA512, "ec"),
}
_COSE_ALGORITHMS = {-37: "PS256", -38: "PS384", -39: "PS512", -7: "ES256", -35: "ES384", -36: "ES512"}
# COSE header labels (RFC 9052 §3.1, RFC 9360 §2).
_COSE_ALG, _COSE_CRIT, _COSE_CONTENT_TYPE, _COSE_X5CHAIN = 1, 2, 3, 33
_COSE_SIGN1_TAG = 18
# The algorithm a signing key implies (signature-specification.md, "Algorithm Selection").
_RSA_BITS_ALGORITHM = {2048: "PS256", 3072: "PS384", 4096: "PS512"}
_CURVE_ALGORITHM = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

_ROOTS_PACKAGE = "promoter.gates.signatures"
AWS_SIGNER_ROOT_FILES = ("roots/aws-signer-notation-root.crt", "roots/aws-us-gov-signer-notation-root.crt")

RevocationCheck = Callable[[list[bytes]], None]
SignerRevocationCheck = Callable[[SignerRevocationQuery], None]


def aws_signer_roots() -> list[str]:
    """AWS Signer's public root certificates (commercial and GovCloud), as PEM, shipped with the package."""
    package = resources.files(_ROOTS_PACKAGE)
    return [package.joinpath(name).read_text(encoding="ascii") for name in AWS_SIGNER_ROOT_FILES]


@dataclass(frozen=True)
class _Envelope:
    """What both envelope formats reduce to: the signed bytes, the signature and the attributes."""

    algorithm: str
    signed_bytes: bytes
    signature: bytes
    payload: bytes
    content_type: Any
    critical: list[Any]
    attributes: dict[str, Any]  # protected header entries other than alg/crit/cty
    chain: list[bytes]  # DER, leaf first
    timestamp_token: bytes | None
    times: dict[str, datetime] = field(default_factory=dict)


def verify_envelope(
    envelope: bytes,
    envelope_media_type: str,
    image_digest: str,
    image_size: int | None,
    image_media_type: str | None,
    trust_roots: Sequence[str],
    signing_profiles: Sequence[str] = (),
    *,
    now: datetime | None = None,
    revocation_check: RevocationCheck | None = None,
    signer_revocation_check: SignerRevocationCheck | None = None,
    tsa_roots: Sequence[str] = (),
) -> VerifiedSignature:
    """Verify a Notation signature envelope as a signature of the image `image_digest`.

    `envelope_media_type` is the signature manifest's layer media type (`application/jose+json` or
    `application/cose`). `trust_roots` are PEM certificates (empty: AWS Signer's roots); the chain in
    the envelope must contain one of them. `signing_profiles` are AWS Signer signing-profile,
    profile-version or alias ARNs: when given, the envelope must come from one of them (and must
    then be an AWS Signer signature); with AWS Signer's roots they are mandatory, because those
    roots vouch for every AWS customer's signatures. `image_size` and `image_media_type`, when
    given, must equal the signed descriptor's. `now` is the verification time (default: the
    current time). `tsa_roots` (PEM) enable RFC 3161 countersignatures: when given and the envelope
    carries one, it must verify, and the certificate chain is then checked at its time.

    Revocation, after everything else verified: `revocation_check(chain DER, leaf first)` for any
    signature, and for AWS Signer signatures `signer_revocation_check(SignerRevocationQuery)`, the
    input of AWS Signer's GetRevocationStatus. Each raises SignatureRejected when revoked; anything
    else they raise propagates.

    Raises SignatureRejected saying which check failed; ValueError for a configuration that cannot
    verify safely (unreadable roots, AWS Signer roots without a signing profile).
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    roots = _load_roots(trust_roots or aws_signer_roots(), "trust root")
    if not signing_profiles and any(_is_aws_signer_root(root) for root in roots):
        raise ValueError(
            "AWS Signer's roots need at least one signing profile, or any AWS account's signature passes"
        )
    if envelope_media_type == JWS_MEDIA_TYPE:
        parsed = _parse_jws(envelope)
    elif envelope_media_type == COSE_MEDIA_TYPE:
        parsed = _parse_cose(envelope)
    else:
        raise SignatureRejected(f"unsupported Notation envelope media type {envelope_media_type!r}")

    scheme = _check_signed_attributes(parsed)
    chain = load_der_certificates(parsed.chain, "certificate chain")
    _verify_signature(parsed, chain[0])
    _check_payload(parsed.payload, image_digest, image_size, image_media_type)

    # The time the chain must be valid at: one proven by the signature, else the verification time.
    authentic_time: datetime | None = None
    validity_times = [moment]
    if scheme == SCHEME_SIGNING_AUTHORITY:
        authentic_time = parsed.times[AUTHENTIC_SIGNING_TIME]
        validity_times = [authentic_time]
    elif parsed.timestamp_token is not None and tsa_roots:
        authentic_time, validity_times = _verify_timestamp(
            parsed.timestamp_token, parsed.signature, tsa_roots
        )
    _verify_chain(chain, roots, validity_times)

    expiry = parsed.times.get(EXPIRY)
    if expiry is not None and moment > expiry:
        raise SignatureRejected(f"signature expired at {iso(expiry)}")

    profile_version = _check_signing_profile(parsed, signing_profiles)
    chain_der = [certificate.public_bytes(serialization.Encoding.DER) for certificate in chain]
    if revocation_check is not None:
        revocation_check(chain_der)
    if signer_revocation_check is not None and profile_version is not None:
        signer_revocation_check(
            SignerRevocationQuery(
                profile_version_arn=profile_version,
                job_arn=_string_attribute(parsed, AWS_SIGNING_JOB),
                platform_id=AWS_SIGNER_PLATFORM,
                signature_timestamp=parsed.times[AUTHENTIC_SIGNING_TIME],
                certificate_hashes=tuple(signer_certificate_hashes(chain)),
            )
        )

    subject = chain[0].subject.rfc4514_string()
    identity = f"{subject} ({profile_version})" if profile_version else subject
    signed_at = authentic_time or parsed.times.get(SIGNING_TIME)
    return VerifiedSignature(NOTATION, identity, image_digest, iso(signed_at) if signed_at else None)


def signer_certificate_hashes(chain: Sequence[x509.Certificate]) -> list[str]:
    """GetRevocationStatus's certificateHashes: per certificate, hex SHA-384 of its TBSCertificate
    followed by that of its issuer (the root: its own twice), as AWS Signer's Notation plugin sends."""
    digests = [hashlib.sha384(certificate.tbs_certificate_bytes).hexdigest() for certificate in chain]
    return [digests[i] + digests[min(i + 1, len(digests) - 1)] for i in range(len(digests))]


# --- parsing --------------------------------------------------------------------------------------


def _b64url(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise SignatureRejected(f"JWS {what} is not a string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SignatureRejected(f"JWS {what} is not base64url: {exc}") from exc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise SignatureRejected(f"JWS header repeats {key!r}")
        result[key] = value
    return result


def _parse_time(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise SignatureRejected(f"{name} is not an RFC 3339 time: {value!r}") from exc
    else:
        raise SignatureRejected(f"{name} is not a time: {value!r}")
    if moment.tzinfo is None:
        raise SignatureRejected(f"{name} has no time zone: {value!r}")
    return moment.astimezone(UTC)


def _parse_jws(envelope: bytes) -> _Envelope:
    """A JWS in JSON serialization (signature-envelope-jws.md)."""
    try:
        document = json.loads(envelope, object_pairs_hook=_unique_keys)
        protected_b64, payload_b64 = document["protected"], document["payload"]
        signature_b64, header = document["signature"], document.get("header", {})
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureRejected(f"not a JWS envelope in JSON serialization: {exc!r}") from exc
    if not isinstance(header, dict) or not isinstance(protected_b64, str) or not isinstance(payload_b64, str):
        raise SignatureRejected("JWS envelope fields have the wrong types")
    try:
        protected = json.loads(_b64url(protected_b64, "protected header"), object_pairs_hook=_unique_keys)
    except ValueError as exc:
        raise SignatureRejected(f"JWS protected header is not JSON: {exc}") from exc
    if not isinstance(protected, dict):
        raise SignatureRejected("JWS protected header is not an object")
    chain_b64 = header.get("x5c")
    if not isinstance(chain_b64, list) or not chain_b64:
        raise SignatureRejected("JWS unprotected header has no x5c certificate chain")
    try:
        chain = [base64.b64decode(entry, validate=True) for entry in chain_b64]
        token_b64 = header.get(TIMESTAMP_SIGNATURE)
        token = base64.b64decode(token_b64, validate=True) if token_b64 is not None else None
    except (binascii.Error, ValueError, TypeError) as exc:
        raise SignatureRejected(f"JWS unprotected header holds bad base64: {exc}") from exc
    attributes = {k: v for k, v in protected.items() if k not in ("alg", "crit", "cty")}
    payload = _b64url(payload_b64, "payload")  # base64url is ASCII: the signing input below encodes
    return _Envelope(
        algorithm=protected.get("alg"),
        signed_bytes=f"{protected_b64}.{payload_b64}".encode("ascii"),
        signature=_b64url(signature_b64, "signature"),
        payload=payload,
        content_type=protected.get("cty"),
        critical=protected.get("crit", []),
        attributes=attributes,
        chain=chain,
        timestamp_token=token,
        times=_times(attributes),
    )


def _parse_cose(envelope: bytes) -> _Envelope:
    """A tagged COSE_Sign1 (signature-envelope-cose.md, RFC 9052)."""
    import cbor2

    try:
        message = cbor2.loads(envelope)
    except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise SignatureRejected(f"not a CBOR document: {exc}") from exc
    if not isinstance(message, cbor2.CBORTag) or message.tag != _COSE_SIGN1_TAG:
        raise SignatureRejected("not a tagged COSE_Sign1 message (CBOR tag 18)")
    parts = message.value
    if not isinstance(parts, list) or len(parts) != 4:
        raise SignatureRejected("COSE_Sign1 is not a four-element array")
    protected_bytes, unprotected, payload, signature = parts
    if not isinstance(protected_bytes, bytes) or not isinstance(unprotected, dict):
        raise SignatureRejected("COSE_Sign1 headers have the wrong types")
    if not isinstance(payload, bytes):
        raise SignatureRejected("COSE_Sign1 payload is detached or not a byte string")
    if not isinstance(signature, bytes):
        raise SignatureRejected("COSE_Sign1 signature is not a byte string")
    try:
        protected = cbor2.loads(protected_bytes) if protected_bytes else {}
    except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise SignatureRejected(f"COSE protected header is not CBOR: {exc}") from exc
    if not isinstance(protected, dict):
        raise SignatureRejected("COSE protected header is not a map")
    chain = unprotected.get(_COSE_X5CHAIN)
    if isinstance(chain, bytes):
        chain = [chain]
    if not isinstance(chain, list) or not chain or not all(isinstance(c, bytes) for c in chain):
        raise SignatureRejected("COSE unprotected header has no x5chain certificate chain")
    token = unprotected.get(TIMESTAMP_SIGNATURE)
    if token is not None and not isinstance(token, bytes):
        raise SignatureRejected("COSE timestamp signature is not a byte string")
    attributes = {k: v for k, v in protected.items() if k not in (_COSE_ALG, _COSE_CRIT, _COSE_CONTENT_TYPE)}
    label = protected.get(_COSE_ALG)
    algorithm = _COSE_ALGORITHMS.get(label) if isinstance(label, int) else None
    return _Envelope(
        algorithm=algorithm,
        signed_bytes=cbor2.dumps(["Signature1", protected_bytes, b"", payload]),
        signature=signature,
        payload=payload,
        content_type=protected.get(_COSE_CONTENT_TYPE),
        critical=protected.get(_COSE_CRIT, []),
        attributes=attributes,
        chain=chain,
        timestamp_token=token,
        times=_times(attributes),
    )


def _times(attributes: dict[Any, Any]) -> dict[str, datetime]:
    return {
        name: _parse_time(attributes[name], name)
        for name in (SIGNING_TIME, AUTHENTIC_SIGNING_TIME, EXPIRY)
        if name in attributes
    }


# --- checks ---------------------------------------------------------------------------------------


def _check_signed_attributes(parsed: _Envelope) -> str:
    """Content type, signing scheme, critical attributes and the scheme's time; return the scheme."""
    if parsed.content_type != PAYLOAD_CONTENT_TYPE:
        raise SignatureRejected(
            f"payload content type is {parsed.content_type!r}, not {PAYLOAD_CONTENT_TYPE!r}"
        )
    if not isinstance(parsed.algorithm, str) or parsed.algorithm not in _ALGORITHMS:
        raise SignatureRejected(f"unsupported signature algorithm {parsed.algorithm!r}")
    scheme = parsed.attributes.get(SIGNING_SCHEME)
    if scheme not in (SCHEME_X509, SCHEME_SIGNING_AUTHORITY):
        raise SignatureRejected(f"unsupported signing scheme {scheme!r}")
    critical = parsed.critical
    if not isinstance(critical, list) or not critical:
        raise SignatureRejected("no critical attributes are listed (crit)")
    plugin = parsed.attributes.get(VERIFICATION_PLUGIN)
    understood = _UNDERSTOOD_CRITICAL | (_AWS_ATTRIBUTES if plugin == AWS_SIGNER_PLUGIN else set())
    for name in critical:
        if not isinstance(name, str | int) or name not in understood:
            raise SignatureRejected(f"critical attribute {name!r} is not understood")
        if name not in parsed.attributes:
            raise SignatureRejected(f"critical attribute {name!r} is missing")
    for name in (SIGNING_SCHEME, EXPIRY, AUTHENTIC_SIGNING_TIME, VERIFICATION_PLUGIN):
        if name in parsed.attributes and name not in critical:
            raise SignatureRejected(f"attribute {name!r} must be critical")
    if plugin is not None and plugin != AWS_SIGNER_PLUGIN:
        raise SignatureRejected(f"signature needs the verification plugin {plugin!r}, which is not available")
    if scheme == SCHEME_X509 and SIGNING_TIME not in parsed.times:
        raise SignatureRejected(f"{SCHEME_X509} signature has no {SIGNING_TIME}")
    if scheme == SCHEME_SIGNING_AUTHORITY and AUTHENTIC_SIGNING_TIME not in parsed.times:
        raise SignatureRejected(f"{SCHEME_SIGNING_AUTHORITY} signature has no {AUTHENTIC_SIGNING_TIME}")
    return scheme


def _load_roots(pems: Sequence[str], what: str) -> list[x509.Certificate]:
    certificates: list[x509.Certificate] = []
    for pem in pems:
        try:
            certificates.extend(
                x509.load_pem_x509_certificates(pem.encode() if isinstance(pem, str) else pem)
            )
        except ValueError as exc:
            raise ValueError(f"{what} is not a PEM certificate: {exc}") from exc
    return certificates


def _is_aws_signer_root(certificate: x509.Certificate) -> bool:
    return any(certificate == root for root in _aws_signer_root_certificates())


@functools.lru_cache(maxsize=1)
def _aws_signer_root_certificates() -> list[x509.Certificate]:
    return _load_roots(aws_signer_roots(), "AWS Signer root")


def _verify_signature(parsed: _Envelope, leaf: x509.Certificate) -> None:
    """The signature over the signed bytes, with the algorithm the leaf's key implies."""
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        expected = _RSA_BITS_ALGORITHM.get(key.key_size)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        expected = _CURVE_ALGORITHM.get(key.curve.name)
    else:
        expected = None
    if expected is None:
        raise SignatureRejected(
            f"signing certificate's key ({type(key).__name__}) is not one Notation allows"
        )
    if parsed.algorithm != expected:
        raise SignatureRejected(f"signature algorithm {parsed.algorithm} does not match the key's {expected}")
    hash_type, _ = _ALGORITHMS[expected]
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hash_type()), salt_length=hash_type.digest_size)
            key.verify(parsed.signature, parsed.signed_bytes, pss, hash_type())
        else:
            size = (key.curve.key_size + 7) // 8
            if len(parsed.signature) != 2 * size:
                raise SignatureRejected(f"ECDSA signature is {len(parsed.signature)} bytes, not {2 * size}")
            r = int.from_bytes(parsed.signature[:size], "big")
            s = int.from_bytes(parsed.signature[size:], "big")
            key.verify(encode_dss_signature(r, s), parsed.signed_bytes, ec.ECDSA(hash_type()))
    except InvalidSignature as exc:
        raise SignatureRejected("envelope signature does not verify with the signing certificate") from exc


def _check_payload(
    payload: bytes, image_digest: str, image_size: int | None, image_media_type: str | None
) -> None:
    """The signed descriptor is the promoted image (digest, and size and media type when known)."""
    try:
        descriptor = json.loads(payload)["targetArtifact"]
        digest, size, media_type = descriptor["digest"], descriptor["size"], descriptor["mediaType"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureRejected(f"payload is not a Notation targetArtifact descriptor: {exc!r}") from exc
    if digest != image_digest:
        raise SignatureRejected(f"signature covers {digest}, not the promoted {image_digest}")
    if image_size is not None and size != image_size:
        raise SignatureRejected(f"signature covers an artifact of {size} bytes, not {image_size}")
    if image_media_type is not None and media_type != image_media_type:
        raise SignatureRejected(f"signature covers a {media_type}, not a {image_media_type}")


def _verify_chain(
    chain: list[x509.Certificate], roots: list[x509.Certificate], times: list[datetime]
) -> None:
    """The Notary certificate requirements, each link's signature, validity at `times`, and trust."""
    leaf = chain[0]
    _check_key_strength(chain)
    _check_leaf(leaf)
    for index, certificate in enumerate(chain):
        issuer = chain[index + 1] if index + 1 < len(chain) else certificate
        if index + 1 == len(chain) and certificate.issuer != certificate.subject:
            raise SignatureRejected(
                f"certificate chain ends at {certificate.subject.rfc4514_string()}, which is not a root"
            )
        try:
            certificate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise SignatureRejected(
                f"{certificate.subject.rfc4514_string()} is not issued by {issuer.subject.rfc4514_string()}"
            ) from exc
        if index > 0:
            _check_issuer(certificate, below=index - 1)
        for moment in times:
            if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
                since, until = iso(certificate.not_valid_before_utc), iso(certificate.not_valid_after_utc)
                raise SignatureRejected(
                    f"certificate {certificate.subject.rfc4514_string()} is not valid at {iso(moment)} "
                    f"(valid {since} to {until})"
                )
    if not any(certificate == root for certificate in chain for root in roots):
        raise SignatureRejected(
            f"certificate chain of {leaf.subject.rfc4514_string()} reaches none of the "
            f"{len(roots)} trusted roots"
        )


def _check_key_strength(chain: list[x509.Certificate]) -> None:
    for certificate in chain:
        key = certificate.public_key()
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
            raise SignatureRejected(f"{certificate.subject.rfc4514_string()} has an RSA key under 2048 bits")


def _check_leaf(leaf: x509.Certificate) -> None:
    try:
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise SignatureRejected("signing certificate is a CA certificate")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise SignatureRejected("signing certificate has no key usage") from exc
    if not usage.digital_signature:
        raise SignatureRejected("signing certificate's key usage lacks digitalSignature")
    try:
        purposes = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.CODE_SIGNING not in purposes:
        raise SignatureRejected("signing certificate's extended key usage lacks codeSigning")


def _check_issuer(certificate: x509.Certificate, below: int) -> None:
    """An issuing certificate: a CA allowed to sign certificates, with room for `below` CAs under it."""
    name = certificate.subject.rfc4514_string()
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise SignatureRejected(f"issuing certificate {name} lacks basic constraints or key usage") from exc
    if not constraints.ca or not usage.key_cert_sign:
        raise SignatureRejected(f"issuing certificate {name} is not a CA allowed to sign certificates")
    if constraints.path_length is not None and constraints.path_length < below:
        raise SignatureRejected(f"issuing certificate {name} allows {constraints.path_length} CA(s) below it")


def _verify_timestamp(
    token: bytes, signature: bytes, tsa_roots: Sequence[str]
) -> tuple[datetime, list[datetime]]:
    """An RFC 3161 TimeStampToken over the signature bytes; return genTime and the range its
    accuracy allows, [genTime - accuracy, genTime + accuracy], where the chain must be valid."""
    from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

    try:
        response = decode_timestamp_response(_granted_response(token))
    except UNREADABLE_CERTIFICATE_ERRORS as exc:
        raise SignatureRejected(f"timestamp countersignature is not a TimeStampToken: {exc}") from exc
    builder = VerifierBuilder()
    for root in _load_roots(tsa_roots, "TSA root"):
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify_message(response, signature)
    except (VerificationError, *UNREADABLE_CERTIFICATE_ERRORS) as exc:
        raise SignatureRejected(f"timestamp countersignature does not verify: {exc}") from exc
    info = response.tst_info
    generated = info.gen_time if info.gen_time.tzinfo else info.gen_time.replace(tzinfo=UTC)
    accuracy = info.accuracy
    margin = timedelta()
    if accuracy is not None:
        margin = timedelta(
            seconds=accuracy.seconds or 0,
            milliseconds=accuracy.millis or 0,
            microseconds=accuracy.micros or 0,
        )
    return generated, [generated - margin, generated + margin]


def _granted_response(token: bytes) -> bytes:
    """Wrap a TimeStampToken in a TimeStampResp with status granted (RFC 3161 §2.4.2), DER.

    The token's `certificates` SET is put in DER order first: real TSAs (GlobalSign's among them)
    emit it unsorted, which the strict DER parser refuses. That field is not covered by the token's
    signature (RFC 5652 §5.4 signs the signed attributes), so ordering it changes nothing signed.
    """
    token = _with_sorted_certificates(token)
    status = bytes.fromhex("3003020100")  # PKIStatusInfo { status granted (0) }
    return _der(0x30, status + token)


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _der_children(content: bytes) -> list[tuple[int, bytes]]:
    """The (tag, content) elements of a constructed value's content; ValueError if not definite DER."""
    children, offset = [], 0
    while offset < len(content):
        if offset + 2 > len(content):
            raise ValueError("truncated DER element")
        tag, first = content[offset], content[offset + 1]
        if tag & 0x1F == 0x1F:
            raise ValueError("multi-byte DER tags are not expected here")
        offset += 2
        if first < 0x80:
            length = first
        elif first == 0x80:
            raise ValueError("indefinite length")
        else:
            size = first & 0x7F
            length = int.from_bytes(content[offset : offset + size], "big")
            offset += size
        if offset + length > len(content):
            raise ValueError("truncated DER element")
        children.append((tag, content[offset : offset + length]))
        offset += length
    return children


def _with_sorted_certificates(token: bytes) -> bytes:
    """ContentInfo { contentType, [0] SignedData { ..., [0] IMPLICIT certificates SET, ... } } with
    the certificates in DER SET OF order (X.690 §11.6); the token unchanged if it is not that shape."""
    try:
        [(outer_tag, outer)] = _der_children(token)
        content_type, (explicit_tag, explicit) = _der_children(outer)
        [(signed_data_tag, signed_data)] = _der_children(explicit)
        if (outer_tag, explicit_tag, signed_data_tag) != (0x30, 0xA0, 0x30):
            return token
        fields = []
        for tag, value in _der_children(signed_data):
            if tag == 0xA0:
                encoded = [_der(t, v) for t, v in _der_children(value)]
                longest = max((len(e) for e in encoded), default=0)
                encoded.sort(key=lambda e: e.ljust(longest, b"\x00"))
                value = b"".join(encoded)
            fields.append(_der(tag, value))
        rebuilt = _der(0x30, b"".join(fields))
        return _der(0x30, _der(content_type[0], content_type[1]) + _der(0xA0, rebuilt))
    except ValueError:
        return token


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _string_attribute(parsed: _Envelope, name: str) -> str:
    value = parsed.attributes.get(name)
    if not isinstance(value, str) or not value:
        raise SignatureRejected(f"AWS Signer signature lacks the {name} attribute")
    return value


def _check_signing_profile(parsed: _Envelope, signing_profiles: Sequence[str]) -> str | None:
    """For AWS Signer signatures: the profile version ARN, which must match a listed profile."""
    is_aws = parsed.attributes.get(VERIFICATION_PLUGIN) == AWS_SIGNER_PLUGIN
    if not is_aws:
        if signing_profiles:
            raise SignatureRejected("signing profiles are required, and this is not an AWS Signer signature")
        return None
    if parsed.attributes.get(SIGNING_SCHEME) != SCHEME_SIGNING_AUTHORITY:
        raise SignatureRejected(f"AWS Signer signatures use {SCHEME_SIGNING_AUTHORITY}")
    version = _string_attribute(parsed, AWS_SIGNING_PROFILE_VERSION)
    alias = parsed.attributes.get(AWS_SIGNING_PROFILE_ALIAS)
    if not signing_profiles:
        raise SignatureRejected("an AWS Signer signature needs a configured signing profile to trust")
    for listed in signing_profiles:
        if _profile_matches(listed, version, alias if isinstance(alias, str) else None):
            return version
    raise SignatureRejected(
        f"signed with signing profile {version}, which matches none of: {', '.join(signing_profiles)}"
    )


def _profile_matches(listed: str, version: str, alias: str | None) -> bool:
    """AWS Signer's trusted-identity rule: a profile ARN matches each of its versions, a version ARN
    (or an aliased-profile ARN) itself, an alias ARN the signature's alias; ARNs compare case-blind."""
    parts = listed.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "signer":
        return False
    resource = parts[5]
    if resource.startswith("/aliases/"):
        return alias is not None and alias.lower() == listed.lower()
    if resource.startswith("/aliased-signing-profiles/"):
        return version.lower() == listed.lower()
    if not resource.startswith("/signing-profiles/"):
        return False
    segments = resource.split("/")  # ["", "signing-profiles", name] or [..., name, version]
    if len(segments) == 3:
        return version.rpartition("/")[0].lower() == listed.lower()
    if len(segments) == 4:
        return version.lower() == listed.lower()
    return False
