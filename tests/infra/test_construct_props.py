"""ImagePromoterProps: defaults in one place, values CloudFormation would refuse stopped at synth,
and every optional prop reaching the template."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_events as events
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from infra.construct import HANDLER, ImagePromoter
from infra.props import ImagePromoterProps
from infra.stack import PromoterStack
from promoter.model.config import parse_config


def _props(test_config, **overrides: Any) -> ImagePromoterProps:
    return ImagePromoterProps(config=test_config, **overrides)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_concurrency", 1, "max_concurrency must be between 2 and 1000"),
        ("max_concurrency", 1001, "max_concurrency must be between 2 and 1000"),
        ("batch_size", 0, "batch_size must be between 1 and 10"),
        ("batch_size", 11, "batch_size must be between 1 and 10"),
        ("memory_size_mb", 64, "memory_size_mb must be between 128 and 10240"),
        ("powertools_layer_arn", "AWSLambdaPowertoolsPythonV3:3", "powertools_layer_arn must be a Lambda"),
    ],
)
def test_out_of_range_props_are_refused_with_the_field_name(test_config, field, value, message):
    with pytest.raises(ValueError, match=message):
        _props(test_config, **{field: value})


def test_props_are_frozen(test_config):
    props = _props(test_config)
    with pytest.raises(AttributeError):
        props.max_concurrency = 50  # type: ignore[misc]


def test_function_timeout_above_lambda_maximum_is_refused(test_config):
    with pytest.raises(ValueError, match="between 1 second and 15 minutes, got 16 minutes"):
        _props(test_config, function_timeout=cdk.Duration.minutes(16))


# An explicit layer, as a GovCloud deploy would pass it where no SSM parameter names the layer.
GOVCLOUD_LAYER = (
    "arn:aws-us-gov:lambda:us-gov-west-1:165087284144:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:7"
)
REQUEST_ONLY = {
    "rules": [
        {
            "name": "on-demand",
            "trigger": "request",
            "source": {"repository": "app-staging", "tags": ["v*"]},
            "targets": [{"repository": "app-prod"}],
        }
    ]
}


@pytest.fixture(scope="module")
def customized(tmp_path_factory) -> tuple[Template, dict[str, Any]]:
    """A request-only configuration with every optional scalar prop changed from its default."""
    app = cdk.App(outdir=str(tmp_path_factory.mktemp("custom-out")))
    stack = PromoterStack(
        app,
        "Custom",
        config=parse_config(REQUEST_ONLY),
        max_concurrency=5,
        log_retention=logs.RetentionDays.ONE_WEEK,
        table_removal_policy=cdk.RemovalPolicy.DESTROY,
        log_removal_policy=cdk.RemovalPolicy.DESTROY,
        batch_size=3,
        memory_size_mb=2048,
        powertools_layer_arn=GOVCLOUD_LAYER,
    )
    template = Template.from_stack(stack)
    return template, template.to_json()


def test_request_only_configuration_watches_only_its_targets_on_the_default_bus(customized):
    """No push rule fires, but a target's pushes are watched for writes behind the promoter's back."""
    _, template = customized
    rules = {
        logical_id: r
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"]
    }
    (_requests,) = [r for r in rules.values() if "EventBusName" in r["Properties"]]
    (pushes,) = [r for logical_id, r in rules.items() if "PushRule" in logical_id]
    assert "EventBusName" not in pushes["Properties"]
    assert pushes["Properties"]["EventPattern"]["detail"]["repository-name"] == ["app-prod"]


def test_optional_props_reach_the_template(customized):
    template, raw = customized
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"ScalingConfig": {"MaximumConcurrency": 5}, "BatchSize": 3}
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 7})
    template.has_resource_properties("AWS::Lambda::Function", {"MemorySize": 2048})
    (function,) = [
        r
        for r in raw["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["Handler"] == HANDLER
    ]
    assert function["Properties"]["Layers"] == [GOVCLOUD_LAYER]
    assert not any(p.startswith("SsmParameterValueawsservicepowertools") for p in raw.get("Parameters", {}))
    for table in [r for r in raw["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]:
        assert table["DeletionPolicy"] == "Delete"


def test_given_event_bus_and_alarm_topic_are_used_instead_of_new_ones(test_config):
    app = cdk.App()
    shared = cdk.Stack(app, "Shared")
    bus = events.EventBus(shared, "Bus")
    topic = sns.Topic(shared, "Alarms")
    stack = cdk.Stack(app, "WithShared")
    promoter = ImagePromoter(stack, "Promoter", _props(test_config, event_bus=bus, alarm_topic=topic))
    assert promoter.event_bus is bus
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Events::EventBus", 0)
    alarms = [r for r in template.to_json()["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) == 7
    for alarm in alarms:
        (action,) = alarm["Properties"]["AlarmActions"]
        assert "Fn::ImportValue" in action  # the topic from the other stack
        assert alarm["Properties"]["OKActions"] == [action]
