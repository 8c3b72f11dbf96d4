"""cosign simple-signing verification on the real fixtures (cosign-simple/), and on keys made here."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from promoter.gates.signatures import Identity, SignatureRejected, VerifiedSignature
from promoter.gates.signatures.cosign import (
    canonical_json,
    key_id,
    verify_keyless_simple_signing,
    verify_simple_signing,
)

KEYLESS_ISSUER = "https://github.com/login/oauth"
KEYLESS_SUBJECT = "mitr@redhat.com"
KEY_FIXTURES = {"key-p256": "cosign.pub", "key-p256-rekor": "cosign2.pub"}


class Fixture:
    """One cosign-simple/ folder: the signed payload, its signature and the image it signs."""

    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / "cosign-simple" / name
        self.payload = (self.dir / "payload.json").read_bytes()
        self.tampered_payload = (self.dir / "tampered" / "payload.json").read_bytes()
        self.signature = (self.dir / "signature.b64").read_text()
        self.digest = "sha256:" + hashlib.sha256((self.dir / "image-manifest.json").read_bytes()).hexdigest()

    def text(self, name: str) -> str:
        return (self.dir / name).read_text()


@pytest.fixture
def fixture(signature_fixtures):
    return lambda name: Fixture(signature_fixtures, name)


def _keyless(fx: Fixture, identities, *, payload=None, digest=None, roots=None, bundle=None):
    return verify_keyless_simple_signing(
        fx.payload if payload is None else payload,
        fx.signature,
        fx.digest if digest is None else digest,
        fx.text("certificate.pem"),
        fx.text("chain.pem"),
        fx.text("rekor-bundle.json") if bundle is None else bundle,
        identities,
        fulcio_roots=[fx.text("fulcio_v1.crt.pem")] if roots is None else roots,
        rekor_public_keys=[fx.text("rekor.pub")],
    )


def _pem(public_key) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _payload(digest: str, kind: str = "cosign container image signature") -> bytes:
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": "registry.example/app"},
                "image": {"docker-manifest-digest": digest},
                "type": kind,
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()


# --- the real fixtures -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KEY_FIXTURES))
def test_key_pair_fixture_verifies_and_names_the_key(fixture, name):
    fx = fixture(name)
    key = fx.text(KEY_FIXTURES[name])
    verified = verify_simple_signing(fx.payload, fx.signature, fx.digest, [key])
    expected_key_id = (
        "sha256:"
        + hashlib.sha256(
            serialization.load_pem_public_key(key.encode()).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).hexdigest()
    )
    assert verified == VerifiedSignature("cosign", expected_key_id, fx.digest, None)


def test_key_ids_are_the_spki_fingerprints_the_fixture_readme_names(fixture):
    ids = {
        name: verify_simple_signing(
            fixture(name).payload, fixture(name).signature, fixture(name).digest, [fixture(name).text(key)]
        ).identity
        for name, key in KEY_FIXTURES.items()
    }
    assert ids["key-p256"].startswith("sha256:c87a7901") and ids["key-p256"].endswith("301f")
    assert ids["key-p256-rekor"].startswith("sha256:5e7eb6c1") and ids["key-p256-rekor"].endswith("bdfa")


def test_key_pair_signature_with_rekor_bundle_is_dated_by_the_log(fixture):
    fx = fixture("key-p256-rekor")
    verified = verify_simple_signing(
        fx.payload,
        fx.signature,
        fx.digest,
        [fx.text("cosign2.pub")],
        rekor_bundle=fx.text("rekor-bundle.json"),
        rekor_public_keys=[fx.text("rekor.pub")],
    )
    assert verified.signed_at == "2023-01-20T21:57:39Z"


def test_one_matching_key_among_several_is_enough(fixture):
    fx = fixture("key-p256")
    other = fixture("key-p256-rekor").text("cosign2.pub")
    verified = verify_simple_signing(fx.payload, fx.signature, fx.digest, [other, fx.text("cosign.pub")])
    assert verified.identity.startswith("sha256:c87a7901")


@pytest.mark.parametrize("name", sorted(KEY_FIXTURES))
def test_tampered_payload_is_refused(fixture, name):
    fx = fixture(name)
    with pytest.raises(SignatureRejected, match="does not verify with any of the 1 configured"):
        verify_simple_signing(fx.tampered_payload, fx.signature, fx.digest, [fx.text(KEY_FIXTURES[name])])


def test_signature_is_refused_with_another_key(fixture):
    fx = fixture("key-p256")
    with pytest.raises(SignatureRejected, match="does not verify"):
        verify_simple_signing(
            fx.payload, fx.signature, fx.digest, [fixture("key-p256-rekor").text("cosign2.pub")]
        )


def test_valid_signature_of_another_digest_is_refused(fixture):
    fx = fixture("key-p256")
    other = fixture("key-p256-rekor").digest
    with pytest.raises(SignatureRejected, match=f"payload signs {fx.digest}, not the promoted {other}"):
        verify_simple_signing(fx.payload, fx.signature, other, [fx.text("cosign.pub")])


def test_no_configured_key_refuses(fixture):
    fx = fixture("key-p256")
    with pytest.raises(SignatureRejected, match="no cosign key"):
        verify_simple_signing(fx.payload, fx.signature, fx.digest, [])


def test_signature_that_is_not_base64_is_refused(fixture):
    fx = fixture("key-p256")
    with pytest.raises(SignatureRejected, match="base64"):
        verify_simple_signing(fx.payload, "not base64!", fx.digest, [fx.text("cosign.pub")])


def test_rekor_bundle_with_an_untrusted_log_key_is_refused(fixture):
    fx = fixture("key-p256-rekor")
    with pytest.raises(SignatureRejected, match="not among the 1 trusted log key"):
        verify_simple_signing(
            fx.payload,
            fx.signature,
            fx.digest,
            [fx.text("cosign2.pub")],
            rekor_bundle=fx.text("rekor-bundle.json"),
            rekor_public_keys=[fx.text("cosign2.pub")],
        )


def test_rekor_bundle_with_a_changed_integrated_time_is_refused(fixture):
    fx = fixture("key-p256-rekor")
    bundle = json.loads(fx.text("rekor-bundle.json"))
    bundle["Payload"]["integratedTime"] -= 3600
    with pytest.raises(SignatureRejected, match="SignedEntryTimestamp does not verify"):
        verify_simple_signing(
            fx.payload,
            fx.signature,
            fx.digest,
            [fx.text("cosign2.pub")],
            rekor_bundle=json.dumps(bundle),
            rekor_public_keys=[fx.text("rekor.pub")],
        )


def test_rekor_bundle_of_another_signature_is_refused(fixture):
    """A genuine log entry, but for another signature: the CVE-2022-36056 swap."""
    signed = fixture("key-p256")
    logged = fixture("key-p256-rekor")
    with pytest.raises(SignatureRejected, match="another payload hash"):
        verify_simple_signing(
            signed.payload,
            signed.signature,
            signed.digest,
            [signed.text("cosign.pub")],
            rekor_bundle=logged.text("rekor-bundle.json"),
            rekor_public_keys=[logged.text("rekor.pub")],
        )


def test_keyless_fixture_verifies_at_the_integrated_time_and_names_the_identity(fixture):
    fx = fixture("keyless-fulcio-rekor")
    verified = _keyless(fx, [Identity(KEYLESS_ISSUER, KEYLESS_SUBJECT)])
    assert verified == VerifiedSignature(
        "cosign", f"{KEYLESS_SUBJECT} ({KEYLESS_ISSUER})", fx.digest, "2023-01-20T20:51:33Z"
    )


def test_keyless_identity_accepts_regular_expressions(fixture):
    fx = fixture("keyless-fulcio-rekor")
    verified = _keyless(fx, [Identity("re:https://github\\.com/.*", "re:.*@redhat\\.com")])
    assert verified.identity == f"{KEYLESS_SUBJECT} ({KEYLESS_ISSUER})"


@pytest.mark.parametrize(
    "identity",
    [
        Identity("https://token.actions.githubusercontent.com", KEYLESS_SUBJECT),
        Identity(KEYLESS_ISSUER, "someone@redhat.com"),
        Identity("re:https://accounts\\.google\\.com", KEYLESS_SUBJECT),
        Identity(KEYLESS_ISSUER, "re:.*@example\\.com"),
        Identity(KEYLESS_ISSUER, "re:mitr"),  # a pattern matches the whole subject, not a part
    ],
    ids=["issuer-exact", "subject-exact", "issuer-re", "subject-re", "subject-re-partial"],
)
def test_keyless_signature_of_another_identity_is_refused(fixture, identity):
    with pytest.raises(SignatureRejected, match="matches no accepted identity"):
        _keyless(fixture("keyless-fulcio-rekor"), [identity])


def test_keyless_tampered_payload_is_refused(fixture):
    fx = fixture("keyless-fulcio-rekor")
    with pytest.raises(SignatureRejected, match="does not verify with the signing certificate"):
        _keyless(fx, [Identity(KEYLESS_ISSUER, KEYLESS_SUBJECT)], payload=fx.tampered_payload)


def test_keyless_signature_of_another_digest_is_refused(fixture):
    fx = fixture("keyless-fulcio-rekor")
    with pytest.raises(SignatureRejected, match="payload signs"):
        _keyless(fx, [Identity(KEYLESS_ISSUER, KEYLESS_SUBJECT)], digest=fixture("key-p256").digest)


def test_keyless_certificate_from_an_untrusted_root_is_refused(fixture):
    fx = fixture("keyless-fulcio-rekor")
    # A real CA, but not Fulcio's: the timestamp root from the Notation fixtures.
    other_root = (fx.dir.parents[1] / "notation" / "timestamped" / "globalsignRoot.cer").read_bytes()
    from cryptography import x509

    pem = x509.load_der_x509_certificate(other_root).public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(SignatureRejected, match="does not chain to a trusted root at 2023-01-20T20:51:33Z"):
        _keyless(fx, [Identity(KEYLESS_ISSUER, KEYLESS_SUBJECT)], roots=[pem])


def test_keyless_with_the_log_entry_of_another_signature_is_refused(fixture):
    fx = fixture("keyless-fulcio-rekor")
    with pytest.raises(SignatureRejected, match="another payload hash"):
        _keyless(
            fx,
            [Identity(KEYLESS_ISSUER, KEYLESS_SUBJECT)],
            bundle=fixture("key-p256-rekor").text("rekor-bundle.json"),
        )


def test_keyless_trust_comes_from_a_sigstore_trusted_root(fixture, signature_fixtures):
    fx = fixture("keyless-fulcio-rekor")
    public_good = signature_fixtures / "sigstore-bundle" / "cosign-oci-attestation" / "trusted_root_pgi.json"
    verified = verify_keyless_simple_signing(
        fx.payload,
        fx.signature,
        fx.digest,
        fx.text("certificate.pem"),
        fx.text("chain.pem"),
        fx.text("rekor-bundle.json"),
        [Identity(KEYLESS_ISSUER, KEYLESS_SUBJECT)],
        trusted_root=public_good.read_bytes(),
    )
    assert verified.signed_at == "2023-01-20T20:51:33Z"


def test_keyless_trust_defaults_to_the_public_good_root_sigstore_ships(fixture):
    fx = fixture("keyless-fulcio-rekor")
    verified = verify_keyless_simple_signing(
        fx.payload,
        fx.signature,
        fx.digest,
        fx.text("certificate.pem"),
        fx.text("chain.pem"),
        fx.text("rekor-bundle.json"),
        [Identity(KEYLESS_ISSUER, KEYLESS_SUBJECT)],
    )
    assert verified.identity == f"{KEYLESS_SUBJECT} ({KEYLESS_ISSUER})"


def test_keyless_signature_is_refused_under_the_staging_root(fixture, signature_fixtures):
    fx = fixture("keyless-fulcio-rekor")
    staging = signature_fixtures / "sigstore-bundle" / "blob-staging" / "trusted_root_staging.json"
    with pytest.raises(SignatureRejected, match="not among the"):
        verify_keyless_simple_signing(
            fx.payload,
            fx.signature,
            fx.digest,
            fx.text("certificate.pem"),
            fx.text("chain.pem"),
            fx.text("rekor-bundle.json"),
            [Identity(KEYLESS_ISSUER, KEYLESS_SUBJECT)],
            trusted_root=staging.read_bytes(),
        )


def test_keyless_certificate_without_an_sct_from_a_trusted_ct_log_is_refused(fixture):
    fx = fixture("keyless-fulcio-rekor")
    with pytest.raises(
        SignatureRejected, match="no SCT in the signing certificate verifies with the 1 trusted"
    ):
        verify_keyless_simple_signing(
            fx.payload,
            fx.signature,
            fx.digest,
            fx.text("certificate.pem"),
            fx.text("chain.pem"),
            fx.text("rekor-bundle.json"),
            [Identity(KEYLESS_ISSUER, KEYLESS_SUBJECT)],
            ct_log_keys=[fx.text("rekor.pub")],  # a real Sigstore key, but not the CT log's
        )


def test_sct_check_can_be_skipped_for_a_fulcio_without_ct(fixture):
    fx = fixture("keyless-fulcio-rekor")
    verified = verify_keyless_simple_signing(
        fx.payload,
        fx.signature,
        fx.digest,
        fx.text("certificate.pem"),
        fx.text("chain.pem"),
        fx.text("rekor-bundle.json"),
        [Identity(KEYLESS_ISSUER, KEYLESS_SUBJECT)],
        fulcio_roots=[fx.text("fulcio_v1.crt.pem")],
        rekor_public_keys=[fx.text("rekor.pub")],
        ct_log_keys=[],
    )
    assert verified.signed_at == "2023-01-20T20:51:33Z"


def test_rekor_bundle_of_a_key_pair_signature_verifies_with_the_default_log_keys(fixture):
    fx = fixture("key-p256-rekor")
    verified = verify_simple_signing(
        fx.payload,
        fx.signature,
        fx.digest,
        [fx.text("cosign2.pub")],
        rekor_bundle=fx.text("rekor-bundle.json"),
    )
    assert verified.signed_at == "2023-01-20T21:57:39Z"


# --- key types and KMS, with keys made here ---------------------------------------------------

DIGEST = "sha256:" + "ab" * 32


def _sign(private_key, message: bytes, scheme: str) -> str:
    if scheme == "ed25519":
        raw = private_key.sign(message)
    elif scheme.startswith("ecdsa"):
        raw = private_key.sign(
            message, ec.ECDSA(hashes.SHA384() if scheme == "ecdsa-384" else hashes.SHA256())
        )
    elif scheme == "rsa-pkcs1":
        raw = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    else:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        raw = private_key.sign(message, pss, hashes.SHA256())
    return base64.b64encode(raw).decode()


KEY_MAKERS = {
    "ecdsa-p256": (lambda: ec.generate_private_key(ec.SECP256R1()), "ecdsa-256"),
    "ecdsa-p384-sha384": (lambda: ec.generate_private_key(ec.SECP384R1()), "ecdsa-384"),
    "ecdsa-p384-sha256": (lambda: ec.generate_private_key(ec.SECP384R1()), "ecdsa-256"),
    "rsa-pkcs1v15": (lambda: rsa.generate_private_key(65537, 2048), "rsa-pkcs1"),
    "rsa-pss": (lambda: rsa.generate_private_key(65537, 2048), "rsa-pss"),
    "ed25519": (ed25519.Ed25519PrivateKey.generate, "ed25519"),
}


@pytest.mark.parametrize("kind", sorted(KEY_MAKERS))
def test_every_key_type_cosign_signs_with_verifies(kind):
    make, scheme = KEY_MAKERS[kind]
    private = make()
    payload = _payload(DIGEST)
    verified = verify_simple_signing(
        payload, _sign(private, payload, scheme), DIGEST, [_pem(private.public_key())]
    )
    assert verified.identity == key_id(private.public_key())


@pytest.mark.parametrize("kind", sorted(KEY_MAKERS))
def test_every_key_type_refuses_a_changed_payload(kind):
    make, scheme = KEY_MAKERS[kind]
    private = make()
    signature = _sign(private, _payload(DIGEST), scheme)
    with pytest.raises(SignatureRejected, match="does not verify"):
        verify_simple_signing(_payload(DIGEST) + b" ", signature, DIGEST, [_pem(private.public_key())])


def test_validly_signed_payload_of_another_type_is_refused():
    private = ec.generate_private_key(ec.SECP256R1())
    payload = _payload(DIGEST, kind="atomic container signature")
    with pytest.raises(SignatureRejected, match="payload type is 'atomic container signature'"):
        verify_simple_signing(
            payload, _sign(private, payload, "ecdsa-256"), DIGEST, [_pem(private.public_key())]
        )


def test_validly_signed_payload_that_is_not_json_is_refused():
    private = ec.generate_private_key(ec.SECP256R1())
    payload = b"sha256:" + b"ab" * 32
    with pytest.raises(SignatureRejected, match="not a cosign simple-signing document"):
        verify_simple_signing(
            payload, _sign(private, payload, "ecdsa-256"), DIGEST, [_pem(private.public_key())]
        )


KMS_REF = "awskms:///arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


class KeyHeldElsewhere:
    """Stands in for KMS Verify (the caller's part): verifies with a key the verifier never sees."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.calls: list[tuple[str, bytes, bytes]] = []

    def __call__(self, reference: str, message: bytes, signature: bytes) -> bool:
        self.calls.append((reference, message, signature))
        try:
            self.private.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except Exception:
            return False
        return reference == KMS_REF


def test_kms_key_is_verified_through_the_callers_kms_verify():
    kms = KeyHeldElsewhere()
    payload = _payload(DIGEST)
    signature = _sign(kms.private, payload, "ecdsa-256")
    verified = verify_simple_signing(payload, signature, DIGEST, [KMS_REF], kms_verify=kms)
    assert verified == VerifiedSignature("cosign", KMS_REF, DIGEST, None)
    assert kms.calls == [(KMS_REF, payload, base64.b64decode(signature))]


def test_kms_key_that_does_not_verify_is_refused():
    kms = KeyHeldElsewhere()
    other = ec.generate_private_key(ec.SECP256R1())
    payload = _payload(DIGEST)
    with pytest.raises(SignatureRejected, match="does not verify"):
        verify_simple_signing(payload, _sign(other, payload, "ecdsa-256"), DIGEST, [KMS_REF], kms_verify=kms)


def test_kms_key_without_kms_verify_is_a_configuration_fault():
    payload = _payload(DIGEST)
    with pytest.raises(ValueError, match="needs KMS Verify"):
        verify_simple_signing(payload, "AAAA", DIGEST, [KMS_REF])


def test_listed_key_that_is_not_a_public_key_is_a_configuration_fault():
    with pytest.raises(ValueError, match="not a PEM public key"):
        verify_simple_signing(_payload(DIGEST), "AAAA", DIGEST, ["-----BEGIN PUBLIC KEY-----\nxx\n"])


@pytest.mark.parametrize(
    "document",
    [
        {"body": "eyJhIjoxfQ==", "integratedTime": 1674251859, "logID": "c0d2", "logIndex": 11608800},
        {"z": 'tab\tnewline\nquote"backslash\\', "a": "é\u2028\x01\x7f", "m": -5, "B": 0},
    ],
)
def test_canonical_json_is_rfc8785(document):
    assert canonical_json(document) == rfc8785.dumps(document)
