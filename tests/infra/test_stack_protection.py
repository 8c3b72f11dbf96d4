"""Protected targets in the synthesized stacks (issue 18.2): the repository policy the custom
resource puts in place denies every image write and policy change to every principal but the
intended ones, as IAM decides it (the local AWS's evaluator, local_aws.policy); its role may manage
exactly the protected repositories' policies; the promoter's own grants do not widen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from infra.app import stack_options
from infra.stack import STACK_NAME
from local_aws.policy import Decision, Principal, evaluate
from promoter.model.config import parse_config
from promoter.model.protection import (
    IMAGE_WRITE_ACTIONS,
    POLICY_MANAGE_ACTIONS,
    POLICY_WRITE_ACTIONS,
    merge_protection,
    remove_protection,
)

SOURCE_ACCOUNT = "111111111111"
PROD_ACCOUNT = "210987654321"
REGION = "us-east-1"
PROD_ROLE = f"arn:aws:iam::{PROD_ACCOUNT}:role/image-promoter-target"
BREAK_GLASS = f"arn:aws:iam::{SOURCE_ACCOUNT}:role/break-glass"
TARGET_STACK = f"{STACK_NAME}Target{PROD_ACCOUNT}"
PROTECTION_TYPE = "Custom::RepositoryProtection"
CONFIG = {
    "rules": [
        {
            "name": "to-prod",
            "trigger": "request",
            "source": {"repository": "app-staging", "tags": ["v*"]},
            "protect": True,
            "targets": [
                {"repository": "app-prod"},
                {"repository": "app-prod", "account": PROD_ACCOUNT, "role": PROD_ROLE},
                {"repository": "app-prod-mirror", "account": PROD_ACCOUNT},
            ],
        },
        {
            "name": "to-staging",
            "source": {"repository": "app-dev", "tags": ["sha-*"]},
            "targets": [{"repository": "app-staging"}],
        },
    ]
}


def _synth(outdir: Path) -> dict[str, dict[str, Any]]:
    import aws_cdk as cdk

    from infra.app import build_app

    app = cdk.App(
        outdir=str(outdir),
        context={
            "break_glass_principals": BREAK_GLASS,
            "source_account": SOURCE_ACCOUNT,
            "source_region": REGION,
        },
    )
    build_app(app, parse_config(CONFIG))
    app.synth()  # cdk-nag's AwsSolutions pack runs here: any unacknowledged finding raises
    return {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in outdir.glob("*.template.json")
    }


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, dict[str, Any]]:
    return _synth(tmp_path_factory.mktemp("protection"))


def role_arn(logical_id: str, account: str = SOURCE_ACCOUNT) -> str:
    """The ARN a role of the template stands for: its logical id as its name."""
    return f"arn:aws:iam::{account}:role/{logical_id}"


def _resolve(value: Any, account: str) -> Any:
    """A template value as deployed: Fn::Join joined, a role's GetAtt Arn its `role_arn`, pseudo
    parameters filled in."""
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_resolve(p, account) for p in parts)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return role_arn(value["Fn::GetAtt"][0], account)
    if isinstance(value, dict) and "Ref" in value:
        return {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": account}[value["Ref"]]
    if isinstance(value, list):
        return [_resolve(v, account) for v in value]
    return value


def _logical_id(template: dict[str, Any], cfn_type: str, part: str) -> str:
    (found,) = [k for k, r in template["Resources"].items() if r["Type"] == cfn_type and part in k]
    return found


def _protections(template: dict[str, Any], account: str) -> dict[str, dict[str, Any]]:
    """Each protected repository's policy document as the custom resource merges it into an empty one."""
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] == PROTECTION_TYPE:
            properties = resource["Properties"]
            statements = json.loads(_resolve(properties["Statements"], account))
            found[properties["RepositoryName"]] = json.loads(merge_protection(None, statements))
    return found


def _decides(document: dict[str, Any], who: str, action: str, repository: str, account: str) -> Decision:
    principal = Principal(arn=who, account=who.split(":")[4])
    return evaluate(document, principal, action, f"arn:aws:ecr:{REGION}:{account}:repository/{repository}")


def test_each_protected_repository_of_the_account_gets_one_protection(templates):
    assert sorted(_protections(templates[STACK_NAME], SOURCE_ACCOUNT)) == ["app-prod"]
    assert sorted(_protections(templates[TARGET_STACK], PROD_ACCOUNT)) == ["app-prod", "app-prod-mirror"]


def test_only_the_promoters_roles_and_break_glass_write_a_protected_repository(templates):
    template = templates[STACK_NAME]
    document = _protections(template, SOURCE_ACCOUNT)["app-prod"]
    promoter = role_arn(_logical_id(template, "AWS::IAM::Role", "PromoterFunctionRole"))
    reconcile = role_arn(_logical_id(template, "AWS::IAM::Role", "ReconciliationRole"))
    protection = role_arn(_logical_id(template, "AWS::IAM::Role", "ProtectionRole"))
    allowed = (promoter, reconcile, BREAK_GLASS)
    denied = (
        f"arn:aws:iam::{SOURCE_ACCOUNT}:root",  # the account's administrator
        f"arn:aws:iam::{SOURCE_ACCOUNT}:role/ci",  # anyone else with ecr:PutImage
        f"arn:aws:iam::{SOURCE_ACCOUNT}:role/break-glass-2",  # a name the break-glass ARN prefixes
        f"arn:aws:iam::{PROD_ACCOUNT}:role/{STACK_NAME}-{REGION}-promoter",  # the same name elsewhere
        protection,  # manages the policy, never the images
    )
    for action in IMAGE_WRITE_ACTIONS:
        for who in allowed:
            assert _decides(document, who, action, "app-prod", SOURCE_ACCOUNT) is Decision.NO_MATCH, (
                who,
                action,
            )
        for who in denied:
            assert _decides(document, who, action, "app-prod", SOURCE_ACCOUNT) is Decision.DENY, (who, action)
    service = Principal.of_service("ecr.amazonaws.com")
    assert evaluate(document, service, "ecr:PutImage", "arn:aws:ecr:::repository/app-prod") is Decision.DENY
    # Reads are not the protection's business.
    for who in denied:
        assert _decides(document, who, "ecr:BatchGetImage", "app-prod", SOURCE_ACCOUNT) is Decision.NO_MATCH


def test_only_the_protection_role_and_break_glass_change_the_policy(templates):
    template = templates[STACK_NAME]
    document = _protections(template, SOURCE_ACCOUNT)["app-prod"]
    protection = role_arn(_logical_id(template, "AWS::IAM::Role", "ProtectionRole"))
    promoter = role_arn(_logical_id(template, "AWS::IAM::Role", "PromoterFunctionRole"))
    for action in POLICY_WRITE_ACTIONS:
        for who in (protection, BREAK_GLASS):
            assert _decides(document, who, action, "app-prod", SOURCE_ACCOUNT) is Decision.NO_MATCH
        for who in (promoter, f"arn:aws:iam::{SOURCE_ACCOUNT}:root"):
            assert _decides(document, who, action, "app-prod", SOURCE_ACCOUNT) is Decision.DENY


def test_the_target_account_protects_with_the_role_the_promoter_assumes_there(templates):
    template = templates[TARGET_STACK]
    target_role = role_arn(_logical_id(template, "AWS::IAM::Role", "PromoterTargetRole"), PROD_ACCOUNT)
    promoter = f"arn:aws:iam::{SOURCE_ACCOUNT}:role/{STACK_NAME}-{REGION}-promoter"
    for repository, document in _protections(template, PROD_ACCOUNT).items():
        for who in (target_role, promoter, BREAK_GLASS):
            assert _decides(document, who, "ecr:PutImage", repository, PROD_ACCOUNT) is Decision.NO_MATCH
        for who in (f"arn:aws:iam::{PROD_ACCOUNT}:root", f"arn:aws:iam::{PROD_ACCOUNT}:role/deployer"):
            assert _decides(document, who, "ecr:PutImage", repository, PROD_ACCOUNT) is Decision.DENY


def test_existing_statements_are_kept_and_removing_takes_out_only_the_promoters(templates):
    document = _protections(templates[STACK_NAME], SOURCE_ACCOUNT)["app-prod"]
    puller = f"arn:aws:iam::{PROD_ACCOUNT}:role/puller"
    existing = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CrossAccountPull",
                "Effect": "Allow",
                "Principal": {"AWS": puller},
                "Action": ["ecr:BatchGetImage", "ecr:PutImage"],
            }
        ],
    }
    merged = merge_protection(json.dumps(existing), document["Statement"])
    assert (
        _decides(json.loads(merged), puller, "ecr:BatchGetImage", "app-prod", SOURCE_ACCOUNT)
        is Decision.ALLOW
    )
    assert _decides(json.loads(merged), puller, "ecr:PutImage", "app-prod", SOURCE_ACCOUNT) is Decision.DENY
    # Applied again (an update): still one copy of each statement.
    assert merge_protection(merged, document["Statement"]) == merged
    assert json.loads(remove_protection(merged)) == existing
    assert remove_protection(merge_protection(None, document["Statement"])) is None


def _role_statements(template: dict[str, Any], role_part: str) -> list[dict[str, Any]]:
    return [
        statement
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        and any(role_part in ref.get("Ref", "") for ref in resource["Properties"]["Roles"])
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize(("stack", "account"), [(STACK_NAME, SOURCE_ACCOUNT), (TARGET_STACK, PROD_ACCOUNT)])
def test_the_protection_role_manages_exactly_the_protected_repositories(templates, stack, account):
    template = templates[stack]
    ecr = [s for s in _role_statements(template, "Protection") if "ecr:" in str(s["Action"])]
    (statement,) = ecr
    assert sorted(_as_list(statement["Action"])) == sorted(POLICY_MANAGE_ACTIONS)
    resources = sorted(_resolve(r, account) for r in _as_list(statement["Resource"]))
    assert resources == sorted(
        f"arn:aws:ecr:{REGION}:{account}:repository/{name}" for name in _protections(template, account)
    )


def test_the_promoters_roles_get_no_policy_actions(templates):
    for role in ("PromoterFunctionRole", "ReconciliationRole"):
        actions = {a for s in _role_statements(templates[STACK_NAME], role) for a in _as_list(s["Action"])}
        assert actions and not actions.intersection(POLICY_MANAGE_ACTIONS), role


def test_no_statement_grants_on_every_repository(templates):
    for name, template in templates.items():
        text = json.dumps(template)
        assert ":repository/*" not in text and ':repository/"' not in text, name


def test_the_actions_are_ecr_operations():
    operations = set(botocore.session.get_session().get_service_model("ecr").operation_names)
    for action in (*IMAGE_WRITE_ACTIONS, *POLICY_MANAGE_ACTIONS):
        assert action.removeprefix("ecr:") in operations, action


def test_a_stack_without_protected_targets_has_no_protection(synthesized):
    assert not synthesized.resources(PROTECTION_TYPE)
    assert not [k for k in synthesized.template_dict["Resources"] if "Protection" in k]


@pytest.mark.parametrize(
    "value", [SOURCE_ACCOUNT, f"arn:aws:iam::{SOURCE_ACCOUNT}:role/*", f"arn:aws:iam::{SOURCE_ACCOUNT}:root"]
)
def test_a_break_glass_principal_is_an_exact_role_or_user(value):
    import aws_cdk as cdk

    with pytest.raises(ValueError, match="break_glass_principals takes exact IAM role or user ARNs"):
        stack_options(cdk.App(context={"break_glass_principals": f"{BREAK_GLASS},{value}"}))
