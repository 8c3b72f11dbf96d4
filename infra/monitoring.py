"""Alarms and a small dashboard for the promoter: what an operator needs to notice a stuck promotion."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

ALARM_PERIOD = Duration.minutes(5)
DASHBOARD_PERIOD = Duration.minutes(5)


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
    dead_letter_queues: Sequence[tuple[str, sqs.IQueue]],
    topic: sns.ITopic | None,
) -> list[cloudwatch.Alarm]:
    """Alarms on each dead-letter queue's depth and on function errors and throttles, plus a dashboard."""
    alarms = [
        _alarm(
            scope,
            f"{label}DepthAlarm",
            dlq.metric_approximate_number_of_messages_visible(period=ALARM_PERIOD, statistic="Maximum"),
            f"{label}: promotions that could not be handled are waiting in {label}",
            topic,
        )
        for label, dlq in dead_letter_queues
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
            "FunctionThrottlesAlarm",
            function.metric_throttles(period=ALARM_PERIOD, statistic="Sum"),
            "The promoter function was throttled: promotions are delayed",
            topic,
        )
    )
    dashboard = cloudwatch.Dashboard(scope, "Dashboard")
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Promoter invocations",
            left=[
                function.metric_invocations(period=DASHBOARD_PERIOD, statistic="Sum"),
                function.metric_errors(period=DASHBOARD_PERIOD, statistic="Sum"),
                function.metric_throttles(period=DASHBOARD_PERIOD, statistic="Sum"),
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
                    for label, dlq in dead_letter_queues
                ),
            ],
            right=[queue.metric_approximate_age_of_oldest_message(period=DASHBOARD_PERIOD)],
        ),
    )
    dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Promoter alarms", alarms=alarms, width=24))
    return alarms
