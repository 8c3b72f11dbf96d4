"""Configuration of the signature gate (`require.signature`): the public keys of issue 11."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from promoter.exceptions import ConfigError
from promoter.model.config import ScanGate, SignatureGate, SigstoreIdentity, parse_config
from tests.fixtures import SIGNATURES_DIR

KMS_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PROFILE_ARN = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/release"
ROOTS_DIR = SIGNATURES_DIR / "notation" / "aws-signer-roots"


def _public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _rule(require: Any) -> dict[str, Any]:
    return {
        "name": "release",
        "source": {"repository": "app-staging", "tags": ["v*"]},
        "targets": [{"repository": "app-prod"}],
        "require": require,
    }


def test_every_verifier_of_the_issue_example_is_parsed_and_round_trips():
    pem = _public_pem()
    identity = {
        "issuer": "https://token.actions.githubusercontent.com",
        "subject": "re:https://github.com/acme/app/.github/workflows/release.yml@refs/heads/.*",
    }
    signature = {
        "cosign": {"keys": [pem, f"awskms:///{KMS_ARN}"]},
        "sigstore": {"identities": [identity]},
        "notation": {"signing_profiles": [PROFILE_ARN], "trust_roots": []},
    }
    config = parse_config({"rules": [_rule({"scan": {"max_severity": "HIGH"}, "signature": signature})]})
    rule = config.rules[0]
    assert rule.signature_gate == SignatureGate(
        cosign_keys=(pem, f"awskms:///{KMS_ARN}"),
        sigstore_identities=(SigstoreIdentity(identity["issuer"], identity["subject"]),),
        notation=True,
        notation_signing_profiles=(PROFILE_ARN,),
    )
    assert rule.scan_gate == ScanGate("HIGH")  # both gates stand together
    assert rule.signature_gate.kms_key_arns == (KMS_ARN,)
    assert parse_config(config.to_dict()) == config


@pytest.mark.parametrize(
    ("signature", "field", "says"),
    [
        ({}, "require.signature", "at least one"),
        ({"cosign": {"keys": []}}, "require.signature.cosign.keys", "non-empty"),
        ({"cosign": {"keys": ["not a key"]}}, "require.signature.cosign.keys[0]", "PEM block"),
        (
            {"cosign": {"keys": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]}},
            "require.signature.cosign.keys[0]",
            "not a readable PEM",
        ),
        (
            {"cosign": {"keys": ["awskms:///arn:aws:kms:us-east-1:123456789012:alias/release"]}},
            "require.signature.cosign.keys[0]",
            "no alias",
        ),
        (
            {"cosign": {"keys": [f"awskms://localhost:4566/{KMS_ARN}"]}},
            "require.signature.cosign.keys[0]",
            "no endpoint",
        ),
        ({"sigstore": {"identities": []}}, "require.signature.sigstore.identities", "non-empty"),
        (
            {"sigstore": {"identities": [{"issuer": "https://x"}]}},
            "require.signature.sigstore.identities[0].subject",
            "non-empty string",
        ),
        (
            {"sigstore": {"identities": [{"issuer": "https://x", "subject": "re:(unclosed"}]}},
            "require.signature.sigstore.identities[0].subject",
            "bad regex",
        ),
        ({"notation": {}}, "require.signature.notation.signing_profiles", "signing_profiles"),
        (
            {"notation": {"signing_profiles": ["release"]}},
            "require.signature.notation.signing_profiles[0]",
            "signing-profile ARN",
        ),
        (
            {"notation": {"trust_roots": [_public_pem()]}},
            "require.signature.notation.trust_roots[0]",
            "BEGIN CERTIFICATE",
        ),
        ({"gpg": {}}, "require.signature.gpg", "unknown key"),
    ],
)
def test_a_bad_signature_gate_names_its_field_and_the_reason(signature, field, says):
    with pytest.raises(ConfigError, match=says) as raised:
        parse_config({"rules": [_rule({"signature": signature})]})
    assert raised.value.field == field


def test_notation_with_its_own_trust_roots_needs_no_signing_profile():

    root = next(p for p in sorted(ROOTS_DIR.glob("*.crt")))
    pem = root.read_text()
    config = parse_config({"rules": [_rule({"signature": {"notation": {"trust_roots": [pem]}}})]})
    assert config.rules[0].signature_gate.notation_trust_roots == (pem,)
