"""The deployable stack: one ImagePromoter built from a parsed promotion configuration.

Its CloudFormation outputs name everything an operator (and `promoter --stack NAME`) needs: the
bus, every table, the queue and both dead-letter queues, the dashboard and the alarm topic. The
output keys are the `settings.OUTPUT_*` constants, shared with the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aws_cdk import Aws, CfnMapping, CfnOutput, Fn, Stack
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.construct import ImagePromoter
from infra.monitoring import notification_topic
from infra.props import STACK_NAME as STACK_NAME
from infra.props import ImagePromoterProps
from promoter import settings

if TYPE_CHECKING:
    from promoter.model.config import PromotionConfig

# The AWS console's host per partition (for the dashboard URL output).
CONSOLE_HOSTS = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


class PromoterStack(Stack):
    """Deploys the promoter; extra keyword arguments go to ImagePromoterProps (defaults there).

    alarm_emails: addresses subscribed to a new encrypted alarm topic (monitoring.notification_topic);
    alarm_topic_arn: an existing topic the alarms notify instead. At most one of the two; neither =
    alarms without actions. Raises ValueError for both.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PromotionConfig,
        alarm_emails: Sequence[str] = (),
        alarm_topic_arn: str | None = None,
        **props: Any,
    ) -> None:
        super().__init__(scope, construct_id, description="ECR Image Promoter: event-driven image promotion")
        if alarm_emails and alarm_topic_arn:
            raise ValueError(
                "give alarm_email or alarm_topic_arn, not both (subscribe the e-mail to the topic)"
            )
        topic: sns.ITopic | None = None
        if alarm_topic_arn:
            topic = sns.Topic.from_topic_arn(self, "AlarmTopic", alarm_topic_arn)
        elif alarm_emails:
            topic = notification_topic(self, alarm_emails)
        if topic is not None:
            props["alarm_topic"] = topic
        self.promoter = ImagePromoter(self, "Promoter", ImagePromoterProps(config=config, **props))
        self._outputs(topic)

    def _outputs(self, topic: sns.ITopic | None) -> None:
        promoter = self.promoter
        CfnOutput(
            self,
            settings.OUTPUT_EVENT_BUS,
            value=promoter.event_bus.event_bus_name,
            description="Send promotion requests here (aws events put-events --entries EventBusName=...)",
        )
        CfnOutput(
            self,
            settings.OUTPUT_REQUEST_SOURCE,
            value=promoter.request_source,
            description="The source of promotion requests and of result events",
        )
        CfnOutput(self, "FunctionName", value=promoter.function.function_name)
        CfnOutput(
            self,
            "FunctionRoleArn",
            value=promoter.role.role_arn,
            description="Trust this role in TargetAccountStack (promoter_role_arn) for cross-account targets",
        )
        if self.promoter.reconciliation is not None:
            CfnOutput(
                self,
                "ReconcileRoleArn",
                value=self.promoter.reconciliation.role.role_arn,
                description="The reconciliation's role, trusted beside FunctionRoleArn (reconcile_role_arn)",
            )
        CfnOutput(self, settings.OUTPUT_IDEMPOTENCY_TABLE, value=promoter.idempotency_table.table_name)
        CfnOutput(self, settings.OUTPUT_HISTORY_TABLE, value=promoter.history_table.table_name)
        CfnOutput(self, settings.OUTPUT_GATES_TABLE, value=promoter.gates_table.table_name)
        if promoter.reconciliation is not None:
            CfnOutput(
                self,
                settings.OUTPUT_RECONCILE_TABLE,
                value=promoter.reconciliation.table.table_name,
                description="The cursor of an unfinished scheduled reconciliation",
            )
        CfnOutput(
            self,
            settings.OUTPUT_QUEUE_URL,
            value=promoter.queue.queue_url,
            description="The queue the function consumes (promoter redrive sends here)",
        )
        CfnOutput(
            self,
            settings.OUTPUT_DEAD_LETTER_QUEUE_URL,
            value=promoter.dead_letter_queue.queue_url,
            description=(
                f"Messages the function failed on: promoter redrive --queue {settings.REDRIVE_PROCESSING}"
            ),
        )
        CfnOutput(
            self,
            settings.OUTPUT_DELIVERY_DEAD_LETTER_QUEUE_URL,
            value=promoter.delivery_dead_letter_queue.queue_url,
            description=(
                f"Events EventBridge could not deliver: promoter redrive --queue {settings.REDRIVE_DELIVERY}"
            ),
        )
        console = CfnMapping(self, "ConsoleHost", mapping={p: {"host": h} for p, h in CONSOLE_HOSTS.items()})
        CfnOutput(
            self,
            settings.OUTPUT_DASHBOARD_URL,
            value=Fn.join(
                "",
                [
                    "https://",
                    console.find_in_map(Aws.PARTITION, "host"),
                    "/cloudwatch/home?region=",
                    Aws.REGION,
                    "#dashboards:name=",
                    promoter.dashboard.dashboard_name,
                ],
            ),
            description="The promoter's CloudWatch dashboard",
        )
        if topic is not None:
            CfnOutput(self, settings.OUTPUT_ALARM_TOPIC_ARN, value=topic.topic_arn)
        if promoter.approvals is not None:
            CfnOutput(
                self,
                settings.OUTPUT_APPROVAL_URL,
                value=promoter.approvals.url.url,
                description="The approval channel: promoter approve/reject sign their decisions for it (IAM)",
            )
        CfnOutput(
            self,
            settings.OUTPUT_ATTESTATION_KEY,
            value=promoter.attestation_key.key_arn,
            description="The KMS key that signs promotion attestations (promoter attestation key: its PEM)",
        )
