"""A stack whose rules have signature gates (issue 11): the verifiers ship in the asset as arm64
wheels, kms:Verify is granted on the named keys only, signer:GetRevocationStatus only with Notation,
and cdk-nag and cfn-lint stay clean. The stack without gates ships none of it (test_function_asset)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from infra.asset import RUNTIME_PROVIDED_DISTRIBUTIONS, unpack_wheels
from infra.stack import STACK_NAME
from promoter.model.config import parse_config

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PROFILE = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/release"


def _signed_config(base: dict[str, Any]) -> dict[str, Any]:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    config = json.loads(json.dumps(base))
    config["rules"][3]["require"] = {
        "signature": {
            "cosign": {"keys": [pem, f"awskms:///{KMS_KEY}"]},
            "notation": {"signing_profiles": [PROFILE]},
        }
    }
    return config


@pytest.fixture(scope="module")
def signed_stack(synth, test_config, tmp_path_factory):
    """TEST_CONFIG with a signature gate on its request rule (staging-to-prod)."""
    config = parse_config(_signed_config(test_config.to_dict()))
    return synth(config, tmp_path_factory.mktemp("cdk-out-signed"))


def _statements(synthesized, reconciliation: bool) -> list[dict[str, Any]]:
    policies = [
        policy
        for logical_id, policy in synthesized.resources("AWS::IAM::Policy").items()
        if ("Reconciliation" in logical_id) == reconciliation
    ]
    (policy,) = policies
    return policy["Properties"]["PolicyDocument"]["Statement"]


def _asset_dir(synthesized) -> Path:
    code = synthesized.of_promoter("AWS::Lambda::Function")["Properties"]["Code"]
    return synthesized.outdir / f"asset.{code['S3Key'].removesuffix('.zip')}"


@pytest.mark.parametrize("reconciliation", [False, True])
def test_kms_verify_on_the_named_keys_only_and_signer_revocation_for_notation(signed_stack, reconciliation):
    statements = _statements(signed_stack, reconciliation)
    # By grant, whatever statements cdk's minimizePolicies merges them into.
    grants = {
        (action, json.dumps(resource))
        for st in statements
        for action in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
        for resource in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])
        if action.startswith(("kms:", "signer:"))
    }
    # kms:Sign on the stack's own attestation key (issue 19) is every stack's, gated or not.
    [attestation_key] = signed_stack.resources("AWS::KMS::Key")
    signing = ("kms:Sign", json.dumps({"Fn::GetAtt": [attestation_key, "Arn"]}))
    assert grants == {("kms:Verify", json.dumps(KMS_KEY)), ("signer:GetRevocationStatus", '"*"'), signing}


def test_a_stack_without_signature_gates_has_no_kms_or_signer_grant(synthesized):
    text = json.dumps(synthesized.resources("AWS::IAM::Policy"))
    assert "kms:Verify" not in text and "signer:" not in text


def test_the_signature_gated_stack_passes_cdk_nag_and_cfn_lint(signed_stack):
    assert signed_stack.error is None, signed_stack.error
    template = (signed_stack.outdir / f"{STACK_NAME}.template.json").read_text()
    matches = lint(template)
    assert matches == [], "\n".join(f"{m.rule.id} {m.message} at {m.path}" for m in matches)


def test_the_verifiers_ship_as_arm64_wheels_beside_the_package_without_the_runtimes_own(signed_stack):
    asset = _asset_dir(signed_stack)
    top = {p.name for p in asset.iterdir()}
    assert {"promoter", "cryptography", "sigstore", "cbor2", "pydantic_core"} <= top
    assert not {"boto3", "botocore", "urllib3"} & top  # the runtime's copies stay in charge
    (rust,) = (asset / "cryptography" / "hazmat" / "bindings").glob("_rust.abi3.so")
    assert rust.read_bytes()[18:20] == (183).to_bytes(2, "little")  # ELF e_machine EM_AARCH64


def test_unpacking_skips_runtime_distributions_and_refuses_paths_outside_the_asset(tmp_path):
    import zipfile

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "urllib3-2.0.0-py3-none-any.whl", "w") as archive:
        archive.writestr("urllib3/__init__.py", "")
    with zipfile.ZipFile(wheels / "pkg-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr("pkg/__init__.py", "")
        archive.writestr("pkg-1.0.data/purelib/extra.py", "")
    staged = tmp_path / "asset"
    staged.mkdir()
    assert unpack_wheels(wheels, staged) == ["pkg"]
    assert sorted(p.name for p in staged.iterdir()) == ["extra.py", "pkg"]
    assert "urllib3" in RUNTIME_PROVIDED_DISTRIBUTIONS
    with zipfile.ZipFile(wheels / "evil-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr("../outside.py", "")  # data, not a path
    with pytest.raises(ValueError, match="outside the asset"):
        unpack_wheels(wheels, staged)
