"""Bad input never escapes as anything but SignatureRejected: random damage to the real fixtures."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promoter.gates.signatures import Identity, SignatureRejected
from promoter.gates.signatures.cosign import verify_keyless_simple_signing, verify_simple_signing
from promoter.gates.signatures.notation import COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, verify_envelope
from promoter.gates.signatures.sigstore_bundle import verify_bundle

DAMAGE = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _damage(data: bytes, position: int, value: int, cut: bool) -> bytes:
    """Overwrite one byte, or cut the data short there."""
    index = position % len(data)
    return data[:index] if cut else data[:index] + bytes([value]) + data[index + 1 :]


damage = given(position=st.integers(min_value=0), value=st.integers(0, 255), cut=st.booleans())


def _only_rejections(call) -> None:
    with contextlib.suppress(SignatureRejected):
        call()


@DAMAGE
@damage
def test_damaged_cosign_payload_and_bundle_only_reject(signature_fixtures, position, value, cut):
    folder = signature_fixtures / "cosign-simple" / "key-p256-rekor"
    payload = (folder / "payload.json").read_bytes()
    bundle = (folder / "rekor-bundle.json").read_bytes()
    digest = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
    key, rekor = (folder / "cosign2.pub").read_text(), (folder / "rekor.pub").read_text()
    signature = (folder / "signature.b64").read_text()
    _only_rejections(
        lambda: verify_simple_signing(_damage(payload, position, value, cut), signature, digest, [key])
    )
    _only_rejections(
        lambda: verify_simple_signing(
            payload,
            signature,
            digest,
            [key],
            rekor_bundle=_damage(bundle, position, value, cut),
            rekor_public_keys=[rekor],
        )
    )
    damaged_signature = _damage(signature.encode(), position, value, cut).decode("latin-1")
    _only_rejections(lambda: verify_simple_signing(payload, damaged_signature, digest, [key]))


@DAMAGE
@damage
def test_damaged_keyless_certificate_only_rejects(signature_fixtures, position, value, cut):
    folder = signature_fixtures / "cosign-simple" / "keyless-fulcio-rekor"
    payload = (folder / "payload.json").read_bytes()
    digest = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
    certificate = (folder / "certificate.pem").read_bytes()
    _only_rejections(
        lambda: verify_keyless_simple_signing(
            payload,
            (folder / "signature.b64").read_text(),
            digest,
            _damage(certificate, position, value, cut),
            (folder / "chain.pem").read_text(),
            (folder / "rekor-bundle.json").read_text(),
            [Identity("https://github.com/login/oauth", "mitr@redhat.com")],
            fulcio_roots=[(folder / "fulcio_v1.crt.pem").read_text()],
            rekor_public_keys=[(folder / "rekor.pub").read_text()],
        )
    )


@DAMAGE
@damage
def test_damaged_sigstore_bundle_only_rejects(signature_fixtures, position, value, cut):
    folder = signature_fixtures / "sigstore-bundle" / "cosign-oci-attestation"
    bundle = (folder / "oci-attestation.sigstore.json").read_bytes()
    _only_rejections(
        lambda: verify_bundle(
            _damage(bundle, position, value, cut),
            "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4",
            [Identity("https://github.com/login/oauth", "cody@soyland.com")],
            (folder / "trusted_root_pgi.json").read_bytes(),
        )
    )


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("jwsWithTimestamp.sig", JWS_MEDIA_TYPE), ("coseWithTimestamp.sig", COSE_MEDIA_TYPE)],
)
@DAMAGE
@damage
def test_damaged_notation_envelope_only_rejects(signature_fixtures, name, media_type, position, value, cut):
    folder = signature_fixtures / "notation" / "timestamped"
    envelope = (folder / name).read_bytes()
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    tsa = x509.load_der_x509_certificate((folder / "globalsignRoot.cer").read_bytes())
    _only_rejections(
        lambda: verify_envelope(
            _damage(envelope, position, value, cut),
            media_type,
            "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda",
            528,
            None,
            [(folder / "TestTimestamp.crt").read_text()],
            now=NOW,
            tsa_roots=[tsa.public_bytes(serialization.Encoding.PEM).decode()],
        )
    )


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "PS256", "crit": [{"x": 1}], "cty": "application/vnd.cncf.notary.payload.v1+json"},
        {"alg": ["PS256"], "crit": "io.cncf.notary.signingScheme"},
        {
            "alg": "PS256",
            "crit": ["io.cncf.notary.signingScheme"],
            "io.cncf.notary.signingScheme": ["x"],
            "cty": "application/vnd.cncf.notary.payload.v1+json",
        },
    ],
    ids=["unhashable-crit", "crit-not-a-list", "scheme-not-a-string"],
)
def test_envelope_with_odd_json_types_is_rejected(signature_fixtures, header):
    folder = signature_fixtures / "notation" / "timestamped"
    envelope = json.loads((folder / "jwsWithTimestamp.sig").read_bytes())
    envelope["protected"] = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
    with pytest.raises(SignatureRejected):
        verify_envelope(
            json.dumps(envelope).encode(),
            JWS_MEDIA_TYPE,
            "sha256:" + "0" * 64,
            None,
            None,
            [(folder / "TestTimestamp.crt").read_text()],
            now=NOW,
        )


def test_jws_payload_that_is_not_ascii_is_rejected(signature_fixtures):
    folder = signature_fixtures / "notation" / "timestamped"
    envelope = json.loads((folder / "jwsWithTimestamp.sig").read_bytes())
    envelope["payload"] = "é" + envelope["payload"]
    with pytest.raises(SignatureRejected):
        verify_envelope(
            json.dumps(envelope).encode(),
            JWS_MEDIA_TYPE,
            "sha256:" + "0" * 64,
            None,
            None,
            [(folder / "TestTimestamp.crt").read_text()],
            now=NOW,
        )
