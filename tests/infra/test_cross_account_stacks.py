"""Cross-account and cross-region targets in the stacks: AssumeRole only on the named roles, no
source-account writes for remote targets, and the TargetAccountStack for the target account."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint

from infra.app import build_app
from infra.permissions import ECR_TARGET_WRITE_ACTIONS
from infra.stack import STACK_NAME
from promoter.model.config import parse_config

SOURCE_ACCOUNT = "111111111111"
PROD_ACCOUNT = "210987654321"
PROD_ROLE = f"arn:aws:iam::{PROD_ACCOUNT}:role/image-promoter-target"
SOURCE_REGION = "us-east-1"
PROMOTER_ROLE = f"arn:aws:iam::{SOURCE_ACCOUNT}:role/{STACK_NAME}-{SOURCE_REGION}-promoter"
RECONCILE_ROLE = f"arn:aws:iam::{SOURCE_ACCOUNT}:role/{STACK_NAME}-{SOURCE_REGION}-reconcile"
TARGET_STACK = f"{STACK_NAME}Target{PROD_ACCOUNT}"
CONFIG = {
    "rules": [
        {
            "name": "dev-to-prod",
            "source": {"repository": "app", "tags": ["v*"]},
            "targets": [
                {"repository": "app", "account": PROD_ACCOUNT, "role": PROD_ROLE},
                {"repository": "app-dr", "region": "eu-west-1"},
                {"repository": "app-mirror", "account": PROD_ACCOUNT},  # by repository policy
            ],
        },
        {
            "name": "team-to-prod-eu",
            "source": {"repository": "team/*", "tags": ["v*"]},
            "targets": [
                {
                    "repository": "{repository}",
                    "account": PROD_ACCOUNT,
                    "role": PROD_ROLE,
                    "region": "eu-west-1",
                }
            ],
        },
        {
            "name": "dev-to-staging",
            "source": {"repository": "app", "tags": ["sha-*"]},
            "targets": [{"repository": "app-staging"}],
        },
    ]
}


def _synth(outdir: Path, **context: str) -> dict[str, dict[str, Any]]:
    import aws_cdk as cdk

    app = cdk.App(outdir=str(outdir), context=context)
    build_app(app, parse_config(CONFIG))
    app.synth()  # cdk-nag's AwsSolutions pack runs here: any unacknowledged finding raises
    return {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in outdir.glob("*.template.json")
    }


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, dict[str, Any]]:
    return _synth(
        tmp_path_factory.mktemp("cross"), source_account=SOURCE_ACCOUNT, source_region=SOURCE_REGION
    )


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The promoter function's statements (its reconciliation's role repeats the same grants)."""
    return [
        statement
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Policy" and "Reconciliation" not in logical_id
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _joined(value: Any) -> str:
    """An ARN as text: Fn::Join parts joined, pseudo parameters as <AWS::...>."""
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_joined(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    return str(value)


def test_the_promoter_may_assume_exactly_the_configured_target_role(templates):
    assume = [s for s in _statements(templates[STACK_NAME]) if "sts:AssumeRole" in _as_list(s["Action"])]
    assert len(assume) == 1
    assert assume[0]["Action"] == "sts:AssumeRole"
    assert assume[0]["Resource"] == PROD_ROLE


def test_remote_targets_get_no_ecr_write_in_the_source_registry(templates):
    writes = [
        _joined(resource)
        for s in _statements(templates[STACK_NAME])
        if "ecr:PutImage" in _as_list(s["Action"])
        for resource in _as_list(s["Resource"])
    ]
    here = "arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>:repository/"
    # Own-registry target; role-less targets: eu-west-1 of the own account, and the prod account.
    assert set(writes) == {
        f"{here}app-staging",
        f"arn:<AWS::Partition>:ecr:<AWS::Region>:{PROD_ACCOUNT}:repository/app-mirror",
        "arn:<AWS::Partition>:ecr:eu-west-1:<AWS::AccountId>:repository/app-dr",
    }
    assert len(writes) == 3


def test_the_target_account_stack_holds_the_role_the_rules_name(templates):
    target = templates[TARGET_STACK]
    (role,) = [r for r in target["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert role["Properties"]["RoleName"] == "image-promoter-target"
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole"
    assert _joined(trust["Principal"]["AWS"]).endswith(f":iam::{SOURCE_ACCOUNT}:root")
    assert [_joined(arn).replace("<AWS::Partition>", "aws") for arn in _trusted_arns(trust)] == [
        PROMOTER_ROLE,
        RECONCILE_ROLE,
    ]
    (statement,) = _statements(target)
    assert sorted(_as_list(statement["Action"])) == sorted(ECR_TARGET_WRITE_ACTIONS)
    assert sorted(_joined(r) for r in _as_list(statement["Resource"])) == [
        f"arn:<AWS::Partition>:ecr:eu-west-1:{PROD_ACCOUNT}:repository/team/*",
        f"arn:<AWS::Partition>:ecr:us-east-1:{PROD_ACCOUNT}:repository/app",
    ]
    assert "ecr:*" not in json.dumps(target)


def _trusted_arns(trust: dict[str, Any]) -> list[Any]:
    """The role ARNs an unpinned trust names in its condition (exact: no wildcard allowed)."""
    assert set(trust["Condition"]) == {"ArnEquals"}, "the roles are named exactly, never by a prefix"
    return _as_list(trust["Condition"]["ArnEquals"]["aws:PrincipalArn"])


def _pinned_principals(role: dict[str, Any]) -> list[str]:
    """Every principal a pinned trust names: role ARNs only, with no condition left to widen it."""
    principals = []
    for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
        assert statement["Action"] == "sts:AssumeRole" and "Condition" not in statement
        principals += _as_list(statement["Principal"]["AWS"])
    return principals


def test_pinning_trusts_the_function_and_the_reconciliation_roles(tmp_path):
    templates = _synth(
        tmp_path,
        source_account=SOURCE_ACCOUNT,
        source_region=SOURCE_REGION,
        promoter_role_arn=PROMOTER_ROLE,
    )
    (role,) = [r for r in templates[TARGET_STACK]["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert _pinned_principals(role) == [PROMOTER_ROLE, RECONCILE_ROLE]


def test_pinning_to_a_differently_named_role_needs_the_reconciliation_role_too(tmp_path):
    other = f"arn:aws:iam::{SOURCE_ACCOUNT}:role/custom/promoter"
    with pytest.raises(ValueError, match="reconcile_role_arn"):
        _synth(tmp_path, source_account=SOURCE_ACCOUNT, source_region=SOURCE_REGION, promoter_role_arn=other)
    reconcile = f"arn:aws:iam::{SOURCE_ACCOUNT}:role/custom/reconcile"
    templates = _synth(
        tmp_path / "pinned",
        source_account=SOURCE_ACCOUNT,
        source_region=SOURCE_REGION,
        promoter_role_arn=other,
        reconcile_role_arn=reconcile,
    )
    (role,) = [r for r in templates[TARGET_STACK]["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert _pinned_principals(role) == [other, reconcile]


def test_the_trusted_names_are_the_names_the_promoter_stack_gives_its_roles(templates):
    roles = {
        logical_id: _joined(resource["Properties"]["RoleName"]).replace("<AWS::Region>", SOURCE_REGION)
        for logical_id, resource in templates[STACK_NAME]["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role" and "RoleName" in resource["Properties"]
    }
    (function_role,) = [name for logical_id, name in roles.items() if "FunctionRole" in logical_id]
    (reconcile_role,) = [name for logical_id, name in roles.items() if "Reconciliation" in logical_id]
    assert f"role/{function_role}" == PROMOTER_ROLE.split(":", 5)[-1]
    assert f"role/{reconcile_role}" == RECONCILE_ROLE.split(":", 5)[-1]
    outputs = templates[STACK_NAME]["Outputs"]
    assert {"FunctionRoleArn", "ReconcileRoleArn"} <= set(outputs)


def test_both_templates_are_cfn_lint_clean(templates):
    for name, template in templates.items():
        matches = lint(json.dumps(template))
        assert matches == [], name + "\n".join(f"{m.rule.id} {m.message} at {m.path}" for m in matches)


def test_without_the_source_account_the_target_stack_cannot_be_built(tmp_path):
    with pytest.raises(ValueError, match="source_account"):
        _synth(tmp_path)


def test_a_role_less_target_gets_the_repository_policy_to_set(templates):
    output = templates[TARGET_STACK]["Outputs"]["RepositoryPolicy"]
    assert "app-mirror" in output["Description"]
    policy = json.loads(_joined(output["Value"]).replace("<AWS::Partition>", "aws"))
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{SOURCE_ACCOUNT}:root"}
    assert _trusted_arns(statement) == [PROMOTER_ROLE, RECONCILE_ROLE]
    assert sorted(statement["Action"]) == sorted(ECR_TARGET_WRITE_ACTIONS)


def test_an_account_reached_only_by_repository_policy_still_gets_a_deployable_stack(tmp_path):
    """Its stack has the RepositoryPolicy output and nothing to create: CloudFormation refuses a
    template without resources, so it holds one that creates nothing."""
    import aws_cdk as cdk

    context = {"source_account": SOURCE_ACCOUNT, "source_region": SOURCE_REGION}
    app = cdk.App(outdir=str(tmp_path), context=context)
    config = {
        "rules": [
            {
                "name": "mirror",
                "source": {"repository": "app", "tags": ["v*"]},
                "targets": [{"repository": "app-mirror", "account": PROD_ACCOUNT}],
            }
        ]
    }
    build_app(app, parse_config(config))
    app.synth()
    template = json.loads((tmp_path / f"{TARGET_STACK}.template.json").read_text())
    assert "RepositoryPolicy" in template["Outputs"]
    types = [r["Type"] for r in template.get("Resources", {}).values() if r["Type"] != "AWS::CDK::Metadata"]
    assert types == ["AWS::CloudFormation::WaitConditionHandle"]
    assert lint(json.dumps(template)) == []
