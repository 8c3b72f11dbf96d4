"""The deployable stack: one ImagePromoter built from a parsed promotion configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.construct import ImagePromoter
from infra.props import ImagePromoterProps

if TYPE_CHECKING:
    from promoter.model.config import PromotionConfig

STACK_NAME = "ImagePromoter"


class PromoterStack(Stack):
    """Deploys the promoter; extra keyword arguments go to ImagePromoterProps (defaults there)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PromotionConfig, **props: Any) -> None:
        super().__init__(scope, construct_id, description="ECR Image Promoter: event-driven image promotion")
        self.promoter = ImagePromoter(self, "Promoter", ImagePromoterProps(config=config, **props))
        CfnOutput(
            self,
            "PromotionBusName",
            value=self.promoter.event_bus.event_bus_name,
            description="Send promotion requests here (aws events put-events --entries EventBusName=...)",
        )
        CfnOutput(self, "FunctionName", value=self.promoter.function.function_name)
        CfnOutput(
            self,
            "FunctionRoleArn",
            value=self.promoter.role.role_arn,
            description="Trust this role in TargetAccountStack (promoter_role_arn) for cross-account targets",
        )
        CfnOutput(self, "HistoryTableName", value=self.promoter.history_table.table_name)
