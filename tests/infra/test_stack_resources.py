"""Every resource the promoter needs, with the properties that make it safe, and nothing extra."""

from __future__ import annotations

import pytest
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Match

from infra.construct import (
    HANDLER,
    MAX_RECEIVE_COUNT,
    VISIBILITY_TIMEOUT_FACTOR,
)
from infra.props import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FUNCTION_TIMEOUT,
    DEFAULT_LOG_RETENTION,
    DEFAULT_MAX_CONCURRENCY,
    ECR_PUT_IMAGE_QUOTA_PER_SECOND,
    HANDLER_SECONDS_PER_EVENT,
    PUT_IMAGE_PER_EVENT,
)
from promoter import settings


def _logical_id(synthesized, cfn_type: str, path_part: str) -> str:
    matches = [
        logical_id
        for logical_id, resource in synthesized.resources(cfn_type).items()
        if path_part in logical_id
    ]
    assert len(matches) == 1, f"{cfn_type} with {path_part!r}: {matches}"
    return matches[0]


def test_stack_has_exactly_the_expected_resources(synthesized):
    counts = {
        "AWS::Events::EventBus": 1,
        "AWS::Events::EventBusPolicy": 2,  # requests only from trusted principals, results only from us
        "AWS::Events::Rule": 4,  # push, request, trust material, the reconciliation's schedule
        "AWS::SQS::Queue": 3,
        "AWS::SQS::QueuePolicy": 3,
        "AWS::Lambda::Function": 2,  # the promoter, the reconciliation
        "AWS::Lambda::EventSourceMapping": 1,
        "AWS::DynamoDB::Table": 4,  # idempotency, history, scan-gate waits, the reconciliation's cursor
        "AWS::IAM::Role": 2,
        "AWS::IAM::Policy": 2,
        "AWS::Lambda::Permission": 1,  # the schedule may invoke the reconciliation
        "AWS::Logs::LogGroup": 2,
        "AWS::CloudWatch::Alarm": 7,
        "AWS::CloudWatch::Dashboard": 1,
        "AWS::ECR::PullTimeUpdateExclusion": 2,  # the promoter's and the reconciliation's reads
        "AWS::KMS::Key": 1,  # signs promotion attestations (issue 19)
    }
    for cfn_type, count in counts.items():
        synthesized.template.resource_count_is(cfn_type, count)
    other = {r["Type"] for r in synthesized.template_dict["Resources"].values()} - set(counts)
    assert other <= {"AWS::CDK::Metadata"}


def test_every_queue_is_encrypted_at_rest(synthesized):
    for queue in synthesized.resources("AWS::SQS::Queue").values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_every_queue_denies_requests_without_tls(synthesized):
    policies = synthesized.resources("AWS::SQS::QueuePolicy").values()
    queues_with_tls_deny = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            # The other denies are on sqs:SendMessage only (tests/infra/test_stack_queue_policies.py).
            if statement["Effect"] == "Deny" and statement["Action"] != "sqs:SendMessage":
                assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                assert statement["Action"] == "sqs:*"
                queues_with_tls_deny.add(policy["Properties"]["Queues"][0]["Ref"])
    assert queues_with_tls_deny == set(synthesized.resources("AWS::SQS::Queue"))


def test_work_queue_redrives_to_its_dead_letter_queue(synthesized):
    dlq = _logical_id(synthesized, "AWS::SQS::Queue", "PromoterDeadLetterQueue")
    synthesized.template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
                "maxReceiveCount": MAX_RECEIVE_COUNT,
            },
            "VisibilityTimeout": DEFAULT_FUNCTION_TIMEOUT.to_seconds() * VISIBILITY_TIMEOUT_FACTOR,
        },
    )


def test_both_rules_target_the_queue_with_the_delivery_dead_letter_queue(synthesized):
    queue = _logical_id(synthesized, "AWS::SQS::Queue", "PromoterQueue")
    delivery_dlq = _logical_id(synthesized, "AWS::SQS::Queue", "DeliveryDeadLetterQueue")
    for rule in synthesized.event_rules():
        (target,) = rule["Properties"]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [delivery_dlq, "Arn"]}}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0


def test_eventbridge_may_send_only_from_our_rules(synthesized):
    rule_ids = set(synthesized.resources("AWS::Events::Rule"))
    for policy in synthesized.resources("AWS::SQS::QueuePolicy").values():
        allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
        for statement in allows:
            assert statement["Principal"] == {"Service": "events.amazonaws.com"}
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert set(actions) <= {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
            source = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
            assert source["Fn::GetAtt"][0] in rule_ids


def test_push_rule_is_on_the_default_bus_and_request_rule_on_the_promotion_bus(synthesized):
    bus = _logical_id(synthesized, "AWS::Events::EventBus", "PromotionBus")
    rules = synthesized.event_rules()
    buses = sorted(str(r["Properties"].get("EventBusName")) for r in rules)
    assert buses == sorted(["None", "None", str({"Ref": bus})])  # push and trust material: default bus


def test_function_runs_python_313_on_arm64_with_the_powertools_layer(synthesized):
    synthesized.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "Handler": HANDLER,
            "Timeout": DEFAULT_FUNCTION_TIMEOUT.to_seconds(),
            "Layers": [{"Ref": Match.string_like_regexp("^SsmParameterValueawsservicepowertools")}],
        },
    )


def test_function_environment_names_tables_config_and_bus_by_the_shared_settings(synthesized):
    idempotency = _logical_id(synthesized, "AWS::DynamoDB::Table", "IdempotencyTable")
    history = _logical_id(synthesized, "AWS::DynamoDB::Table", "HistoryTable")
    bus = _logical_id(synthesized, "AWS::Events::EventBus", "PromotionBus")
    synthesized.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": {
                    settings.IDEMPOTENCY_TABLE_ENV: {"Ref": idempotency},
                    settings.HISTORY_TABLE_ENV: {"Ref": history},
                    settings.CONFIG_PATH_ENV: f"/var/task/promoter/{settings.STAGED_CONFIG_FILE}",
                    settings.EVENT_BUS_ENV: {"Ref": bus},
                    "POWERTOOLS_SERVICE_NAME": settings.SERVICE_NAME,
                    "POWERTOOLS_METRICS_NAMESPACE": settings.METRICS_NAMESPACE,
                    "POWERTOOLS_TRACE_DISABLED": "true",
                }
            }
        },
    )


def test_configuration_is_not_passed_through_the_environment(synthesized, test_config):
    variables = synthesized.of_promoter("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    for value in variables.values():
        assert "rules" not in str(value)
    assert "sample-push" not in str(variables)


def test_function_has_no_active_tracing_that_would_need_star_permissions(synthesized):
    assert "TracingConfig" not in synthesized.of_promoter("AWS::Lambda::Function")["Properties"]


def test_function_logs_to_its_own_log_group_with_retention(synthesized):
    log_group = _logical_id(synthesized, "AWS::Logs::LogGroup", "FunctionLogs")
    synthesized.template.has_resource_properties(
        "AWS::Lambda::Function", {"LoggingConfig": {"LogGroup": {"Ref": log_group}}}
    )
    assert DEFAULT_LOG_RETENTION is logs.RetentionDays.ONE_MONTH
    synthesized.template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_queue_feeds_the_function_with_partial_batch_responses_and_a_concurrency_cap(synthesized):
    queue = _logical_id(synthesized, "AWS::SQS::Queue", "PromoterQueue")
    synthesized.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [queue, "Arn"]},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": DEFAULT_MAX_CONCURRENCY},
            "BatchSize": DEFAULT_BATCH_SIZE,
        },
    )


def test_default_concurrency_has_enough_workers_to_fill_the_put_image_quota():
    # Workers x PutImage each can make a second (records run one after another) >= the quota.
    per_worker = PUT_IMAGE_PER_EVENT / HANDLER_SECONDS_PER_EVENT
    assert DEFAULT_MAX_CONCURRENCY * per_worker >= ECR_PUT_IMAGE_QUOTA_PER_SECOND
    assert DEFAULT_MAX_CONCURRENCY >= 2  # SQS event sources accept no lower maximumConcurrency


def test_idempotency_table_matches_powertools_persistence_layer(synthesized):
    synthesized.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
        },
    )


def test_history_table_has_pk_and_sk_string_keys(synthesized):
    synthesized.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": Match.array_with(
                [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}]
            ),
        },
    )


def test_tables_are_encrypted_on_demand_with_point_in_time_recovery_and_retained(synthesized):
    for table in synthesized.resources("AWS::DynamoDB::Table").values():
        props = table["Properties"]
        assert props["SSESpecification"] == {"SSEEnabled": True}
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert table["DeletionPolicy"] == "Retain"
        assert "TableName" not in props  # CloudFormation names them: two stacks never collide


def test_alarms_watch_both_dead_letter_queues_errors_throttles_and_unexpected_errors(synthesized):
    watched = sorted(
        (alarm["Properties"]["Namespace"], alarm["Properties"]["MetricName"])
        for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()
    )
    assert watched == [
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        (settings.METRICS_NAMESPACE, "HistoryWriteFailures"),
        (settings.METRICS_NAMESPACE, "OutOfBandWrites"),
        (settings.METRICS_NAMESPACE, "UnexpectedErrors"),
    ]
    for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        assert props["Threshold"] == 0
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("metric", ["UnexpectedErrors", "HistoryWriteFailures", "OutOfBandWrites"])
def test_unexpected_errors_and_lost_audit_alarms_watch_the_metric_both_handlers_emit(synthesized, metric):
    (alarm,) = [
        a["Properties"]
        for a in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == metric
    ]
    # Powertools' EMF: the functions' namespace, dimension `service` (tests/integration checks the
    # handlers emit exactly this); one error in five minutes is enough.
    assert alarm["Namespace"] == settings.METRICS_NAMESPACE
    assert alarm["Dimensions"] == [{"Name": "service", "Value": settings.SERVICE_NAME}]
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300 and alarm["Threshold"] == 0
    body = str(synthesized.only("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    assert metric in body


def test_dead_letter_queue_alarms_watch_the_dead_letter_queues(synthesized):
    dlqs = {
        _logical_id(synthesized, "AWS::SQS::Queue", "PromoterDeadLetterQueue"),
        _logical_id(synthesized, "AWS::SQS::Queue", "DeliveryDeadLetterQueue"),
    }
    watched = {
        alarm["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["Namespace"] == "AWS/SQS"
    }
    assert watched == dlqs


def test_alarms_have_no_actions_when_no_topic_is_given(synthesized):
    for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in alarm["Properties"]


def test_dashboard_shows_function_and_queue_metrics(synthesized):
    body = str(synthesized.only("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    for metric in ("Invocations", "Errors", "Throttles", "Duration", "ApproximateAgeOfOldestMessage"):
        assert metric in body


def test_stack_outputs_name_the_bus_for_requests_and_the_function(synthesized):
    outputs = synthesized.template_dict["Outputs"]
    bus = _logical_id(synthesized, "AWS::Events::EventBus", "PromotionBus")
    assert outputs["PromotionBusName"]["Value"] == {"Ref": bus}
    assert "FunctionName" in outputs and "HistoryTableName" in outputs
