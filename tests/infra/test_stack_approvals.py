"""The approval channel in the synthesized stack (issue 20): a function URL with AuthType AWS_IAM whose
resource policy admits only the principals the rules' approvers name, which the promoter's own roles
can never call, whose role holds only its three grants, and which exists only with an approval rule."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cfnlint.api import lint

from infra.stack import STACK_NAME
from local_aws import policy
from local_aws.policy import Principal
from promoter import settings
from promoter.model.config import parse_config
from tests.infra.conftest import RECONCILIATION_ID, TEST_CONFIG

ALICE = "arn:aws:iam::111122223333:user/alice"
RELEASE_ROLE = "arn:aws:iam::111122223333:role/release"
SSO_RELEASE = "arn:aws:sts::444455556666:assumed-role/AWSReservedSSO_Release_*/*"
APPROVERS = [ALICE, RELEASE_ROLE, SSO_RELEASE]
# Stands for the function's ARN when the permissions are evaluated as the policy Lambda keeps.
FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:approvals"
URL_KEYS = {"lambda:FunctionUrlAuthType": "AWS_IAM"}
VIA_URL_KEYS = {"lambda:InvokedViaFunctionUrl": "true"}


@pytest.fixture(scope="module")
def approving(synth, tmp_path_factory):
    """The test stack with an approval gate on its request rule."""
    data: dict[str, Any] = json.loads(json.dumps(TEST_CONFIG))
    data["rules"][3]["require"] = {"approval": {"approvers": APPROVERS, "min": 2}}
    return synth(parse_config(data), tmp_path_factory.mktemp("cdk-approvals"))


def _logical_id(synthesized, cfn_type: str, part: str) -> str:
    (found,) = [k for k in synthesized.resources(cfn_type) if part in k]
    return found


def _approval_function(synthesized) -> str:
    return _logical_id(synthesized, "AWS::Lambda::Function", "Approvals")


def _permissions(synthesized) -> set[tuple[str, str, str]]:
    """(action, principal, condition) of every permission on the approval function."""
    function = {"Fn::GetAtt": [_approval_function(synthesized), "Arn"]}
    found = set()
    for permission in synthesized.resources("AWS::Lambda::Permission").values():
        props = permission["Properties"]
        if props["FunctionName"] != function:
            continue
        condition = (
            f"FunctionUrlAuthType={props['FunctionUrlAuthType']}"
            if "FunctionUrlAuthType" in props
            else f"InvokedViaFunctionUrl={props.get('InvokedViaFunctionUrl')}"
        )
        found.add((props["Action"], props["Principal"], condition))
    return found


def _as_lambda_policy(synthesized) -> dict[str, Any]:
    """The permissions as the resource policy Lambda keeps from them (GetPolicy's rendering)."""
    statements = []
    for action, principal, condition in _permissions(synthesized):
        name, _, value = condition.partition("=")
        test = (
            {"StringEquals": {"lambda:FunctionUrlAuthType": value}}
            if name == "FunctionUrlAuthType"
            else {"Bool": {"lambda:InvokedViaFunctionUrl": value.lower()}}
        )
        aws = f"arn:aws:iam::{principal}:root" if principal.isdigit() else principal
        statements.append(
            {
                "Effect": "Allow",
                "Principal": {"AWS": aws},
                "Action": action,
                "Resource": FUNCTION_ARN,
                "Condition": test,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _may_call(document: dict[str, Any], principal: Principal) -> bool:
    """Whether the resource policy allows both actions a call through an AWS_IAM URL needs."""
    return all(
        policy.evaluate(document, principal, action, FUNCTION_ARN, keys) is policy.Decision.ALLOW
        for action, keys in (("lambda:InvokeFunctionUrl", URL_KEYS), ("lambda:InvokeFunction", VIA_URL_KEYS))
    )


def _role_statements(synthesized, role_part: str) -> list[dict[str, Any]]:
    """The statements of the identity policies attached to the role whose logical id holds `role_part`."""
    found = []
    for policy_resource in synthesized.resources("AWS::IAM::Policy").values():
        roles = [r["Ref"] for r in policy_resource["Properties"].get("Roles", [])]
        if any(role_part in role for role in roles):
            found += policy_resource["Properties"]["PolicyDocument"]["Statement"]
    return found


def test_the_channel_is_a_function_url_that_aws_authenticates_with_iam(approving):
    url = approving.only("AWS::Lambda::Url")["Properties"]
    assert url["AuthType"] == "AWS_IAM"
    assert url["TargetFunctionArn"] == {"Fn::GetAtt": [_approval_function(approving), "Arn"]}
    function = approving.resources("AWS::Lambda::Function")[_approval_function(approving)]
    assert function["Properties"]["Handler"] == "promoter.approval_handler.handle"
    assert approving.template_dict["Outputs"][settings.OUTPUT_APPROVAL_URL]["Value"] == {
        "Fn::GetAtt": [_logical_id(approving, "AWS::Lambda::Url", "Approvals"), "FunctionUrl"]
    }


def test_only_the_approvers_principals_are_granted_the_url_each_with_both_actions(approving):
    expected = set()
    for principal in (ALICE, RELEASE_ROLE, "444455556666"):  # the SSO pattern: its account
        expected.add(("lambda:InvokeFunctionUrl", principal, "FunctionUrlAuthType=AWS_IAM"))
        expected.add(("lambda:InvokeFunction", principal, "InvokedViaFunctionUrl=True"))
    assert _permissions(approving) == expected


@pytest.mark.parametrize(
    "caller, allowed",
    [
        (Principal(arn=ALICE, account="111122223333", user_id="AIDAALICE"), True),
        (
            Principal(
                arn=RELEASE_ROLE,
                account="111122223333",
                session_arn="arn:aws:sts::111122223333:assumed-role/release/bob",
            ),
            True,
        ),
        # The pattern's account: admitted here, then by the caller's own identity policy, then the
        # function checks the pattern (a Lambda permission cannot hold it).
        (
            Principal(
                arn="arn:aws:iam::444455556666:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Release_0a1b",
                account="444455556666",
            ),
            True,
        ),
        (Principal(arn="arn:aws:iam::111122223333:user/mallory", account="111122223333"), False),
        (Principal(arn="arn:aws:iam::111122223333:role/ci", account="111122223333"), False),
        (Principal(arn="arn:aws:iam::999999999999:user/alice", account="999999999999"), False),
        (Principal.of_service("lambda.amazonaws.com"), False),
    ],
    ids=["alice", "release-session", "sso-account", "other-user", "other-role", "other-account", "a-service"],
)
def test_the_resource_policy_lets_only_approver_principals_call(approving, caller, allowed):
    assert _may_call(_as_lambda_policy(approving), caller) is allowed


@pytest.mark.parametrize("role_part", ["PromoterFunctionRole", f"Promoter{RECONCILIATION_ID}Role"])
def test_the_promoters_roles_are_denied_the_channel_in_their_own_policies(approving, role_part):
    function = {"Fn::GetAtt": [_approval_function(approving), "Arn"]}
    denies = [s for s in _role_statements(approving, role_part) if s["Effect"] == "Deny"]
    assert denies == [
        {
            "Sid": "PromoterRolesNeverDecide",
            "Effect": "Deny",
            "Action": ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"],
            "Resource": function,
        }
    ]
    allows = [s for s in _role_statements(approving, role_part) if s["Effect"] == "Allow"]
    assert not any("lambda:" in str(s["Action"]) for s in allows)


def test_the_channels_role_holds_only_the_index_query_the_conditional_write_and_put_events(approving):
    table = _logical_id(approving, "AWS::DynamoDB::Table", "GatesTable")
    grants = {
        (action, json.dumps(statement["Resource"], sort_keys=True))
        for statement in _role_statements(approving, "PromoterApprovalsRole")
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    index = {"Fn::Join": ["", [{"Fn::GetAtt": [table, "Arn"]}, "/index/by-wait-id"]]}
    bus = _logical_id(approving, "AWS::Events::EventBus", "PromotionBus")
    logs = _logical_id(approving, "AWS::Logs::LogGroup", "Approvals")
    assert grants == {
        ("dynamodb:Query", json.dumps(index, sort_keys=True)),
        ("dynamodb:UpdateItem", json.dumps({"Fn::GetAtt": [table, "Arn"]}, sort_keys=True)),
        ("events:PutEvents", json.dumps({"Fn::GetAtt": [bus, "Arn"]}, sort_keys=True)),
        ("logs:CreateLogStream", json.dumps({"Fn::GetAtt": [logs, "Arn"]}, sort_keys=True)),
        ("logs:PutLogEvents", json.dumps({"Fn::GetAtt": [logs, "Arn"]}, sort_keys=True)),
    }


def test_the_stack_with_an_approval_channel_passes_cdk_nag_and_cfn_lint(approving):
    assert approving.error is None, approving.error
    report = json.loads((approving.outdir / "validation-report.json").read_text())
    (plugin,) = report["pluginReports"]
    assert plugin["violations"] == [], json.dumps(plugin["violations"], indent=1)[:4000]
    template = (approving.outdir / f"{STACK_NAME}.template.json").read_text()
    matches = lint(template)
    assert matches == [], "\n".join(f"{m.rule.id} {m.message} at {m.path}" for m in matches)


def test_no_approval_channel_without_an_approval_rule(synthesized):
    assert synthesized.resources("AWS::Lambda::Url") == {}
    assert not any("Approvals" in logical_id for logical_id in synthesized.template_dict["Resources"])
    assert settings.OUTPUT_APPROVAL_URL not in synthesized.template_dict["Outputs"]
    assert "PromoterRolesNeverDecide" not in json.dumps(synthesized.template_dict)
