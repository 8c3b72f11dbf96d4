"""Issue 19: the stack's attestation key (infra.attestation). One KMS key, ECC_NIST_P256 for
SIGN_VERIFY; only the promoter's roles (and the break-glass principals, when named) may kms:Sign
with it, whatever else the account grants; the account may read its public key and verify; its ARN
is the functions' ATTESTATION_KEY_ARN and the stack output AttestationPublicKeyArn."""

from __future__ import annotations

import json
from typing import Any

import pytest

from promoter import settings
from promoter.model.config import parse_config
from tests.infra.conftest import RECONCILIATION_ID, TEST_CONFIG

BREAK_GLASS = "arn:aws:iam::123456789012:role/break-glass"


def _key(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(logical_id, key)] = [(k, r) for k, r in template["Resources"].items() if r["Type"] == "AWS::KMS::Key"]
    return logical_id, key


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _covers_sign(statement: dict[str, Any]) -> bool:
    return any(action in ("kms:Sign", "kms:*", "*") for action in _actions(statement))


def _role_id(template: dict[str, Any], reconciliation: bool) -> str:
    [role] = [
        k
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::Role" and (RECONCILIATION_ID in k) == reconciliation
    ]
    return role


def _signers(template: dict[str, Any]) -> list[Any]:
    """Who the key policy's deny leaves able to sign."""
    _, key = _key(template)
    [deny] = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if s["Effect"] == "Deny" and _covers_sign(s)
    ]
    assert deny["Principal"] == {"AWS": "*"} and deny["Resource"] == "*"
    return deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]


def test_one_ecc_p256_sign_verify_key_whose_arn_is_the_output_and_the_functions_variable(synthesized):
    template = synthesized.template_dict
    logical_id, key = _key(template)
    assert key["Properties"]["KeySpec"] == "ECC_NIST_P256"
    assert key["Properties"]["KeyUsage"] == "SIGN_VERIFY"
    arn = {"Fn::GetAtt": [logical_id, "Arn"]}
    assert template["Outputs"][settings.OUTPUT_ATTESTATION_KEY]["Value"] == arn
    functions = synthesized.resources("AWS::Lambda::Function")
    assert len(functions) == 2  # the promoter and its reconciliation: both promote, both attest
    for function in functions.values():
        assert function["Properties"]["Environment"]["Variables"][settings.ATTESTATION_KEY_ENV] == arn


def test_only_the_promoters_roles_may_sign_whatever_else_allows_it(synthesized):
    template = synthesized.template_dict
    roles = [{"Fn::GetAtt": [_role_id(template, r), "Arn"]} for r in (False, True)]
    assert sorted(map(json.dumps, _signers(template))) == sorted(map(json.dumps, roles))
    logical_id, key = _key(template)
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    # Every statement that would let anyone else sign is overruled by the deny: the account's
    # administration statement (kms:*) allows through IAM, the deny does not.
    allowed = [s for s in statements if s["Effect"] == "Allow" and _covers_sign(s)]
    explicit = [s for s in allowed if _actions(s) == ["kms:Sign"]]
    assert [sorted(map(json.dumps, s["Principal"]["AWS"])) for s in explicit] == [
        sorted(map(json.dumps, roles))
    ]
    # In IAM: kms:Sign on this key only, and only in the two promoting roles' policies.
    signing = {
        json.dumps(policy["Properties"]["Roles"]): statement["Resource"]
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "kms:Sign" in _actions(statement)
    }
    assert sorted(signing) == sorted(json.dumps([{"Ref": _role_id(template, r)}]) for r in (False, True))
    assert set(map(json.dumps, signing.values())) == {json.dumps({"Fn::GetAtt": [logical_id, "Arn"]})}


def test_the_account_reads_the_public_key_and_verifies(synthesized):
    _, key = _key(synthesized.template_dict)
    [public] = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Sid") == "AccountMayReadThePublicKeyAndVerify"
    ]
    assert public["Effect"] == "Allow" and sorted(_actions(public)) == ["kms:GetPublicKey", "kms:Verify"]
    root = json.dumps(public["Principal"]["AWS"])
    assert ":root" in root and "AWS::AccountId" in root


@pytest.fixture(scope="module")
def break_glass_template(tmp_path_factory) -> dict[str, Any]:
    import aws_cdk as cdk

    from infra.app import build_app
    from infra.stack import STACK_NAME
    from tests.infra.conftest import cdk_json_context

    outdir = tmp_path_factory.mktemp("attestation-break-glass")
    app = cdk.App(outdir=str(outdir), context={**cdk_json_context(), "break_glass_principals": BREAK_GLASS})
    build_app(app, parse_config(TEST_CONFIG))
    app.synth()  # cdk-nag's AwsSolutions pack runs here: any unacknowledged finding raises
    return json.loads((outdir / f"{STACK_NAME}.template.json").read_text())


def test_break_glass_principals_may_sign_what_they_promote_and_roll_back(break_glass_template):
    signers = _signers(break_glass_template)
    assert BREAK_GLASS in signers and len(signers) == 3


def test_the_promoter_may_read_a_targets_referrers_and_its_tag_mutability(synthesized, test_config):
    """The attestation's calls in a target besides the writes: ListImageReferrers (is ours there
    already?) and DescribeRepositories (an immutable tag: a conflict found before attesting)."""
    statements = synthesized.of_promoter("AWS::IAM::Policy")["Properties"]["PolicyDocument"]["Statement"]
    for action in ("ecr:ListImageReferrers", "ecr:DescribeRepositories"):
        granted = {
            json.dumps(resource)
            for s in statements
            if action in _actions(s)
            for resource in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
        }
        for glob in test_config.target_repository_globs():
            assert any(f":repository/{glob}" in r for r in granted), (action, glob)
