"""The scheduled reconciliation in the stack: its schedule, its function, and a role with exactly the
promoter's grants plus listing the sources and its cursor table."""

from __future__ import annotations

import importlib
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import Duration
from aws_cdk.assertions import Template

from infra.permissions import ECR_SOURCE_READ_ACTIONS, ECR_TARGET_WRITE_ACTIONS
from infra.props import DEFAULT_RECONCILE_RATE, ImagePromoterProps
from infra.reconciliation import (
    ECR_SOURCE_LIST_ACTIONS,
    RECONCILE_HANDLER,
    RECONCILE_TABLE_ACTIONS,
)
from infra.stack import PromoterStack
from promoter import settings
from promoter.aws.reconcile_state import RECONCILE_TABLE_ENV


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _reconciliation(synthesized, cfn_type: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(k, r) for k, r in synthesized.resources(cfn_type).items() if "Reconciliation" in k]
    return found


def _repository(arn: Any) -> str:
    return arn["Fn::Join"][1][-1].removeprefix(":repository/")


@pytest.fixture(scope="module")
def statements(synthesized) -> list[dict[str, Any]]:
    _, policy = _reconciliation(synthesized, "AWS::IAM::Policy")
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_the_schedule_invokes_the_reconciliation_hourly_without_retries(synthesized):
    function_id, _ = _reconciliation(synthesized, "AWS::Lambda::Function")
    _, rule = _reconciliation(synthesized, "AWS::Events::Rule")
    assert rule["Properties"]["ScheduleExpression"] == f"rate({DEFAULT_RECONCILE_RATE.to_hours():.0f} hour)"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0  # the next run resumes instead


def test_the_function_runs_the_reconcile_handler_alone_with_the_promoters_settings(synthesized):
    _, function = _reconciliation(synthesized, "AWS::Lambda::Function")
    promoter = synthesized.of_promoter("AWS::Lambda::Function")["Properties"]
    props = function["Properties"]
    assert props["Handler"] == RECONCILE_HANDLER
    module, name = RECONCILE_HANDLER.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name))
    # One run at a time comes from the lease (promoter.aws.reconcile_state), not reserved
    # concurrency, which fails the deploy where unreserved concurrency would drop below its floor.
    assert "ReservedConcurrentExecutions" not in props
    for function in synthesized.resources("AWS::Lambda::Function").values():
        assert "ReservedConcurrentExecutions" not in function["Properties"]
    assert props["Code"] == promoter["Code"] and props["Layers"] == promoter["Layers"]
    variables = props["Environment"]["Variables"]
    (table_id,) = [k for k in synthesized.resources("AWS::DynamoDB::Table") if "ReconcileTable" in k]
    assert variables[RECONCILE_TABLE_ENV] == {"Ref": table_id}
    for name in (settings.IDEMPOTENCY_TABLE_ENV, settings.HISTORY_TABLE_ENV, settings.CONFIG_PATH_ENV):
        assert variables[name] == promoter["Environment"]["Variables"][name]


def test_it_lists_only_the_sources_and_describes_repositories_for_glob_sources(statements, test_config):
    def granted(action: str) -> set[str]:  # by grant, whatever statements cdk's minimizePolicies merges
        return {
            _repository(resource)
            for s in statements
            if action in _as_list(s["Action"])
            for resource in _as_list(s["Resource"])
        }

    sources = set(test_config.source_repository_globs())
    for action in ECR_SOURCE_LIST_ACTIONS:
        assert sources <= granted(action), action
    # Repositories are listed on the sources, and on `*` (metadata only) to resolve `team/*`; the
    # targets' are described too, before an attestation (an immutable tag: promoter.workflows.promote).
    targets = set(test_config.target_repository_globs())
    assert granted("ecr:DescribeRepositories") == sources | {"*"} | targets


def test_it_has_the_promoters_ecr_grants_and_no_write_on_a_source(statements, synthesized):
    def ecr_grants(policy_statements) -> set[tuple[str, str]]:
        return {
            (action, str(resource))
            for s in policy_statements
            for action in _as_list(s["Action"])
            if action in (*ECR_SOURCE_READ_ACTIONS, *ECR_TARGET_WRITE_ACTIONS)
            for resource in _as_list(s["Resource"])
        }

    promoter = synthesized.of_promoter("AWS::IAM::Policy")["Properties"]["PolicyDocument"]["Statement"]
    listing = ("ecr:DescribeImages", "ecr:DescribeRepositories")  # the sweep's own reads, wider
    assert ecr_grants(statements) - {
        (a, str(r)) for a in listing for s in statements for r in _as_list(s["Resource"])
    } == ecr_grants(promoter) - {
        (a, str(r)) for a in listing for s in promoter for r in _as_list(s["Resource"])
    }
    writes = [s for s in statements if "ecr:PutImage" in _as_list(s["Action"])]
    assert {_repository(r) for s in writes for r in _as_list(s["Resource"])}.isdisjoint({"app-staging"})


def test_its_tables_get_exactly_what_the_sweep_calls(statements, synthesized):
    (table_id,) = [k for k in synthesized.resources("AWS::DynamoDB::Table") if "ReconcileTable" in k]
    (history_id,) = [k for k in synthesized.resources("AWS::DynamoDB::Table") if "History" in k]
    grants: dict[str, set[str]] = {}
    for s in statements:
        for resource in _as_list(s["Resource"]):
            if isinstance(resource, dict) and "Fn::GetAtt" in resource:
                grants.setdefault(resource["Fn::GetAtt"][0], set()).update(_as_list(s["Action"]))
    assert grants[table_id] == set(RECONCILE_TABLE_ACTIONS)
    assert grants[history_id] == {"dynamodb:PutItem", "dynamodb:Query"}


def _synth(test_config, **props: Any) -> dict[str, Any]:
    app = cdk.App()
    stack = PromoterStack(app, "ReconcileProps", config=test_config, **props)
    return Template.from_stack(stack).to_json()


def test_a_custom_rate_reaches_the_schedule_and_none_turns_reconciliation_off(test_config):
    custom = _synth(test_config, reconcile_rate=Duration.minutes(15))
    schedules = [r for r in custom["Resources"].values() if "ScheduleExpression" in r.get("Properties", {})]
    assert [s["Properties"]["ScheduleExpression"] for s in schedules] == ["rate(15 minutes)"]
    off = _synth(test_config, reconcile_rate=None)
    assert not [k for k in off["Resources"] if "Reconciliation" in k or "ReconcileTable" in k]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("reconcile_rate", Duration.seconds(30), "reconcile_rate must be at least 1 minute"),
        ("reconcile_timeout", Duration.seconds(30), "reconcile_timeout must be more than 60 seconds"),
        ("reconcile_timeout", Duration.minutes(16), "reconcile_timeout must be more than"),
    ],
)
def test_out_of_range_reconcile_props_are_refused(test_config, field, value, message):
    with pytest.raises(ValueError, match=message):
        ImagePromoterProps(config=test_config, **{field: value})


def test_it_announces_results_on_the_promotion_bus_only(statements, synthesized):
    (bus_id,) = synthesized.resources("AWS::Events::EventBus")
    (put,) = [s for s in statements if "events:PutEvents" in _as_list(s["Action"])]
    assert put["Resource"] == {"Fn::GetAtt": [bus_id, "Arn"]}
