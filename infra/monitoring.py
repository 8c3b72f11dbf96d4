"""Alarms and a small dashboard for the promoter: what an operator needs to notice a stuck promotion."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from promoter import settings
from promoter.metrics import (
    GATE_FAILURES_METRIC,
    HISTORY_WRITE_FAILURES_METRIC,
    OUT_OF_BAND_WRITES_METRIC,
    UNEXPECTED_ERROR_METRIC,
)

ALARM_PERIOD = Duration.minutes(5)
DASHBOARD_PERIOD = Duration.minutes(5)
# Construct id of the dashboard (the stack outputs its URL).
DASHBOARD_ID = "Dashboard"
CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"


def notification_topic(scope: Construct, emails: Sequence[str]) -> sns.Topic:
    """The topic the alarms notify, with an e-mail subscription per address (each confirms it once).

    Encrypted with a key of its own: CloudWatch can publish to an encrypted topic only when the
    key's policy lets cloudwatch.amazonaws.com use it, which the AWS managed `alias/aws/sns` key's
    policy does not (SNS developer guide, "Key management", compatibility with AWS services). TLS-only
    publishing; CloudWatch may publish on behalf of this account's alarms only.
    """
    stack = Stack.of(scope)
    key = kms.Key(
        scope,
        "AlarmTopicKey",
        description="Encrypts the promoter's alarm topic; CloudWatch alarms may use it to publish",
        enable_key_rotation=True,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish",
            principals=[iam.ServicePrincipal(CLOUDWATCH_PRINCIPAL)],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        )
    )
    topic = sns.Topic(
        scope, "AlarmTopic", display_name="ECR image promoter alarms", master_key=key, enforce_ssl=True
    )
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish",
            principals=[iam.ServicePrincipal(CLOUDWATCH_PRINCIPAL)],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        )
    )
    for email in emails:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic


# Powertools' Metrics (EMF) put every metric under the namespace with a `service` dimension; the
# promoter and the reconciliation share both, so one alarm watches the two functions.
FUNCTION_METRIC_DIMENSIONS = {"service": settings.SERVICE_NAME}


def function_metric(name: str, period: Duration = ALARM_PERIOD) -> cloudwatch.Metric:
    """A metric as both handlers emit it (EMF: the functions' namespace, dimension `service`)."""
    return cloudwatch.Metric(
        namespace=settings.METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map=FUNCTION_METRIC_DIMENSIONS,
        statistic="Sum",
        period=period,
    )


def unexpected_errors_metric(period: Duration = ALARM_PERIOD) -> cloudwatch.Metric:
    """`UnexpectedErrors` as both handlers emit it: an exception no known outcome names."""
    return function_metric(UNEXPECTED_ERROR_METRIC, period)


def _alarm(
    scope: Construct, id_: str, metric: cloudwatch.IMetric, description: str, topic: sns.ITopic | None
) -> cloudwatch.Alarm:
    """One message, error or throttle is already worth a look: threshold > 0 over one period."""
    alarm = cloudwatch.Alarm(
        scope,
        id_,
        metric=metric,
        threshold=0,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        alarm_description=description,
    )
    if topic is not None:
        alarm.add_alarm_action(cw_actions.SnsAction(topic))
        alarm.add_ok_action(cw_actions.SnsAction(topic))
    return alarm


def add_monitoring(
    scope: Construct,
    function: lambda_.IFunction,
    queue: sqs.IQueue,
    dead_letter_queues: Sequence[tuple[str, sqs.IQueue, str]],
    topic: sns.ITopic | None,
    gated: bool = False,
) -> list[cloudwatch.Alarm]:
    """Alarms on each dead-letter queue's depth, on function errors and throttles and on unexpected
    errors (`UnexpectedErrors`, which a record handled by the batch processor never shows as a
    function error), with `gated` (some rule has a gate) on gates that failed (`GateFailures`),
    plus a dashboard.

    `dead_letter_queues`: (label, queue, the `promoter redrive --queue` name that empties it); the
    alarm's description says what to run once the cause is fixed.
    """
    alarms = [
        _alarm(
            scope,
            f"{label}DepthAlarm",
            dlq.metric_approximate_number_of_messages_visible(period=ALARM_PERIOD, statistic="Maximum"),
            f"{label}: promotions that could not be handled are waiting in {label}. Once the cause "
            f"is fixed: promoter redrive --stack <stack> --queue {redrive_name}",
            topic,
        )
        for label, dlq, redrive_name in dead_letter_queues
    ]
    alarms.append(
        _alarm(
            scope,
            "FunctionErrorsAlarm",
            function.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
            "The promoter function failed (whole invocations, not single records)",
            topic,
        )
    )
    alarms.append(
        _alarm(
            scope,
            "UnexpectedErrorsAlarm",
            unexpected_errors_metric(),
            "The promoter or the reconciliation met an error no known outcome names (logged at ERROR "
            "with its traceback); the promoter's records go back to the queue",
            topic,
        )
    )
    alarms.append(
        _alarm(
            scope,
            "HistoryWriteFailuresAlarm",
            function_metric(HISTORY_WRITE_FAILURES_METRIC),
            "Promotions ran but their audit record was not written to the history table (logged at "
            "ERROR): the registry holds them, the history does not",
            topic,
        )
    )
    alarms.append(
        _alarm(
            scope,
            "OutOfBandWritesAlarm",
            function_metric(OUT_OF_BAND_WRITES_METRIC),
            "A target repository's tag was written or moved by something other than the promoter "
            "(event 'Image Written Outside The Promoter'; promoter status shows it as foreign): find "
            "who wrote it; the reconciliation puts back what the rules say the tag should hold",
            topic,
        )
    )
    if gated:
        alarms.append(
            _alarm(
                scope,
                "GateFailuresAlarm",
                function_metric(GATE_FAILURES_METRIC),
                "A rule's gate could not decide and waiting would not help (logged at ERROR; the "
                "promotion failed, naming the gate): a missing grant such as "
                "ecr:DescribeImageScanFindings, or a KMS key that is disabled or may not verify; fix "
                "it, then request the promotion again",
                topic,
            )
        )
    alarms.append(
        _alarm(
            scope,
            "FunctionThrottlesAlarm",
            function.metric_throttles(period=ALARM_PERIOD, statistic="Sum"),
            "The promoter function was throttled: promotions are delayed",
            topic,
        )
    )
    dashboard = cloudwatch.Dashboard(scope, DASHBOARD_ID)
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Promoter invocations",
            left=[
                function.metric_invocations(period=DASHBOARD_PERIOD, statistic="Sum"),
                function.metric_errors(period=DASHBOARD_PERIOD, statistic="Sum"),
                function.metric_throttles(period=DASHBOARD_PERIOD, statistic="Sum"),
                unexpected_errors_metric(DASHBOARD_PERIOD),
                function_metric(HISTORY_WRITE_FAILURES_METRIC, DASHBOARD_PERIOD),
                function_metric(OUT_OF_BAND_WRITES_METRIC, DASHBOARD_PERIOD),
            ],
        ),
        cloudwatch.GraphWidget(
            title="Promoter duration",
            left=[function.metric_duration(period=DASHBOARD_PERIOD, statistic="p99")],
        ),
        cloudwatch.GraphWidget(
            title="Queue backlog",
            left=[
                queue.metric_approximate_number_of_messages_visible(period=DASHBOARD_PERIOD),
                *(
                    dlq.metric_approximate_number_of_messages_visible(period=DASHBOARD_PERIOD, label=label)
                    for label, dlq, _ in dead_letter_queues
                ),
            ],
            right=[queue.metric_approximate_age_of_oldest_message(period=DASHBOARD_PERIOD)],
        ),
    )
    dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Promoter alarms", alarms=alarms, width=24))
    return alarms
