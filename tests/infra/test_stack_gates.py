"""Issue 20 item 0 in the stack: the sweep exists whenever some rule has a gate that waits (an
approval gate alone included) and never without one; an approval-gated configuration routes the
approval channel's `Promotion Approval Decided` from the stack's own bus (this account only) into
the queue, whose policy admits that rule; the gates table finds a wait by its id through the
`by-wait-id` index (all attributes), which the function may Query by name."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from moto.events.models import EventPattern

from infra.event_patterns import approval_decided_event_pattern
from infra.stack import PromoterStack
from promoter import settings
from promoter.model.config import parse_config

APPROVER = "arn:aws:iam::111122223333:user/alice"


def _rule(require: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "to-prod",
        "trigger": "request",
        "source": {"repository": "app-staging", "tags": ["v*"]},
        "targets": [{"repository": "app-prod", "tags": ["{tag}"]}],
        "require": require,
    }


def _template(require: dict[str, Any]) -> dict[str, Any]:
    app = cdk.App()
    stack = PromoterStack(
        app, "Gates", config=parse_config({"rules": [_rule(require)]}), gate_sweep_minutes=5
    )
    return Template.from_stack(stack).to_json()


@pytest.fixture(scope="module")
def approval_only() -> dict[str, Any]:
    return _template({"approval": {"approvers": [APPROVER], "min": 1}})


def _rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::Events::Rule"}


def _sweeps(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in _rules(template).values() if r.get("ScheduleExpression") == "rate(5 minutes)"]


def test_an_approval_gate_alone_brings_the_sweep_and_no_scan_rules(approval_only):
    (sweep,) = _sweeps(approval_only)
    assert sweep["Targets"][0]["Arn"]["Fn::GetAtt"][0].startswith("PromoterQueue")
    patterns = json.dumps([r.get("EventPattern") for r in _rules(approval_only).values()])
    assert "ECR Image Scan" not in patterns and "Inspector2 Scan" not in patterns


def test_a_gate_that_never_waits_brings_no_sweep():
    signature_only = _template(
        {
            "signature": {
                "cosign": {
                    "keys": [
                        "awskms:///arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                    ]
                }
            }
        }
    )
    assert _sweeps(signature_only) == []
    assert "Promotion Approval Decided" not in json.dumps(signature_only)


def test_approval_decisions_on_the_stacks_bus_are_routed_into_the_queue(approval_only, load_event):
    account = {"Ref": "AWS::AccountId"}
    (decided_id,) = [
        k
        for k, r in _rules(approval_only).items()
        if r.get("EventPattern") == approval_decided_event_pattern(account)
    ]
    decided = _rules(approval_only)[decided_id]
    assert decided["EventBusName"] == {
        "Ref": next(k for k in approval_only["Resources"] if k.startswith("PromoterPromotionBus"))
    }
    assert decided["Targets"][0]["Arn"]["Fn::GetAtt"][0].startswith("PromoterQueue")
    (queue_policy,) = [
        v["Properties"]["PolicyDocument"]["Statement"]
        for v in approval_only["Resources"].values()
        if v["Type"] == "AWS::SQS::QueuePolicy"
        and v["Properties"]["Queues"][0]["Ref"].startswith("PromoterQueue")
    ]
    assert decided_id in json.dumps(queue_policy)  # the queue takes what this rule delivers
    pattern = EventPattern.load(json.dumps(approval_decided_event_pattern("111122223333")))
    event = {
        "id": "1",
        "account": "111122223333",
        "source": "image-promoter.approvals",
        "detail-type": "Promotion Approval Decided",
        "detail": {"wait-id": "0123456789ab", "repository": "app-staging", "digest": "sha256:" + "a" * 64},
    }
    assert pattern.matches_event(event)
    assert not pattern.matches_event({**event, "account": "210987654321"})
    assert not pattern.matches_event({**event, "source": "image-promoter"})


def test_the_gates_table_finds_a_wait_by_its_id_and_the_function_may_query_that_index_only(approval_only):
    (table,) = [
        v["Properties"]
        for k, v in approval_only["Resources"].items()
        if v["Type"] == "AWS::DynamoDB::Table" and k.startswith("PromoterGatesTable")
    ]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-wait-id"
    assert index["KeySchema"] == [{"AttributeName": "wait_id", "KeyType": "HASH"}]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    grants = json.dumps(approval_only)
    assert "/index/by-wait-id" in grants and "/index/*" not in grants


def test_gate_failures_alarm_only_where_a_rule_has_a_gate(approval_only, synthesized):
    def alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            v["Properties"]
            for v in template["Resources"].values()
            if v["Type"] == "AWS::CloudWatch::Alarm" and v["Properties"]["MetricName"] == "GateFailures"
        ]

    (alarm,) = alarms(approval_only)
    # Where the handlers emit it (Powertools EMF): the functions' namespace, dimension `service`.
    assert alarm["Namespace"] == settings.METRICS_NAMESPACE
    assert alarm["Dimensions"] == [{"Name": "service", "Value": settings.SERVICE_NAME}]
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert "ecr:DescribeImageScanFindings" in alarm["AlarmDescription"]
    assert alarms(synthesized.template_dict) == []  # no gate, nothing that could fail
