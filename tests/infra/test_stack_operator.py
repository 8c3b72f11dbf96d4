"""The operator's side of the stack: outputs for everything `promoter --stack` and an operator need,
the `-c` context keys app.py turns into stack options, and the alarm topic they may create (cdk-nag
clean: encrypted with a key CloudWatch may use, TLS only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from cfnlint.api import lint

from infra.app import (
    ALARM_EMAIL_CONTEXT_KEY,
    ALARM_TOPIC_ARN_CONTEXT_KEY,
    GATE_SWEEP_MINUTES_CONTEXT_KEY,
    REQUEST_SOURCE_CONTEXT_KEY,
    TRUSTED_PRINCIPALS_CONTEXT_KEY,
    build_app,
    stack_options,
)
from infra.stack import CONSOLE_HOSTS, STACK_NAME
from promoter import settings
from promoter.model.config import parse_config

OTHER_ACCOUNT = "210987654321"
CI_ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/ci"
TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:ops-alarms"
GATED_RULE = {
    "name": "gated-release",
    "trigger": "request",
    "source": {"repository": "team/*", "tags": ["v*"]},
    "targets": [{"repository": "prod/{repository}", "tags": ["{tag}"]}],
    "require": {"scan": {"max_severity": "HIGH", "timeout_minutes": 30}},
}


def _logical_id(template: dict[str, Any], cfn_type: str, construct_id: str) -> str:
    (found,) = [
        k
        for k, v in template["Resources"].items()
        if v["Type"] == cfn_type and k.startswith(f"Promoter{construct_id}")
    ]
    return found


def _synth_with_context(config_data: dict[str, Any], context: dict[str, Any], outdir: Path):
    """Synth as app.py does with these `-c` values: (template, cdk-nag's error or None)."""
    app = cdk.App(outdir=str(outdir), context=context)
    build_app(app, parse_config(config_data))
    error = None
    try:
        app.synth()
    except RuntimeError as exc:
        error = str(exc)
    return json.loads((outdir / f"{STACK_NAME}.template.json").read_text()), error


@pytest.fixture(scope="module")
def with_context(test_config, tmp_path_factory) -> tuple[dict[str, Any], str | None]:
    """Every release-workflow key and the alarm e-mail, as `-c` passes them (strings)."""
    data = test_config.to_dict()
    data["rules"].append(GATED_RULE)
    context = {
        TRUSTED_PRINCIPALS_CONTEXT_KEY: f"{OTHER_ACCOUNT}, {CI_ROLE}",
        REQUEST_SOURCE_CONTEXT_KEY: "acme.ci",
        GATE_SWEEP_MINUTES_CONTEXT_KEY: "15",
        ALARM_EMAIL_CONTEXT_KEY: "ops@example.com,oncall@example.com",
    }
    return _synth_with_context(data, context, tmp_path_factory.mktemp("ctx"))


def _of_type(template: dict[str, Any], cfn_type: str) -> list[dict[str, Any]]:
    return [v for v in template["Resources"].values() if v["Type"] == cfn_type]


# --- outputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "cfn_type", "construct_id"),
    [
        (settings.OUTPUT_IDEMPOTENCY_TABLE, "AWS::DynamoDB::Table", "IdempotencyTable"),
        (settings.OUTPUT_HISTORY_TABLE, "AWS::DynamoDB::Table", "HistoryTable"),
        (settings.OUTPUT_GATES_TABLE, "AWS::DynamoDB::Table", "GatesTable"),
        (settings.OUTPUT_RECONCILE_TABLE, "AWS::DynamoDB::Table", "ReconcileTable"),
        (settings.OUTPUT_QUEUE_URL, "AWS::SQS::Queue", "Queue"),
        (settings.OUTPUT_DEAD_LETTER_QUEUE_URL, "AWS::SQS::Queue", "DeadLetterQueue"),
        (settings.OUTPUT_DELIVERY_DEAD_LETTER_QUEUE_URL, "AWS::SQS::Queue", "DeliveryDeadLetterQueue"),
        (settings.OUTPUT_EVENT_BUS, "AWS::Events::EventBus", "PromotionBus"),
    ],
)
def test_every_table_both_dead_letter_queues_the_queue_and_the_bus_are_stack_outputs(
    synthesized, output, cfn_type, construct_id
):
    template = synthesized.template_dict
    assert template["Outputs"][output]["Value"] == {"Ref": _logical_id(template, cfn_type, construct_id)}


@pytest.mark.parametrize("cfn_type", ["AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Events::EventBus"])
def test_no_table_queue_or_bus_of_the_stack_is_left_without_an_output(synthesized, cfn_type):
    template = synthesized.template_dict
    named = {json.dumps(o["Value"]) for o in template["Outputs"].values()}
    for logical_id in synthesized.resources(cfn_type):
        assert json.dumps({"Ref": logical_id}) in named, f"{logical_id} has no stack output"


def test_the_dead_letter_queue_outputs_say_which_redrive_empties_them(synthesized):
    outputs = synthesized.template_dict["Outputs"]
    assert outputs[settings.OUTPUT_DEAD_LETTER_QUEUE_URL]["Description"].endswith(
        f"--queue {settings.REDRIVE_PROCESSING}"
    )
    assert outputs[settings.OUTPUT_DELIVERY_DEAD_LETTER_QUEUE_URL]["Description"].endswith(
        f"--queue {settings.REDRIVE_DELIVERY}"
    )


def test_the_dashboard_url_names_the_dashboard_on_the_console_of_the_stack_partition(synthesized):
    template = synthesized.template_dict
    dashboard = _logical_id(template, "AWS::CloudWatch::Dashboard", "Dashboard")
    parts = template["Outputs"][settings.OUTPUT_DASHBOARD_URL]["Value"]["Fn::Join"][1]
    assert parts[0] == "https://"
    (mapping_name, partition, key) = parts[1]["Fn::FindInMap"]
    assert partition == {"Ref": "AWS::Partition"}
    hosts = {p: v[key] for p, v in template["Mappings"][mapping_name].items()}
    assert hosts == CONSOLE_HOSTS and hosts["aws"] == "console.aws.amazon.com"
    assert parts[2:] == [
        "/cloudwatch/home?region=",
        {"Ref": "AWS::Region"},
        "#dashboards:name=",
        {"Ref": dashboard},
    ]


def test_the_request_source_output_is_what_the_request_rule_listens_for(with_context):
    template, _ = with_context
    assert template["Outputs"][settings.OUTPUT_REQUEST_SOURCE]["Value"] == "acme.ci"
    (request_rule,) = [
        r for r in _of_type(template, "AWS::Events::Rule") if "EventBusName" in r["Properties"]
    ]
    assert request_rule["Properties"]["EventPattern"]["source"] == ["acme.ci"]


def test_without_a_topic_there_is_no_alarm_topic_output(synthesized):
    assert settings.OUTPUT_ALARM_TOPIC_ARN not in synthesized.template_dict["Outputs"]


# --- context keys -----------------------------------------------------------------------------


def test_release_workflow_context_keys_reach_the_bus_policy_and_the_gate_sweep(with_context):
    template, error = with_context
    assert error is None, error
    statements = {
        p["Properties"]["StatementId"].removeprefix("cdk-"): p["Properties"]["Statement"]
        for p in _of_type(template, "AWS::Events::EventBusPolicy")
    }
    allowed = json.dumps(statements["TrustedPrincipalsMayRequest"]["Principal"])
    assert OTHER_ACCOUNT in allowed and CI_ROLE in allowed
    assert (
        statements["TrustedPrincipalsMayRequest"]["Condition"]["StringEquals"]["events:source"] == "acme.ci"
    )
    (sweep,) = [
        r
        for r in _of_type(template, "AWS::Events::Rule")
        if "ScheduleExpression" in r["Properties"]
        and r["Properties"].get("Description", "").startswith("Ends gate waits")
    ]
    assert sweep["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    (function,) = [
        f
        for f in _of_type(template, "AWS::Lambda::Function")
        if f["Properties"]["Handler"] == "promoter.handler.handle_queue"
    ]
    assert function["Properties"]["Environment"]["Variables"][settings.REQUEST_SOURCE_ENV] == "acme.ci"


def test_alarm_email_creates_an_encrypted_tls_only_topic_every_alarm_notifies(with_context):
    template, error = with_context
    assert error is None, error  # cdk-nag: SNS2 (encryption), SNS3 (TLS only), KMS5 (rotation)
    (topic_id,) = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::SNS::Topic"]
    topic = template["Resources"][topic_id]
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = template["Resources"][key_id]
    assert key["Properties"]["EnableKeyRotation"] is True
    cloudwatch_use = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch_use and set(cloudwatch_use[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    (policy,) = _of_type(template, "AWS::SNS::TopicPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    assert any(
        s["Effect"] == "Allow"
        and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        and s["Action"] == "sns:Publish"
        for s in statements
    )
    subscriptions = _of_type(template, "AWS::SNS::Subscription")
    assert sorted(s["Properties"]["Endpoint"] for s in subscriptions) == [
        "oncall@example.com",
        "ops@example.com",
    ]
    assert {s["Properties"]["Protocol"] for s in subscriptions} == {"email"}
    alarms = _of_type(template, "AWS::CloudWatch::Alarm")
    assert alarms
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["Properties"]["OKActions"] == [{"Ref": topic_id}]
    assert template["Outputs"][settings.OUTPUT_ALARM_TOPIC_ARN]["Value"] == {"Ref": topic_id}


def test_the_stack_with_every_context_key_is_cfn_lint_clean(with_context):
    template, _ = with_context
    matches = lint(json.dumps(template))
    assert matches == [], "\n".join(f"{m.rule.id} {m.message} at {m.path}" for m in matches)


def test_alarm_topic_arn_makes_every_alarm_notify_that_topic(test_config, tmp_path):
    template, error = _synth_with_context(
        test_config.to_dict(), {ALARM_TOPIC_ARN_CONTEXT_KEY: TOPIC_ARN}, tmp_path
    )
    assert error is None, error
    assert not _of_type(template, "AWS::SNS::Topic")  # used, not created
    alarms = _of_type(template, "AWS::CloudWatch::Alarm")
    assert alarms and all(a["Properties"]["AlarmActions"] == [TOPIC_ARN] for a in alarms)
    assert template["Outputs"][settings.OUTPUT_ALARM_TOPIC_ARN]["Value"] == TOPIC_ARN


def test_dead_letter_queue_alarms_tell_the_operator_which_redrive_to_run(synthesized):
    descriptions = [
        a["Properties"]["AlarmDescription"] for a in synthesized.resources("AWS::CloudWatch::Alarm").values()
    ]
    assert any(
        d.startswith("DeadLetterQueue:") and d.endswith(f"--queue {settings.REDRIVE_PROCESSING}")
        for d in descriptions
    )
    assert any(
        d.startswith("DeliveryDeadLetterQueue:") and d.endswith(f"--queue {settings.REDRIVE_DELIVERY}")
        for d in descriptions
    )


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({GATE_SWEEP_MINUTES_CONTEXT_KEY: "often"}, "-c gate_sweep_minutes takes whole minutes"),
        ({ALARM_EMAIL_CONTEXT_KEY: "ops"}, "-c alarm_email takes e-mail addresses"),
        ({ALARM_TOPIC_ARN_CONTEXT_KEY: "ops-alarms"}, "-c alarm_topic_arn takes an SNS topic ARN"),
    ],
)
def test_context_values_that_cannot_be_right_are_refused_naming_the_key(context, message):
    with pytest.raises(ValueError, match=message):
        stack_options(cdk.App(context=context))


def test_lists_come_comma_separated_from_dash_c_or_as_json_lists_from_cdk_json():
    from_cli = stack_options(cdk.App(context={TRUSTED_PRINCIPALS_CONTEXT_KEY: f"{OTHER_ACCOUNT},{CI_ROLE}"}))
    from_json = stack_options(cdk.App(context={TRUSTED_PRINCIPALS_CONTEXT_KEY: [OTHER_ACCOUNT, CI_ROLE]}))
    assert from_cli == from_json == {"trusted_principals": (OTHER_ACCOUNT, CI_ROLE)}
    assert stack_options(cdk.App()) == {}


def test_alarm_email_and_alarm_topic_arn_together_are_refused(test_config, tmp_path):
    app = cdk.App(
        outdir=str(tmp_path),
        context={ALARM_EMAIL_CONTEXT_KEY: "ops@example.com", ALARM_TOPIC_ARN_CONTEXT_KEY: TOPIC_ARN},
    )
    with pytest.raises(ValueError, match="not both"):
        build_app(app, test_config)
