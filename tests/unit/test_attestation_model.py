"""The promotion attestation's pure core: the VSA statement, DSSE, the Sigstore bundle, the referrer
manifest and `verify_bundle`, checked against an implementation that is not ours (securesystemslib's
DSSE `Envelope` + `SSlibKey`) and against the VSA's required fields (as a JSON schema kept here)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import UTC, datetime

import jsonschema
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from promoter.model import attestation as att

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
SOURCE_DIGEST = DIGEST
REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
KEYID = "arn:aws:kms:eu-west-1:111122223333:key/0f1e2d3c-0000-4000-8000-000000000001"
NOW = datetime(2026, 12, 6, 18, 30, tzinfo=UTC)
EVIDENCE = (
    {
        "gate": "signature",
        "summary": "signed by cosign key release",
        "inputs": ({"uri": f"oci://{REGISTRY}/app@sha256:" + "11" * 32, "digest": "sha256:" + "11" * 32},),
        "details": {"signer": "release"},
    },
    {
        "gate": "scan",
        "summary": "no finding at or above HIGH",
        "inputs": ({"uri": "ecr://app@" + DIGEST + "/scan-findings", "digest": "sha256:" + "22" * 32},),
        "details": {"threshold": "HIGH"},
    },
)

# The VSA v1 required fields (slsa.dev/spec/v1.0/verification_summary, "Fields") and the in-toto
# Statement v1 (`spec/v1/statement.md`), as data: draft-07 for jsonschema.
VSA_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["_type", "subject", "predicateType", "predicate"],
    "properties": {
        "_type": {"const": "https://in-toto.io/Statement/v1"},
        "subject": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["digest"],
                "properties": {
                    "name": {"type": "string"},
                    "digest": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {"type": "string"},
                    },
                },
            },
        },
        "predicateType": {"const": "https://slsa.dev/verification_summary/v1"},
        "predicate": {
            "type": "object",
            "required": [
                "verifier",
                "timeVerified",
                "resourceUri",
                "policy",
                "verificationResult",
                "verifiedLevels",
            ],
            "properties": {
                "verifier": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string", "format": "uri"},
                        "version": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "timeVerified": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"},
                "resourceUri": {"type": "string", "minLength": 1},
                "policy": {
                    "type": "object",
                    "required": ["uri"],
                    "properties": {"uri": {"type": "string"}, "digest": {"type": "object"}},
                },
                "inputAttestations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["digest"],
                        "properties": {
                            "uri": {"type": "string"},
                            "digest": {"type": "object", "minProperties": 1},
                        },
                    },
                },
                "verificationResult": {"enum": ["PASSED", "FAILED"]},
                # Custom values are allowed; they MUST NOT start with SLSA_ (the spec, "SlsaResult").
                "verifiedLevels": {
                    "type": "array",
                    "items": {"type": "string", "not": {"pattern": "^SLSA_"}},
                },
            },
        },
    },
}


def _statement(digest: str = DIGEST, **overrides: object) -> bytes:
    facts: dict[str, object] = {
        "subject_digest": digest,
        "target_registry": REGISTRY,
        "target_repository": "app-prod",
        "target_tag": "v1.4.0",
        "rule": "to-prod",
        "config_digest": att.config_sha256(b"rules: []\n"),
        "config_name": "promotion.yaml",
        "source": f"{REGISTRY}/app:v1.4.0",
        "source_digest": SOURCE_DIGEST,
        "requested_by": "arn:aws:sts::111122223333:assumed-role/Release/alice",
        "trigger": "request",
        "evidence": EVIDENCE,
        "time_verified": NOW,
        "version": "0.1.0",
        "event_id": "evt-1",
    }
    facts.update(overrides)
    return att.build_statement(**facts)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(private: ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _signed_bundle(private: ec.EllipticCurvePrivateKey, statement: bytes) -> bytes:
    sig = private.sign(att.pae(att.IN_TOTO_PAYLOAD_TYPE, statement), ec.ECDSA(hashes.SHA256()))
    return att.bundle(att.envelope(statement, sig, KEYID), KEYID)


def _sslib_verify(bundle_bytes: bytes, pem: bytes) -> dict:
    """securesystemslib's DSSE verification with the key from its PEM: not our code."""
    envelope = Envelope.from_dict(json.loads(bundle_bytes)["dsseEnvelope"])
    public = serialization.load_pem_public_key(pem)
    sslib_key = SSlibKey.from_crypto(public, keyid=KEYID, scheme="ecdsa-sha2-nistp256")
    return envelope.verify([sslib_key], 1)


def test_the_statement_has_every_field_the_vsa_requires_and_our_levels_never_start_with_slsa():
    statement = json.loads(_statement())
    jsonschema.validate(statement, VSA_SCHEMA, format_checker=jsonschema.FormatChecker())
    predicate = statement["predicate"]
    assert statement["subject"] == [{"name": f"{REGISTRY}/app-prod", "digest": {"sha256": "ab" * 32}}]
    assert predicate["verifier"] == {"id": att.VERIFIER_ID, "version": {"ecr-image-promoter": "0.1.0"}}
    assert predicate["resourceUri"] == f"{REGISTRY}/app-prod:v1.4.0"
    assert predicate["timeVerified"] == "2026-12-06T18:30:00Z"
    assert predicate["policy"]["digest"] == {"sha256": hashlib.sha256(b"rules: []\n").hexdigest()}
    assert (
        "rule=to-prod" in predicate["policy"]["uri"] and "config=promotion.yaml" in predicate["policy"]["uri"]
    )
    assert predicate["inputAttestations"] == [
        {"uri": f"oci://{REGISTRY}/app@sha256:" + "11" * 32, "digest": {"sha256": "11" * 32}},
        {"uri": "ecr://app@" + DIGEST + "/scan-findings", "digest": {"sha256": "22" * 32}},
    ]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifiedLevels"] == [
        "ECR_PROMOTER_RULE_to-prod",
        "ECR_PROMOTER_GATE_SIGNATURE",
        "ECR_PROMOTER_GATE_SCAN",
    ]
    promotion = predicate[att.PROMOTION_FIELD]
    assert promotion["requestedBy"] == "arn:aws:sts::111122223333:assumed-role/Release/alice"
    assert promotion["trigger"] == "request"
    assert promotion["source"] == {"uri": f"{REGISTRY}/app:v1.4.0", "digest": {"sha256": "ab" * 32}}
    # The extension field's name is a URI, as the VSA's parsing rules ask of producers.
    assert att.PROMOTION_FIELD.startswith("https://")


def test_a_promotion_without_gates_still_names_its_rule_and_an_unknown_requester_stays_null():
    predicate = json.loads(_statement(evidence=(), requested_by=None))["predicate"]
    assert predicate["verifiedLevels"] == ["ECR_PROMOTER_RULE_to-prod"]
    assert predicate["inputAttestations"] == []
    assert predicate[att.PROMOTION_FIELD]["requestedBy"] is None


def test_a_digest_that_is_not_sha256_is_refused_when_building():
    with pytest.raises(ValueError, match="sha256"):
        _statement(digest="sha512:" + "ab" * 64)


def test_pae_is_dsse_v1_byte_for_byte():
    # The DSSE protocol's own example: "DSSEv1" SP len(type) SP type SP len(body) SP body.
    assert att.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert att.pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"  # lengths in bytes, not characters


def test_securesystemslib_verifies_our_envelope_and_our_verifier_agrees(key):
    statement = _statement()
    bundle_bytes = _signed_bundle(key, statement)
    assert set(_sslib_verify(bundle_bytes, _pem(key))) == {KEYID}
    verified = att.verify_bundle(
        bundle_bytes, _pem(key), subject_digest=DIGEST, resource=f"{REGISTRY}/app-prod:v1.4.0", rule="to-prod"
    )
    assert verified.gates == ("signature", "scan")
    assert verified.requester == "arn:aws:sts::111122223333:assumed-role/Release/alice"
    assert verified.policy_digest == "sha256:" + hashlib.sha256(b"rules: []\n").hexdigest()
    assert verified.time_verified == "2026-12-06T18:30:00Z"
    assert verified.keyid == KEYID


def test_the_bundle_is_a_sigstore_v03_bundle_with_a_public_key_hint_and_no_log_entry(key):
    document = json.loads(_signed_bundle(key, _statement()))
    assert document["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert document["verificationMaterial"] == {"publicKey": {"hint": KEYID}, "tlogEntries": []}
    assert document["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(document["dsseEnvelope"]["payload"]) == _statement()


def _tampered(bundle_bytes: bytes) -> bytes:
    document = json.loads(bundle_bytes)
    statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    statement["predicate"]["verifiedLevels"].append("ECR_PROMOTER_GATE_APPROVAL")
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps(document).encode()


def test_a_tampered_envelope_is_refused_by_securesystemslib_and_by_us(key):
    tampered = _tampered(_signed_bundle(key, _statement()))
    with pytest.raises(VerificationError):
        _sslib_verify(tampered, _pem(key))
    with pytest.raises(att.AttestationRefusedError, match="no signature"):
        att.verify_bundle(tampered, _pem(key), subject_digest=DIGEST)


def test_an_envelope_signed_by_another_key_is_refused_by_securesystemslib_and_by_us(key):
    other = ec.generate_private_key(ec.SECP256R1())
    bundle_bytes = _signed_bundle(other, _statement())
    with pytest.raises(VerificationError):
        _sslib_verify(bundle_bytes, _pem(key))
    with pytest.raises(att.AttestationRefusedError, match="no signature"):
        att.verify_bundle(bundle_bytes, _pem(key), subject_digest=DIGEST)


def test_a_statement_for_another_digest_verifies_as_dsse_but_is_refused_for_this_digest(key):
    bundle_bytes = _signed_bundle(key, _statement(digest=OTHER_DIGEST))
    # securesystemslib checks the envelope only; what it says is the consumer's to check: its
    # in-toto layer (in_toto.models.metadata) reads the subject, as we do.
    _sslib_verify(bundle_bytes, _pem(key))
    envelope = Envelope.from_dict(json.loads(bundle_bytes)["dsseEnvelope"])
    assert json.loads(envelope.payload)["subject"][0]["digest"] == {"sha256": "cd" * 32}
    with pytest.raises(att.AttestationRefusedError, match=f"not {DIGEST}"):
        att.verify_bundle(bundle_bytes, _pem(key), subject_digest=DIGEST)


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda s: s.update(predicateType="https://slsa.dev/provenance/v1"), {}, "predicate type"),
        (lambda s: s["predicate"]["verifier"].update(id="https://example.com/other"), {}, "verifier"),
        (lambda s: s["predicate"].update(verificationResult="FAILED"), {}, "verificationResult"),
        (lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"), {}, "statement type"),
        (lambda s: None, {"resource": f"{REGISTRY}/app-prod:v2"}, "resourceUri"),
        (lambda s: None, {"resource": f"{REGISTRY}/app-staging"}, "resourceUri"),
        (lambda s: None, {"rule": "to-staging"}, "rule"),
        (lambda s: None, {"level": "ECR_PROMOTER_GATE_APPROVAL"}, "level"),
    ],
)
def test_what_a_consumer_must_check_is_checked(key, change, kwargs, message):
    statement = json.loads(_statement())
    change(statement)
    bundle_bytes = _signed_bundle(key, json.dumps(statement).encode())
    with pytest.raises(att.AttestationRefusedError, match=message):
        att.verify_bundle(bundle_bytes, _pem(key), subject_digest=DIGEST, **kwargs)


def test_any_tag_of_the_repository_and_the_levels_present_are_accepted(key):
    bundle_bytes = _signed_bundle(key, _statement())
    verified = att.verify_bundle(
        bundle_bytes,
        _pem(key),
        subject_digest=DIGEST,
        resource=f"{REGISTRY}/app-prod",
        level="ECR_PROMOTER_GATE_SCAN",
    )
    assert verified.resource_uri == f"{REGISTRY}/app-prod:v1.4.0"


def test_a_key_that_is_not_p256_is_bad_input_not_a_refusal(key):
    rsa_pem = b"-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"
    with pytest.raises(ValueError, match="PEM"):
        att.verify_bundle(_signed_bundle(key, _statement()), rsa_pem, subject_digest=DIGEST)
    p384 = _pem(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match="P-256"):
        att.verify_bundle(_signed_bundle(key, _statement()), p384, subject_digest=DIGEST)


@pytest.mark.parametrize(
    "bundle_bytes",
    [
        b"not json",
        b"[]",
        b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}',
        b'{"mediaType": "x"}',
    ],
)
def test_a_malformed_bundle_is_refused_in_one_line(key, bundle_bytes):
    with pytest.raises(att.AttestationRefusedError) as raised:
        att.verify_bundle(bundle_bytes, _pem(key), subject_digest=DIGEST)
    assert "\n" not in raised.value.reason


def test_the_referrer_manifest_is_cosigns_bundle_layout_and_its_blobs_are_named_by_their_sha256(key):
    bundle_bytes = _signed_bundle(key, _statement())
    annotations = att.attestation_annotations("to-prod", f"{REGISTRY}/app-prod:v1.4.0", NOW)
    body, blobs = att.referrer_manifest(
        bundle_bytes, DIGEST, "application/vnd.oci.image.manifest.v1+json", 1234, annotations
    )
    manifest = json.loads(body)
    assert manifest["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
    }
    assert manifest["layers"] == [
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "digest": "sha256:" + hashlib.sha256(bundle_bytes).hexdigest(),
            "size": len(bundle_bytes),
        }
    ]
    assert manifest["subject"] == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": DIGEST,
        "size": 1234,
    }
    assert manifest["annotations"] == {
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": "https://slsa.dev/verification_summary/v1",
        "dev.ecr-image-promoter.rule": "to-prod",
        "dev.ecr-image-promoter.target": f"{REGISTRY}/app-prod:v1.4.0",
        "org.opencontainers.image.created": "2026-12-06T18:30:00Z",
    }
    assert {d: hashlib.sha256(b).hexdigest() for d, b in blobs.items()} == {
        d: d.removeprefix("sha256:") for d in blobs
    }
    assert set(blobs) == {manifest["config"]["digest"], manifest["layers"][0]["digest"]}


def test_our_attestation_is_told_apart_by_its_annotations():
    ours = att.attestation_annotations("to-prod", f"{REGISTRY}/app-prod:v1.4.0", NOW)
    assert att.is_our_attestation(ours, "to-prod", f"{REGISTRY}/app-prod:v1.4.0")
    assert att.is_our_attestation(ours)  # any rule, any target: ours, e.g. carried from a source
    assert not att.is_our_attestation(ours, "to-staging", f"{REGISTRY}/app-prod:v1.4.0")
    assert not att.is_our_attestation(ours, "to-prod", f"{REGISTRY}/app-prod:v1.5.0")
    # A cosign attestation of the same predicate type without our rule is someone else's.
    cosign = {k: v for k, v in ours.items() if not k.startswith("dev.ecr-image-promoter.")}
    assert not att.is_our_attestation(cosign)
    provenance = copy.deepcopy(ours) | {"dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"}
    assert not att.is_our_attestation(provenance)
    assert not att.is_our_attestation(None)


def test_the_bundle_parses_as_a_protobuf_specs_bundle_the_way_sigstore_python_reads_one(key):
    # sigstore-models: the protobuf-specs `Bundle` (sigstore_bundle.proto) sigstore-python parses with.
    from sigstore_models.bundle.v1 import Bundle

    bundle_bytes = _signed_bundle(key, _statement())
    parsed = Bundle.from_json(bundle_bytes)
    assert parsed.media_type == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert parsed.verification_material.public_key.hint == KEYID
    assert (
        parsed.verification_material.certificate is None and parsed.verification_material.tlog_entries == []
    )
    assert parsed.dsse_envelope.payload == _statement()
    assert parsed.dsse_envelope.signatures[0].keyid == KEYID
    with pytest.raises(ValueError):  # the model does refuse what the proto does not allow
        Bundle.from_json(bundle_bytes.replace(b'"publicKey":{"hint"', b'"publicKey":{"hint":1,"x"'))


def test_the_verifier_version_is_known_where_the_package_ships_without_metadata(tmp_path):
    # The Lambda asset is a copy of functions/promoter, no installed metadata beside it: run there
    # (python -S: no site-packages, cwd elsewhere), the version is still the project's.
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import promoter

    shutil.copytree(Path(promoter.__file__).parent, tmp_path / "promoter")
    code = "from promoter.model import attestation; print(attestation.promoter_version())"
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == promoter.__version__ == att.promoter_version()
