"""Certificate checks shared by the keyless verifiers: Fulcio identities and chains at a past time.

Follows Fulcio's certificate profile (sigstore/fulcio `docs/certificate-specification.md` and
`docs/oid-info.md`): the signer's identity is a Subject Alternative Name (email, URI, or the
otherName 1.3.6.1.4.1.57264.1.7), the OIDC issuer is extension 1.3.6.1.4.1.57264.1.8 (a DER
UTF8String) or, in older certificates, 1.3.6.1.4.1.57264.1.1 (the raw UTF-8 bytes), and the leaf
carries the codeSigning extended key usage. A Fulcio leaf lives ten minutes, so its chain is always
validated at the time a transparency log or timestamp proves, never at the wall-clock time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.certificate_transparency import LogEntryType
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from promoter.gates.signatures import Identity, SignatureRejected
from promoter.model.linear_regex import LinearRegex
from promoter.model.patterns import REGEX_PREFIX, check_regex

# Fulcio's OIDC issuer: v1 holds the raw string, v2 a DER UTF8String (fulcio docs/oid-info.md).
FULCIO_ISSUER_V1_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
FULCIO_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
# A SAN otherName Fulcio uses for identities that are neither an email nor a URI (e.g. usernames).
FULCIO_OTHERNAME_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
# An identity field written "re:<pattern>" (REGEX_PREFIX) is a regular expression over the whole
# value, matched in linear time like every pattern of the configuration (a certificate's SAN is
# chosen by whoever got it from Fulcio).
_COMPILED_IDENTITIES = 256


# What cryptography raises for a certificate it cannot read, at load or when a part is first read.
UNREADABLE_CERTIFICATE_ERRORS = (
    ValueError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


def readable(certificates: list[x509.Certificate], what: str) -> list[x509.Certificate]:
    """Read every part the verifiers use now, so a damaged certificate is refused here, not later."""
    try:
        for certificate in certificates:
            certificate.public_key()
            _ = certificate.extensions, certificate.subject, certificate.issuer, certificate.signature
    except (*UNREADABLE_CERTIFICATE_ERRORS, UnsupportedAlgorithm) as exc:
        raise SignatureRejected(f"{what} holds an unreadable certificate: {exc}") from exc
    return certificates


def load_pem_certificates(pem: str | bytes, what: str) -> list[x509.Certificate]:
    """All certificates in a PEM text; raises SignatureRejected naming `what` if one is unreadable."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except UNREADABLE_CERTIFICATE_ERRORS as exc:
        raise SignatureRejected(f"{what} is not a PEM certificate: {exc}") from exc
    return readable(certificates, what)


def load_der_certificates(ders: Sequence[bytes], what: str) -> list[x509.Certificate]:
    """DER certificates; raises SignatureRejected naming `what` if one is unreadable."""
    try:
        certificates = [x509.load_der_x509_certificate(der) for der in ders]
    except UNREADABLE_CERTIFICATE_ERRORS as exc:
        raise SignatureRejected(f"{what} holds an unreadable certificate: {exc}") from exc
    return readable(certificates, what)


def fulcio_issuer(certificate: x509.Certificate) -> str | None:
    """The OIDC issuer Fulcio wrote into the certificate (v2 extension first), or None."""
    extensions = certificate.extensions
    try:
        value = extensions.get_extension_for_oid(FULCIO_ISSUER_V2_OID).value
        return asn1.decode_der(str, value.value)
    except x509.ExtensionNotFound:
        pass
    except ValueError as exc:
        raise SignatureRejected(f"certificate's OIDC issuer extension is malformed: {exc}") from exc
    try:
        value = extensions.get_extension_for_oid(FULCIO_ISSUER_V1_OID).value
    except x509.ExtensionNotFound:
        return None
    try:
        return value.value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureRejected("certificate's OIDC issuer extension is not UTF-8") from exc


def fulcio_subjects(certificate: x509.Certificate) -> list[str]:
    """The identities in the certificate's SAN: emails, URIs and Fulcio's otherName values."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    subjects = [
        *san.get_values_for_type(x509.RFC822Name),
        *san.get_values_for_type(x509.UniformResourceIdentifier),
    ]
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == FULCIO_OTHERNAME_OID:
            try:
                subjects.append(asn1.decode_der(str, other.value))
            except ValueError:
                continue
    return subjects


def matches(expected: str, actual: str) -> bool:
    """An exact comparison, or for "re:<pattern>" a full match of the regular expression, on the
    linear-time engine. Raises ValueError for a regex it cannot run (the configuration refuses it)."""
    if expected.startswith(REGEX_PREFIX):
        return _identity_regex(expected).matches(actual)
    return expected == actual


@lru_cache(maxsize=_COMPILED_IDENTITIES)
def _identity_regex(expected: str) -> LinearRegex:
    return check_regex(expected)


def match_identity(certificate: x509.Certificate, identities: Sequence[Identity]) -> str:
    """Return "<subject> (<issuer>)" for the first listed identity the certificate holds.

    Raises SignatureRejected saying which identity the certificate has when none matches.
    """
    issuer = fulcio_issuer(certificate)
    subjects = fulcio_subjects(certificate)
    if issuer is None:
        raise SignatureRejected("certificate carries no OIDC issuer (1.3.6.1.4.1.57264.1.8 or .1.1)")
    for identity in identities:
        if not matches(identity.issuer, issuer):
            continue
        for subject in subjects:
            if matches(identity.subject, subject):
                return f"{subject} ({issuer})"
    listed = ", ".join(f"{i.subject} ({i.issuer})" for i in identities) or "none"
    raise SignatureRejected(
        f"certificate identity {', '.join(subjects) or '(no SAN)'} ({issuer}) matches no accepted "
        f"identity (accepted: {listed})"
    )


def verify_code_signing_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    at: datetime,
) -> list[x509.Certificate]:
    """Validate `leaf` up to one of `trusted` at time `at`; return the chain above the leaf.

    RFC 5280 path validation by `cryptography`'s verifier with its Web PKI extension defaults,
    except that the extended key usage is not required to be serverAuth/clientAuth: it is checked
    here to be codeSigning instead (as sigstore-python does). Raises SignatureRejected.
    """
    if not trusted:
        raise SignatureRejected("no trusted root certificate to validate the chain against")
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(list(trusted)))
        .time(at.astimezone(UTC).replace(tzinfo=None))
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        chain = verifier.verify(leaf, list(intermediates)).chain
    except (VerificationError, x509.UnsupportedGeneralNameType) as exc:
        raise SignatureRejected(
            f"certificate {leaf.subject.rfc4514_string() or '(empty subject)'} issued by "
            f"{leaf.issuer.rfc4514_string()} does not chain to a trusted root at {iso(at)}: {exc}"
        ) from exc
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = []
    if ExtendedKeyUsageOID.CODE_SIGNING not in usages:
        raise SignatureRejected("signing certificate lacks the codeSigning extended key usage")
    return chain[1:]


def verify_embedded_sct(leaf: x509.Certificate, issuer: x509.Certificate, ct_log_keys: Sequence[str]) -> None:
    """At least one SCT embedded in `leaf` is signed by one of `ct_log_keys` (PEM, ECDSA P-256).

    RFC 6962 §3.2: a precertificate SCT signs version, signature type, timestamp, entry type
    (precert_entry), sha256 of the issuer's SubjectPublicKeyInfo, the TBSCertificate without its
    SCT list, and the SCT's extensions. The log is the key whose sha256(DER SPKI) is the SCT's log
    id. Raises SignatureRejected when no SCT verifies.
    """
    try:
        scts = leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound as exc:
        raise SignatureRejected(
            "signing certificate carries no SCT (certificate transparency proof)"
        ) from exc
    logs = {}
    for pem in ct_log_keys:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
        spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        logs[hashlib.sha256(spki).digest()] = key
    issuer_key_hash = hashlib.sha256(
        issuer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).digest()
    tbs = leaf.tbs_precertificate_bytes
    for sct in scts:
        key = logs.get(sct.log_id)
        if not isinstance(key, ec.EllipticCurvePublicKey) or sct.entry_type != LogEntryType.PRE_CERTIFICATE:
            continue
        milliseconds = (sct.timestamp.replace(tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
        signed = (
            b"\x00\x00"  # version v1, signature_type certificate_timestamp
            + milliseconds.to_bytes(8, "big")
            + b"\x00\x01"  # entry_type precert_entry
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + len(sct.extension_bytes).to_bytes(2, "big")
            + sct.extension_bytes
        )
        try:
            key.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))
            return
        except InvalidSignature:
            continue
    raise SignatureRejected(
        f"no SCT in the signing certificate verifies with the {len(logs)} trusted CT log key(s)"
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, seconds precision: how signing times are reported."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_unix(seconds: int) -> datetime:
    """A Unix time (Rekor's integratedTime) as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)
