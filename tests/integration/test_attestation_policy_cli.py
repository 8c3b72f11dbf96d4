"""`promoter attestation policy` end to end on the local AWS: the public key comes from KMS
(GetPublicKey of the attestation key), the registry from the caller's account and region (STS), the
repositories from the configuration; what it prints is each controller's policy, valid against its
CRD's published schema. No admission controller runs here: nothing is applied to a cluster."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
import yaml
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from local_aws.stack_route import attestation_key
from promoter import settings
from promoter.model.attestation import VSA_PREDICATE_TYPE
from promoter_cli import attestation_policy as ap
from promoter_cli.main import main
from tests.crd_schemas import SCHEMAS, schema_errors

pytestmark = pytest.mark.integration

REGION = "us-east-1"
CONFIG = {
    "rules": [
        {
            "name": "to-prod",
            "source": {"repository": "app-staging", "tags": ["v*"]},
            "trigger": "request",
            "targets": [{"repository": "app-prod", "tags": ["{tag}"]}],
        }
    ]
}


@pytest.fixture
def kms(aws_env):
    return boto3.client("kms", endpoint_url=aws_env.endpoint, region_name=REGION)


@pytest.mark.parametrize("kind", list(SCHEMAS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_policy_from_the_kms_key_and_the_callers_registry_is_valid_and_names_both(
    kind: tuple[str, str], kms, aws_env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    kms_key = load_der_public_key(kms.get_public_key(KeyId=key_arn)["PublicKey"])
    account = boto3.client("sts", endpoint_url=aws_env.endpoint, region_name=REGION).get_caller_identity()[
        "Account"
    ]
    config = tmp_path / "promotion.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    controller, api = kind
    argv = ["attestation", "policy", "--for", controller, "--config", str(config), "--key-arn", key_arn]
    if controller == ap.KYVERNO:
        argv += ["--kyverno-api", api]

    assert main([*argv, "--rule", "to-prod"]) == 0

    out, err = capsys.readouterr()
    assert out.startswith("# Admits only images")
    assert key_arn in out.split("---\n", 1)[0]  # the comment says which key
    document = yaml.safe_load(out)
    assert schema_errors(kind, document) == []
    text = yaml.safe_dump(document)
    assert VSA_PREDICATE_TYPE in text and "ECR_PROMOTER_RULE_to-prod" in text
    assert f"{account}.dkr.ecr.{REGION}.amazonaws.com/app-prod" in text
    assert "app-staging" not in text  # the source is not a target
    pems = [value for value in _strings(document) if "BEGIN PUBLIC KEY" in value]
    assert len(pems) == 1
    assert load_pem_public_key(pems[0].encode()).public_numbers() == kms_key.public_numbers()
    assert ("NOT YET USABLE" in err) == (controller == ap.POLICY_CONTROLLER)


def test_without_a_key_the_policy_carries_the_local_stacks_attestation_key(
    kms, aws_env, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `promoter local` sets the stack up (its key under the stack's alias), no --key needed:
    the key `attestation key` prints is the one the policy requires."""
    monkeypatch.delenv(settings.ATTESTATION_KEY_ENV, raising=False)
    local_key = load_der_public_key(kms.get_public_key(KeyId=attestation_key(kms))["PublicKey"])
    config = tmp_path / "promotion.yaml"
    config.write_text(yaml.safe_dump(CONFIG))

    assert main(["attestation", "policy", "--for", "kyverno", "--config", str(config)]) == 0

    out, _ = capsys.readouterr()
    document = yaml.safe_load(out)
    assert schema_errors((ap.KYVERNO, ap.IMAGE_VALIDATING_POLICY), document) == []
    pem = document["spec"]["attestors"][0]["cosign"]["key"]["data"]
    assert load_pem_public_key(pem.encode()).public_numbers() == local_key.public_numbers()
    assert main(["attestation", "key"]) == 0
    assert capsys.readouterr().out.strip() == pem.strip()


def test_a_kms_key_that_does_not_exist_fails_with_exit_1_and_prints_no_policy(
    aws_env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "promotion.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    argv = ["attestation", "policy", "--for", "kyverno", "--config", str(config), "--key-arn", missing]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("promoter: ")


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []
