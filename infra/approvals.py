"""The approval channel (issue 20): a Lambda function URL with `AuthType: AWS_IAM`.

Why a function URL with IAM authorization: AWS itself verifies each call's SigV4 signature and
decides it with IAM (the function's resource policy and the caller's identity policies) before the
function runs, and then hands the function the caller's ARN (`requestContext.authorizer.iam.userArn`,
the session ARN for a role: one person). Nothing the caller writes can claim an identity, and there
is no API Gateway to run, pay for or secure. People call it with their own credentials
(`promoter approve ID --reason ...` signs for the service `lambda`).

What is deployed (only when some rule has `require: approval:`):
- the function (`promoter.approval_handler.handle`: same code asset, layer and configuration as the
  promoter) with a role of its own, holding only what it does: Query on the gates table's
  `by-wait-id` index (find the wait), UpdateItem on the gates table (the one conditional write of a
  decision), events:PutEvents on the promoter's bus (announce the decision), and its log group;
- its URL (AuthType AWS_IAM) and the permissions of its resource policy: `lambda:InvokeFunctionUrl`
  and `lambda:InvokeFunction` (via the URL) for the principals the rules' approvers name (an exact
  role or user itself, any other entry its account: infra.approval_policies says why);
- an explicit Deny of both actions on the function in the identity policy of each of the promoter's
  roles: the promoter never approves its own promotions, whatever pattern the approvers use;
- the stack output `ApprovalUrl`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.approval_policies import (
    AUTH_TYPE,
    INVOKE,
    INVOKE_URL,
    approvers_of,
    permission_principals,
    promoter_deny_statement,
)
from infra.nag import acknowledge_approval_channel_findings
from promoter.aws.gate_store import WAIT_ID_INDEX

if TYPE_CHECKING:
    from promoter.model.config import PromotionConfig

APPROVAL_HANDLER = "promoter.approval_handler.handle"
# promoter.aws.approvals: `find` queries the `by-wait-id` index (projection ALL: the whole record),
# `record` is one conditional UpdateItem on the table. Nothing else: no GetItem, PutItem, Scan.
INDEX_ACTIONS = ("dynamodb:Query",)
TABLE_ACTIONS = ("dynamodb:UpdateItem",)
# One decision is two small DynamoDB calls and one PutEvents.
APPROVAL_TIMEOUT = Duration.seconds(30)
APPROVAL_MEMORY_MB = 256


@dataclass(frozen=True)
class ApprovalChannelParts:
    """What the channel shares with the promoter it belongs to."""

    config: PromotionConfig
    code: lambda_.Code
    layers: Sequence[lambda_.ILayerVersion]
    environment: Mapping[str, str]
    gates_table: dynamodb.ITable
    event_bus: events.IEventBus
    runtime: lambda_.Runtime
    architecture: lambda_.Architecture
    log_retention: logs.RetentionDays
    log_removal_policy: object
    promoter_roles: Sequence[iam.IRole]  # denied the channel (never approvers)


def needs_approval_channel(config: PromotionConfig) -> bool:
    """Whether the stack deploys the channel: some rule requires approval."""
    return bool(approvers_of(config))


class ApprovalChannel(Construct):
    """The function, its role, log group, URL, resource policy and the promoter roles' Deny."""

    def __init__(self, scope: Construct, construct_id: str, parts: ApprovalChannelParts) -> None:
        super().__init__(scope, construct_id)
        approvers = approvers_of(parts.config)
        if not approvers:
            raise ValueError("no rule requires approval: the stack has no approval channel")
        self.log_group = logs.LogGroup(
            self, "Logs", retention=parts.log_retention, removal_policy=parts.log_removal_policy
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="ECR image promoter, approval channel: records people's decisions on waits",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description="Records the decision of the caller AWS authenticated on a waiting promotion",
            runtime=parts.runtime,
            architecture=parts.architecture,
            handler=APPROVAL_HANDLER,
            code=parts.code,
            layers=list(parts.layers),
            role=self.role,
            timeout=APPROVAL_TIMEOUT,
            memory_size=APPROVAL_MEMORY_MB,
            log_group=self.log_group,
            environment=dict(parts.environment),
        )
        # CDK's explicit DependsOn on the role, which the Role GetAtt already implies (as for the promoter).
        self.function.node.default_child.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        self.url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)

        table = parts.gates_table
        iam.Grant.add_to_principal(
            grantee=self.role,
            actions=list(INDEX_ACTIONS),
            resource_arns=[f"{table.table_arn}/index/{WAIT_ID_INDEX}"],
        )
        iam.Grant.add_to_principal(
            grantee=self.role, actions=list(TABLE_ACTIONS), resource_arns=[table.table_arn]
        )
        parts.event_bus.grant_put_events_to(self.role)

        self.invokers = permission_principals(approvers)
        for index, principal in enumerate(self.invokers):
            lambda_.CfnPermission(
                self,
                f"ApproverInvokesUrl{index}",
                action=INVOKE_URL,
                function_name=self.function.function_arn,
                principal=principal,
                function_url_auth_type=AUTH_TYPE,
            )
            lambda_.CfnPermission(
                self,
                f"ApproverInvokes{index}",
                action=INVOKE,
                function_name=self.function.function_arn,
                principal=principal,
                invoked_via_function_url=True,
            )
        deny = promoter_deny_statement(self.function.function_arn)
        for role in parts.promoter_roles:
            role.add_to_principal_policy(iam.PolicyStatement.from_json(deny))
        acknowledge_approval_channel_findings(self.function)
