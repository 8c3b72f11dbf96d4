"""The function's permissions: exactly what the rules need, scoped to the repositories they name."""

from __future__ import annotations

from typing import Any

import pytest

from infra.permissions import (
    ECR_ACCOUNT_ACTIONS,
    ECR_SOURCE_READ_ACTIONS,
    ECR_TARGET_WRITE_ACTIONS,
    HISTORY_TABLE_ACTIONS,
    IDEMPOTENCY_TABLE_ACTIONS,
    iam_resource_pattern,
)
from promoter.model.protection import POLICY_MANAGE_ACTIONS


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _repository_name(arn: Any) -> str:
    """`repository/<name>` from the Fn::Join the stack builds for an ECR repository ARN."""
    parts = arn["Fn::Join"][1]
    assert parts[0] == "arn:" and parts[2] == ":ecr:"
    tail = parts[-1]
    assert tail.startswith(":repository/")
    return tail.removeprefix(":repository/")


@pytest.fixture(scope="module")
def statements(synthesized) -> list[dict[str, Any]]:
    policy = synthesized.of_promoter("AWS::IAM::Policy")
    return policy["Properties"]["PolicyDocument"]["Statement"]


def _statements_with(statements, action: str) -> list[dict[str, Any]]:
    return [s for s in statements if action in _as_list(s["Action"])]


def test_source_reads_are_scoped_to_the_source_repositories(statements, test_config):
    (read,) = [s for s in statements if sorted(_as_list(s["Action"])) == sorted(ECR_SOURCE_READ_ACTIONS)]
    names = sorted(_repository_name(arn) for arn in _as_list(read["Resource"]))
    assert names == ["app-staging", "my-repository-name", "svc-?-api", "team/*"]
    assert names == sorted(iam_resource_pattern(g) for g in test_config.source_repository_globs())


def test_target_writes_are_scoped_to_the_target_repositories(statements):
    (write,) = _statements_with(statements, "ecr:PutImage")
    assert sorted(_as_list(write["Action"])) == sorted(ECR_TARGET_WRITE_ACTIONS)
    names = sorted(_repository_name(arn) for arn in _as_list(write["Resource"]))
    assert names == ["app-prod", "mirror/svc-?-api", "my-repository-name-prod", "release/team/*"]


@pytest.mark.parametrize(
    "action", ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"]
)
def test_no_write_action_reaches_a_source_only_repository(statements, action):
    for statement in _statements_with(statements, action):
        names = {_repository_name(arn) for arn in _as_list(statement["Resource"])}
        assert not names & {"my-repository-name", "team/*", "svc-?-api"}


def test_only_the_account_level_ecr_actions_are_on_star(statements):
    """The two without resource-level permissions, and the registry's creation templates (read to
    promote into a missing target a CREATE_ON_PUSH template creates)."""
    on_star = [s for s in statements if "*" in _as_list(s["Resource"])]
    assert len(on_star) == 1
    assert sorted(_as_list(on_star[0]["Action"])) == [
        "ecr:DescribeRepositoryCreationTemplates",
        "ecr:GetAccountSetting",
        "ecr:GetAuthorizationToken",
    ]
    assert sorted(ECR_ACCOUNT_ACTIONS) == ["ecr:GetAccountSetting", "ecr:GetAuthorizationToken"]


def test_no_wildcard_actions_and_only_allows(statements):
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            assert "*" not in action, action


def test_role_has_no_managed_policies_and_trusts_only_lambda(synthesized):
    role = synthesized.of_promoter("AWS::IAM::Role")["Properties"]
    assert "ManagedPolicyArns" not in role
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"


def _table_id(synthesized, part: str) -> str:
    (logical_id,) = [k for k in synthesized.resources("AWS::DynamoDB::Table") if part in k]
    return logical_id


def _dynamodb_grants(statements) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for statement in statements:
        actions = [a for a in _as_list(statement["Action"]) if a.startswith("dynamodb:")]
        if not actions:
            continue
        assert len(actions) == len(_as_list(statement["Action"]))  # never mixed with other services
        for resource in _as_list(statement["Resource"]):
            if "Fn::Join" in resource:  # an index, by its name: "<table ARN>/index/<name>", never '*'
                (table_arn, suffix) = resource["Fn::Join"][1]
                assert (
                    table_arn["Fn::GetAtt"][1] == "Arn" and suffix.startswith("/index/") and "*" not in suffix
                )
                grants.setdefault(table_arn["Fn::GetAtt"][0] + suffix, set()).update(actions)
                continue
            table = resource["Fn::GetAtt"][0]  # the table ARN itself: no stream, no '*'
            assert resource["Fn::GetAtt"][1] == "Arn"
            grants.setdefault(table, set()).update(actions)
    return grants


def test_idempotency_table_gets_exactly_the_four_powertools_actions(synthesized, statements):
    grants = _dynamodb_grants(statements)
    assert grants[_table_id(synthesized, "IdempotencyTable")] == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    assert set(IDEMPOTENCY_TABLE_ACTIONS) == grants[_table_id(synthesized, "IdempotencyTable")]


def test_function_may_only_append_to_the_history_table_and_read_a_targets_records(synthesized, statements):
    """Query: the out-of-band check reads a target tag's records (promoter.workflows.out_of_band)."""
    grants = _dynamodb_grants(statements)
    assert grants[_table_id(synthesized, "HistoryTable")] == {"dynamodb:PutItem", "dynamodb:Query"}
    assert set(HISTORY_TABLE_ACTIONS) == {"dynamodb:PutItem"}
    assert set(grants) == {
        _table_id(synthesized, "IdempotencyTable"),
        _table_id(synthesized, "HistoryTable"),
        _table_id(synthesized, "GatesTable"),
        _table_id(synthesized, "GatesTable") + "/index/by-wait-id",  # Query only: finding a wait by id
    }
    assert grants[_table_id(synthesized, "GatesTable") + "/index/by-wait-id"] == {"dynamodb:Query"}


def test_function_has_no_permission_the_engine_does_not_use(statements):
    services = {action.split(":")[0] for s in statements for action in _as_list(s["Action"])}
    # events: results, on the bus only; kms: signing attestations, with the stack's key only
    assert services == {"ecr", "dynamodb", "sqs", "logs", "events", "kms"}


def test_function_may_consume_only_its_queue_and_write_only_its_log_group(synthesized, statements):
    (consume,) = _statements_with(statements, "sqs:ReceiveMessage")
    assert consume["Resource"]["Fn::GetAtt"][0].startswith("PromoterQueue")
    (logs,) = _statements_with(statements, "logs:PutLogEvents")
    assert sorted(_as_list(logs["Action"])) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert logs["Resource"]["Fn::GetAtt"][0].startswith("PromoterFunctionLogs")


@pytest.mark.parametrize(("glob", "expected"), [("team/*", "team/*"), ("svc-?-api", "svc-?-api"), ("a", "a")])
def test_repository_globs_keep_their_meaning_in_iam(glob, expected):
    assert iam_resource_pattern(glob) == expected


def _ecr_operations_the_engine_calls() -> set[str]:
    """ECR API operations called in the Lambda package (`self._ecr.put_image(...)` -> PutImage)."""
    import ast

    import botocore.session
    from botocore import xform_name

    from infra.asset import PACKAGE_SOURCE_DIR

    model = botocore.session.get_session().get_service_model("ecr")
    by_method = {xform_name(name): name for name in model.operation_names}
    called: set[str] = set()
    for path in PACKAGE_SOURCE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in by_method
                and "ecr" in ast.unparse(node.func.value).lower()
            ):
                called.add(by_method[node.func.attr])
    return called


def test_every_ecr_call_in_the_engine_is_granted(synthesized):
    called = _ecr_operations_the_engine_calls()
    assert {"PutImage", "BatchGetImage", "GetAuthorizationToken"} <= called  # the scan finds calls
    # To the function that makes it: the promoter, or its reconciliation (which lists sources).
    granted = {
        action.removeprefix("ecr:")
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in _as_list(statement["Action"])
        if action.startswith("ecr:")
    }
    # DescribeImageScanFindings is granted only with scan-gated rules (test_stack_release), the
    # repository-policy calls only to the protection's role with protected targets (test_stack_protection),
    # CreateRepository only with `create_missing` targets (test_create_missing_grants).
    only_with = {
        "CreateRepository",
        "DescribeImageScanFindings",
        *(a.removeprefix("ecr:") for a in POLICY_MANAGE_ACTIONS),
    }
    assert called - only_with <= granted, f"called but not granted: {sorted(called - granted)}"
