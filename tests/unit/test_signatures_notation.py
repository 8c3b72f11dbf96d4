"""Notation (Notary Project) verification: the real JWS/COSE fixtures (notation/), and AWS Signer-shaped
envelopes made here with a test CA (no real AWS Signer envelope is public, see the fixtures' README)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from promoter.gates.signatures import SignatureRejected, SignerRevocationQuery, VerifiedSignature
from promoter.gates.signatures.notation import (
    AWS_SIGNER_PLATFORM,
    COSE_MEDIA_TYPE,
    JWS_MEDIA_TYPE,
    aws_signer_roots,
    verify_envelope,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
TIMESTAMPED_DIGEST = "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda"
NOW = datetime(2025, 6, 1, tzinfo=UTC)
# After the timestamped fixtures' signing certificate expired (2033-05-10).
AFTER_TIMESTAMP_CERT_EXPIRY = datetime(2040, 1, 1, tzinfo=UTC)


def _pem_of_der(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


class Fixtures:
    """The notation/ folder: envelopes, their targets and trust material."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "notation"
        layout = self.dir / "jws-oci-layout" / "oci-layout"
        index = json.loads((layout / "index.json").read_text())
        self.jws_target = next(
            m
            for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "v1"
        )
        signature_manifest = json.loads(
            (
                layout
                / "blobs"
                / "sha256"
                / "90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f"
            ).read_bytes()
        )
        envelope_digest = signature_manifest["layers"][0]["digest"]
        self.jws_media_type = signature_manifest["layers"][0]["mediaType"]
        self.jws = (layout / "blobs" / "sha256" / envelope_digest.removeprefix("sha256:")).read_bytes()
        assert "sha256:" + hashlib.sha256(self.jws).hexdigest() == envelope_digest
        self.jws_tampered = (self.dir / "jws-oci-layout" / "tampered" / "jws-envelope.json").read_bytes()
        self.e2e_root = (self.dir / "jws-oci-layout" / "trust" / "e2e.crt").read_text()

        target = (self.dir / "cose" / "target-manifest.json").read_bytes()
        self.cose_target = {
            "digest": "sha256:" + hashlib.sha256(target).hexdigest(),
            "size": len(target),
            "mediaType": json.loads(target)["mediaType"],
        }
        self.cose = (self.dir / "cose" / "cose_signature.sig").read_bytes()
        self.cose_tampered = (self.dir / "cose" / "tampered" / "cose_signature.sig").read_bytes()
        self.alpine_root = (self.dir / "cose" / "x5chain0.derived.pem").read_text()

        stamped = self.dir / "timestamped"
        self.stamped = {
            JWS_MEDIA_TYPE: (stamped / "jwsWithTimestamp.sig").read_bytes(),
            COSE_MEDIA_TYPE: (stamped / "coseWithTimestamp.sig").read_bytes(),
        }
        self.stamped_tampered = {
            JWS_MEDIA_TYPE: (stamped / "tampered" / "jwsWithTimestamp.sig").read_bytes(),
            COSE_MEDIA_TYPE: (stamped / "tampered" / "coseWithTimestamp.sig").read_bytes(),
        }
        self.stamped_root = (stamped / "TestTimestamp.crt").read_text()
        self.tsa_root = _pem_of_der((stamped / "globalsignRoot.cer").read_bytes())

    def verify_jws(self, envelope=None, *, roots=None, digest=None, size=None, media_type=None, **kw):
        target = self.jws_target
        return verify_envelope(
            self.jws if envelope is None else envelope,
            self.jws_media_type,
            digest or target["digest"],
            size if size is not None else target["size"],
            media_type or target["mediaType"],
            [self.e2e_root] if roots is None else roots,
            **{"now": NOW, **kw},
        )

    def verify_cose(self, envelope=None, *, roots=None, digest=None, **kw):
        target = self.cose_target
        return verify_envelope(
            self.cose if envelope is None else envelope,
            COSE_MEDIA_TYPE,
            digest or target["digest"],
            target["size"],
            target["mediaType"],
            [self.alpine_root] if roots is None else roots,
            **{"now": NOW, **kw},
        )

    def verify_stamped(self, media_type, envelope=None, **kw):
        return verify_envelope(
            self.stamped[media_type] if envelope is None else envelope,
            media_type,
            TIMESTAMPED_DIGEST,
            528,
            DOCKER_MANIFEST,
            kw.pop("roots", [self.stamped_root]),
            **{"now": NOW, **kw},
        )


@pytest.fixture(scope="module")
def fx(signature_fixtures) -> Fixtures:
    return Fixtures(signature_fixtures)


# --- the real fixtures --------------------------------------------------------------------------


def test_jws_fixture_verifies_against_its_trust_store(fx):
    verified = fx.verify_jws()
    assert verified == VerifiedSignature(
        "notation", "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US", fx.jws_target["digest"], "2023-06-27T05:30:33Z"
    )


def test_cose_fixture_verifies_against_its_own_leaf(fx):
    verified = fx.verify_cose()
    assert verified == VerifiedSignature(
        "notation",
        "CN=alpine,O=Notary,L=Seattle,ST=WA,C=US",
        fx.cose_target["digest"],
        "2023-03-14T04:45:22Z",
    )


@pytest.mark.parametrize(
    ("media_type", "gen_time"),
    [(JWS_MEDIA_TYPE, "2024-06-18T06:29:37Z"), (COSE_MEDIA_TYPE, "2024-06-18T06:27:16Z")],
)
def test_timestamped_fixture_verifies_after_its_certificate_expired_thanks_to_the_countersignature(
    fx, media_type, gen_time
):
    verified = fx.verify_stamped(media_type, tsa_roots=[fx.tsa_root], now=AFTER_TIMESTAMP_CERT_EXPIRY)
    assert verified.signed_digest == TIMESTAMPED_DIGEST
    assert verified.signed_at == gen_time


@pytest.mark.parametrize("media_type", [JWS_MEDIA_TYPE, COSE_MEDIA_TYPE])
def test_timestamped_fixture_verifies_while_its_certificate_is_valid_without_tsa_roots(fx, media_type):
    assert fx.verify_stamped(media_type).signed_digest == TIMESTAMPED_DIGEST


@pytest.mark.parametrize("media_type", [JWS_MEDIA_TYPE, COSE_MEDIA_TYPE])
def test_expired_certificate_without_a_trusted_timestamp_is_refused(fx, media_type):
    with pytest.raises(SignatureRejected, match="is not valid at 2040-01-01T00:00:00Z"):
        fx.verify_stamped(media_type, now=AFTER_TIMESTAMP_CERT_EXPIRY)


@pytest.mark.parametrize("media_type", [JWS_MEDIA_TYPE, COSE_MEDIA_TYPE])
def test_countersignature_from_an_untrusted_tsa_is_refused(fx, media_type):
    with pytest.raises(SignatureRejected, match="timestamp countersignature does not verify"):
        fx.verify_stamped(media_type, tsa_roots=[fx.stamped_root], now=AFTER_TIMESTAMP_CERT_EXPIRY)


def test_tampered_jws_is_refused(fx):
    with pytest.raises(SignatureRejected, match="envelope signature does not verify"):
        fx.verify_jws(fx.jws_tampered)


def test_tampered_cose_is_refused(fx):
    with pytest.raises(SignatureRejected, match="envelope signature does not verify"):
        fx.verify_cose(fx.cose_tampered)


@pytest.mark.parametrize("media_type", [JWS_MEDIA_TYPE, COSE_MEDIA_TYPE])
@pytest.mark.parametrize("with_tsa", [False, True], ids=["no-tsa", "tsa"])
def test_tampered_timestamped_envelope_is_refused_although_its_countersignature_verifies(
    fx, media_type, with_tsa
):
    kw = {"tsa_roots": [fx.tsa_root]} if with_tsa else {}
    with pytest.raises(SignatureRejected, match="envelope signature does not verify"):
        fx.verify_stamped(media_type, fx.stamped_tampered[media_type], **kw)


def test_signature_from_another_trust_store_is_refused(fx):
    with pytest.raises(SignatureRejected, match="reaches none of the 1 trusted roots"):
        fx.verify_jws(roots=[fx.alpine_root])
    with pytest.raises(SignatureRejected, match="reaches none of the 1 trusted roots"):
        fx.verify_cose(roots=[fx.e2e_root])


def test_real_signatures_are_refused_under_aws_signer_roots(fx):
    with pytest.raises(SignatureRejected, match="reaches none of the 2 trusted roots"):
        fx.verify_jws(
            roots=[], signing_profiles=["arn:aws:signer:us-east-1:123456789012:/signing-profiles/p"]
        )


def test_signature_of_another_digest_is_refused(fx):
    with pytest.raises(SignatureRejected, match="not the promoted sha256:0000"):
        fx.verify_jws(digest="sha256:" + "0" * 64)
    with pytest.raises(SignatureRejected, match="not the promoted sha256:0000"):
        fx.verify_cose(digest="sha256:" + "0" * 64)


def test_signature_of_another_size_or_media_type_is_refused(fx):
    with pytest.raises(SignatureRejected, match="artifact of 517 bytes, not 518"):
        fx.verify_jws(size=518)
    with pytest.raises(SignatureRejected, match=r"not a application/vnd\.oci\.image\.index\.v1"):
        fx.verify_jws(media_type="application/vnd.oci.image.index.v1+json")


def test_size_and_media_type_are_optional(fx):
    target = fx.jws_target
    verified = verify_envelope(fx.jws, JWS_MEDIA_TYPE, target["digest"], None, None, [fx.e2e_root], now=NOW)
    assert verified.signed_digest == target["digest"]


def test_certificate_expired_at_verification_time_is_refused(fx):
    with pytest.raises(SignatureRejected, match=r"CN=e2e,.* is not valid at 2123-01-01"):
        fx.verify_jws(now=datetime(2123, 1, 1, tzinfo=UTC))


def test_certificate_not_yet_valid_at_verification_time_is_refused(fx):
    with pytest.raises(SignatureRejected, match="is not valid at 2022-01-01"):
        fx.verify_jws(now=datetime(2022, 1, 1, tzinfo=UTC))


def test_revoked_certificate_is_refused_and_the_check_sees_the_chain(fx):
    seen = []

    def revoked(chain):
        seen.append(chain)
        raise SignatureRejected("certificate revoked")

    with pytest.raises(SignatureRejected, match="certificate revoked"):
        fx.verify_jws(revocation_check=revoked)
    e2e = x509.load_pem_x509_certificate(fx.e2e_root.encode()).public_bytes(serialization.Encoding.DER)
    assert seen == [[e2e]]


def test_revocation_is_not_asked_about_a_signature_that_failed(fx):
    seen = []
    with pytest.raises(SignatureRejected):
        fx.verify_jws(fx.jws_tampered, revocation_check=seen.append)
    assert seen == []


def test_envelope_of_another_format_than_announced_is_refused(fx):
    with pytest.raises(SignatureRejected, match="not a JWS envelope"):
        verify_envelope(
            fx.cose, JWS_MEDIA_TYPE, fx.cose_target["digest"], None, None, [fx.alpine_root], now=NOW
        )
    with pytest.raises(SignatureRejected, match=r"tagged COSE_Sign1|not a CBOR"):
        verify_envelope(fx.jws, COSE_MEDIA_TYPE, fx.jws_target["digest"], None, None, [fx.e2e_root], now=NOW)
    with pytest.raises(SignatureRejected, match="unsupported Notation envelope media type"):
        verify_envelope(fx.jws, "application/json", fx.jws_target["digest"], None, None, [fx.e2e_root])


def test_x509_signature_is_refused_when_signing_profiles_are_required(fx):
    with pytest.raises(SignatureRejected, match="not an AWS Signer signature"):
        fx.verify_jws(signing_profiles=["arn:aws:signer:us-east-1:123456789012:/signing-profiles/release"])


def test_aws_signer_roots_without_a_signing_profile_are_a_configuration_fault(fx):
    with pytest.raises(ValueError, match="need at least one signing profile"):
        fx.verify_jws(roots=[])
    with pytest.raises(ValueError, match="need at least one signing profile"):
        fx.verify_jws(roots=[aws_signer_roots()[0], fx.e2e_root])


def test_shipped_aws_signer_roots_are_the_published_ones(signature_fixtures):
    shipped = [x509.load_pem_x509_certificate(pem.encode()) for pem in aws_signer_roots()]
    fingerprints = [c.fingerprint(hashes.SHA256()).hex() for c in shipped]
    assert fingerprints[0] == "90a87d0543c3f094dbff9589b6649affe2f3d6e0f308799be2258461c686473f"
    assert fingerprints[1].startswith("673653ab") and fingerprints[1].endswith("c3e8")
    reference = signature_fixtures / "notation" / "aws-signer-roots"
    assert shipped == [
        x509.load_pem_x509_certificate((reference / name).read_bytes())
        for name in ("aws-signer-notation-root.crt", "aws-us-gov-signer-notation-root.crt")
    ]


# --- AWS Signer-shaped envelopes, signed here by a test CA ----------------------------------------

PROFILE = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/release"
PROFILE_VERSION = f"{PROFILE}/a1b2c3d4e5"
JOB = "arn:aws:signer:us-east-1:123456789012:/signing-jobs/1f2e3d4c-0000-1111-2222-333344445555"
DIGEST = "sha256:" + "ab" * 32
SIGNED_AT = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, key, issuer_name, issuer_key, *, ca, not_before, not_after, path_length=None):
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    algorithm = hashes.SHA384() if isinstance(issuer_key, ec.EllipticCurvePrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


class SignerCA:
    """Root -> intermediate -> leaf, ECDSA P-384 like AWS Signer's (test keys, not AWS's)."""

    def __init__(self, *, leaf_until=None, intermediate_is_ca=True, leaf_key=None):
        start = datetime(2024, 1, 1, tzinfo=UTC)
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = _certificate(
            "Test Signer Root",
            self.root_key,
            _name("Test Signer Root"),
            self.root_key,
            ca=True,
            not_before=start,
            not_after=start + timedelta(days=3650),
        )
        self.intermediate_key = ec.generate_private_key(ec.SECP384R1())
        self.intermediate = _certificate(
            "Test Signer Int",
            self.intermediate_key,
            self.root.subject,
            self.root_key,
            ca=intermediate_is_ca,
            not_before=start,
            not_after=start + timedelta(days=1800),
            path_length=0,
        )
        self.leaf_key = leaf_key or ec.generate_private_key(ec.SECP384R1())
        self.leaf = _certificate(
            "Test Signer Leaf",
            self.leaf_key,
            self.intermediate.subject,
            self.intermediate_key,
            ca=False,
            not_before=start,
            not_after=leaf_until or start + timedelta(days=800),
        )
        self.chain = [self.leaf, self.intermediate, self.root]

    @property
    def root_pem(self) -> str:
        return self.root.public_bytes(serialization.Encoding.PEM).decode()

    def der_chain(self) -> list[bytes]:
        return [c.public_bytes(serialization.Encoding.DER) for c in self.chain]

    def sign(self, data: bytes, algorithm: str) -> bytes:
        hash_type = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[algorithm[2:]]
        if algorithm.startswith("ES"):
            der = self.leaf_key.sign(data, ec.ECDSA(hash_type()))
            r, s = decode_dss_signature(der)
            size = (self.leaf_key.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        pss = padding.PSS(mgf=padding.MGF1(hash_type()), salt_length=hash_type.digest_size)
        return self.leaf_key.sign(data, pss, hash_type())


def _aws_attributes(**changes):
    attributes = {
        "io.cncf.notary.signingScheme": "notary.x509.signingAuthority",
        "io.cncf.notary.authenticSigningTime": SIGNED_AT,
        "io.cncf.notary.verificationPlugin": "com.amazonaws.signer.notation.plugin",
        "com.amazonaws.signer.signingProfileVersion": PROFILE_VERSION,
        "com.amazonaws.signer.signingJob": JOB,
    }
    attributes.update(changes)
    return {k: v for k, v in attributes.items() if v is not None}


AWS_CRITICAL = [
    "io.cncf.notary.signingScheme",
    "io.cncf.notary.authenticSigningTime",
    "io.cncf.notary.verificationPlugin",
    "com.amazonaws.signer.signingProfileVersion",
    "com.amazonaws.signer.signingJob",
]


def _payload(digest=DIGEST, size=1234, media_type=OCI_MANIFEST) -> bytes:
    return json.dumps({"targetArtifact": {"digest": digest, "mediaType": media_type, "size": size}}).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jws(
    ca: SignerCA,
    *,
    attributes=None,
    critical=None,
    algorithm="ES384",
    payload=None,
    cty="application/vnd.cncf.notary.payload.v1+json",
) -> bytes:
    header = {"alg": algorithm, "crit": AWS_CRITICAL if critical is None else critical, "cty": cty}
    for name, value in (_aws_attributes() if attributes is None else attributes).items():
        header[name] = value.isoformat() if isinstance(value, datetime) else value
    protected = _b64url(json.dumps(header).encode())
    body = _b64url(_payload() if payload is None else payload)
    signature = ca.sign(f"{protected}.{body}".encode(), algorithm)
    unprotected = {
        "x5c": [base64.b64encode(d).decode() for d in ca.der_chain()],
        "io.cncf.notary.signingAgent": "test",
    }
    return json.dumps(
        {"payload": body, "protected": protected, "header": unprotected, "signature": _b64url(signature)}
    ).encode()


COSE_ALGORITHMS = {"PS256": -37, "PS384": -38, "PS512": -39, "ES256": -7, "ES384": -35, "ES512": -36}


def make_cose(ca: SignerCA, *, attributes=None, critical=None, algorithm="ES384", payload=None) -> bytes:
    header = {
        1: COSE_ALGORITHMS[algorithm],
        2: AWS_CRITICAL if critical is None else critical,
        3: "application/vnd.cncf.notary.payload.v1+json",
    }
    header.update(_aws_attributes() if attributes is None else attributes)
    protected = cbor2.dumps(header, datetime_as_timestamp=True)
    body = _payload() if payload is None else payload
    signature = ca.sign(cbor2.dumps(["Signature1", protected, b"", body]), algorithm)
    message = [protected, {33: ca.der_chain(), "io.cncf.notary.signingAgent": "test"}, body, signature]
    return cbor2.dumps(cbor2.CBORTag(18, message))


MAKERS = {JWS_MEDIA_TYPE: make_jws, COSE_MEDIA_TYPE: make_cose}


def _verify(envelope, media_type, ca, profiles=(PROFILE,), **kw):
    return verify_envelope(
        envelope, media_type, DIGEST, 1234, OCI_MANIFEST, [ca.root_pem], profiles, **{"now": NOW, **kw}
    )


@pytest.fixture(scope="module")
def ca() -> SignerCA:
    return SignerCA()


@pytest.mark.parametrize("media_type", sorted(MAKERS))
def test_signer_envelope_verifies_and_names_the_profile_version_and_authentic_time(ca, media_type):
    verified = _verify(MAKERS[media_type](ca), media_type, ca)
    assert verified == VerifiedSignature(
        "notation", f"CN=Test Signer Leaf ({PROFILE_VERSION})", DIGEST, "2025-03-01T12:00:00Z"
    )


@pytest.mark.parametrize(
    "listed",
    [PROFILE, PROFILE_VERSION, PROFILE.replace("release", "Release")],
    ids=["profile", "version", "other-case"],
)
def test_signing_profile_matches_its_versions(ca, listed):
    assert _verify(make_jws(ca), JWS_MEDIA_TYPE, ca, profiles=[listed]).signed_digest == DIGEST


@pytest.mark.parametrize(
    "listed",
    [
        "arn:aws:signer:us-east-1:123456789012:/signing-profiles/releas",
        "arn:aws:signer:us-east-1:123456789012:/signing-profiles/release-candidate",
        "arn:aws:signer:us-east-1:210987654321:/signing-profiles/release",
        f"{PROFILE}/otherversion",
        "arn:aws:signer:us-east-1:123456789012:/signing-profiles",
    ],
    ids=["prefix", "longer-name", "other-account", "other-version", "no-name"],
)
@pytest.mark.parametrize("media_type", sorted(MAKERS))
def test_signature_from_an_unlisted_signing_profile_is_refused(ca, media_type, listed):
    with pytest.raises(SignatureRejected, match="matches none of"):
        _verify(MAKERS[media_type](ca), media_type, ca, profiles=[listed])


def test_signing_profile_alias_matches_the_alias_attribute(ca):
    alias = "arn:aws:signer:us-east-1:123456789012:/aliases/prod"
    critical = [*AWS_CRITICAL, "com.amazonaws.signer.signingProfileAlias"]
    envelope = make_jws(
        ca,
        attributes=_aws_attributes(**{"com.amazonaws.signer.signingProfileAlias": alias}),
        critical=critical,
    )
    assert _verify(envelope, JWS_MEDIA_TYPE, ca, profiles=[alias]).signed_digest == DIGEST
    with pytest.raises(SignatureRejected, match="matches none of"):
        _verify(make_jws(ca), JWS_MEDIA_TYPE, ca, profiles=[alias])


def test_signer_envelope_without_a_configured_profile_is_refused(ca):
    with pytest.raises(SignatureRejected, match="needs a configured signing profile"):
        _verify(make_jws(ca), JWS_MEDIA_TYPE, ca, profiles=())


@pytest.mark.parametrize("media_type", sorted(MAKERS))
def test_signer_revocation_check_gets_what_get_revocation_status_needs(ca, media_type):
    queries: list[SignerRevocationQuery] = []
    _verify(MAKERS[media_type](ca), media_type, ca, signer_revocation_check=queries.append)
    [query] = queries
    tbs = [hashlib.sha384(c.tbs_certificate_bytes).hexdigest() for c in ca.chain]
    assert query == SignerRevocationQuery(
        profile_version_arn=PROFILE_VERSION,
        job_arn=JOB,
        platform_id=AWS_SIGNER_PLATFORM,
        signature_timestamp=SIGNED_AT,
        certificate_hashes=(tbs[0] + tbs[1], tbs[1] + tbs[2], tbs[2] + tbs[2]),
    )


@pytest.mark.parametrize("media_type", sorted(MAKERS))
def test_revoked_signer_signature_is_refused(ca, media_type):
    def revoked(query):
        raise SignatureRejected(f"Resource(s) {query.job_arn} have been revoked")

    with pytest.raises(SignatureRejected, match="have been revoked"):
        _verify(MAKERS[media_type](ca), media_type, ca, signer_revocation_check=revoked)


def test_signer_revocation_check_is_not_called_for_x509_signatures(fx):
    queries = []
    fx.verify_jws(signer_revocation_check=queries.append)
    assert queries == []


@pytest.mark.parametrize("media_type", sorted(MAKERS))
def test_signature_past_its_expiry_is_refused(ca, media_type):
    expiry = datetime(2025, 5, 1, tzinfo=UTC)
    envelope = MAKERS[media_type](
        ca,
        attributes=_aws_attributes(**{"io.cncf.notary.expiry": expiry}),
        critical=[*AWS_CRITICAL, "io.cncf.notary.expiry"],
    )
    assert _verify(envelope, media_type, ca, now=expiry - timedelta(seconds=1)).signed_digest == DIGEST
    with pytest.raises(SignatureRejected, match="signature expired at 2025-05-01T00:00:00Z"):
        _verify(envelope, media_type, ca, now=expiry + timedelta(seconds=1))


def test_signer_chain_is_checked_at_the_authentic_signing_time_not_now():
    expired_before_signing = SignerCA(leaf_until=SIGNED_AT - timedelta(days=1))
    with pytest.raises(SignatureRejected, match="not valid at 2025-03-01T12:00:00Z"):
        _verify(make_jws(expired_before_signing), JWS_MEDIA_TYPE, expired_before_signing)
    valid_then = SignerCA(leaf_until=SIGNED_AT + timedelta(days=1))  # expired long before NOW
    assert _verify(make_jws(valid_then), JWS_MEDIA_TYPE, valid_then).signed_at == "2025-03-01T12:00:00Z"


def test_expiry_that_is_not_critical_is_refused(ca):
    envelope = make_jws(ca, attributes=_aws_attributes(**{"io.cncf.notary.expiry": NOW + timedelta(days=1)}))
    with pytest.raises(SignatureRejected, match=re.escape("'io.cncf.notary.expiry' must be critical")):
        _verify(envelope, JWS_MEDIA_TYPE, ca)


def test_unknown_critical_attribute_is_refused(ca):
    envelope = make_jws(
        ca,
        attributes=_aws_attributes(**{"com.example.policy": "x"}),
        critical=[*AWS_CRITICAL, "com.example.policy"],
    )
    with pytest.raises(SignatureRejected, match=re.escape("'com.example.policy' is not understood")):
        _verify(envelope, JWS_MEDIA_TYPE, ca)


def test_other_verification_plugin_is_refused(ca):
    plugin = {"io.cncf.notary.verificationPlugin": "com.example.plugin"}
    envelope = make_jws(ca, attributes=_aws_attributes(**plugin), critical=AWS_CRITICAL[:3])
    with pytest.raises(
        SignatureRejected, match=re.escape("needs the verification plugin 'com.example.plugin'")
    ):
        _verify(envelope, JWS_MEDIA_TYPE, ca)


def test_aws_attributes_are_not_understood_without_the_aws_signer_plugin(ca):
    plugin = {"io.cncf.notary.verificationPlugin": "com.example.plugin"}
    envelope = make_jws(ca, attributes=_aws_attributes(**plugin))
    with pytest.raises(
        SignatureRejected, match=re.escape("'com.amazonaws.signer.signingProfileVersion' is not")
    ):
        _verify(envelope, JWS_MEDIA_TYPE, ca)


def test_signer_signature_without_profile_attribute_is_refused(ca):
    critical = [c for c in AWS_CRITICAL if c != "com.amazonaws.signer.signingProfileVersion"]
    envelope = make_jws(
        ca,
        attributes=_aws_attributes(**{"com.amazonaws.signer.signingProfileVersion": None}),
        critical=critical,
    )
    with pytest.raises(
        SignatureRejected, match=re.escape("lacks the com.amazonaws.signer.signingProfileVersion")
    ):
        _verify(envelope, JWS_MEDIA_TYPE, ca)


def test_signing_authority_without_authentic_time_is_refused(ca):
    critical = [c for c in AWS_CRITICAL if c != "io.cncf.notary.authenticSigningTime"]
    envelope = make_jws(
        ca, attributes=_aws_attributes(**{"io.cncf.notary.authenticSigningTime": None}), critical=critical
    )
    with pytest.raises(SignatureRejected, match=re.escape("has no io.cncf.notary.authenticSigningTime")):
        _verify(envelope, JWS_MEDIA_TYPE, ca)


def test_algorithm_that_does_not_match_the_key_is_refused(ca):
    with pytest.raises(SignatureRejected, match="ES256 does not match the key's ES384"):
        _verify(make_jws(ca, algorithm="ES256"), JWS_MEDIA_TYPE, ca)


def test_wrong_payload_content_type_is_refused(ca):
    with pytest.raises(SignatureRejected, match="payload content type"):
        _verify(make_jws(ca, cty="application/json"), JWS_MEDIA_TYPE, ca)


def test_intermediate_that_is_not_a_ca_is_refused():
    broken = SignerCA(intermediate_is_ca=False)
    with pytest.raises(SignatureRejected, match="is not a CA allowed to sign certificates"):
        _verify(make_jws(broken), JWS_MEDIA_TYPE, broken)


def test_signature_by_another_ca_is_refused(ca):
    other = SignerCA()
    with pytest.raises(SignatureRejected, match="reaches none of the 1 trusted roots"):
        _verify(make_jws(other), JWS_MEDIA_TYPE, ca)


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "ES512"),
        (lambda: rsa.generate_private_key(65537, 3072), "PS384"),
    ],
    ids=["ES256", "ES512", "PS384"],
)
@pytest.mark.parametrize("media_type", sorted(MAKERS))
def test_every_notary_algorithm_verifies(media_type, key, algorithm):
    signer = SignerCA(leaf_key=key())
    envelope = MAKERS[media_type](signer, algorithm=algorithm)
    assert _verify(envelope, media_type, signer).signed_digest == DIGEST
    with pytest.raises(SignatureRejected, match="not the promoted"):
        _verify(
            MAKERS[media_type](signer, algorithm=algorithm, payload=_payload(digest="sha256:" + "cd" * 32)),
            media_type,
            signer,
        )
