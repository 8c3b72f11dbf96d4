"""The scheduled reconciliation (issue 6): an EventBridge schedule invokes its own function.

Same code asset and layer as the promoter, its own handler (`promoter.reconcile_handler.handle`),
its own role: everything the promotion path needs (the same grants, derived from the rules), plus
listing the sources and its cursor table. One run at a time through a lease on its table (see
promoter.aws.reconcile_state.DynamoDbRunLease: reserved concurrency would fail the deploy in accounts
with little concurrency), so the saved cursor has a single writer; a failed run is not retried, the
next scheduled run resumes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import acknowledge_reconcile_findings
from infra.permissions import (
    grant_create_missing,
    grant_ecr,
    grant_scan_findings,
    grant_signature_checks,
    grant_tables,
    repository_arns,
)
from infra.remote_targets import grant_remote_targets
from promoter.aws.reconcile_state import RECONCILE_TABLE_ENV

if TYPE_CHECKING:
    from promoter.model.config import PromotionConfig

RECONCILE_HANDLER = "promoter.reconcile_handler.handle"
# What promoter.workflows.reconcile reads on a source beyond the promotion path: DescribeImages (tagged
# images with their push times, in pages; one image's push time) and DescribeRepositories (an
# exact source by name, or every repository when a source is a glob).
ECR_SOURCE_LIST_ACTIONS = ("ecr:DescribeImages", "ecr:DescribeRepositories")
# promoter.aws.reconcile_state: DynamoDbCursorStore (load, save, clear) and DynamoDbRunLease
# (conditional PutItem to take the lease, conditional DeleteItem to give it back).
RECONCILE_TABLE_ACTIONS = ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem")
# promoter.workflows.rollback.rollback_hold reads a behind target's history (Query) before promoting it.
HISTORY_READ_ACTIONS = ("dynamodb:Query",)


@dataclass(frozen=True)
class ReconciliationParts:
    """What the reconciliation shares with the promoter it belongs to."""

    config: PromotionConfig
    code: lambda_.Code
    layers: Sequence[lambda_.ILayerVersion]
    environment: Mapping[str, str]
    idempotency_table: dynamodb.ITable
    history_table: dynamodb.ITable
    runtime: lambda_.Runtime
    architecture: lambda_.Architecture
    rate: Duration
    timeout: Duration
    memory_size_mb: int
    log_retention: logs.RetentionDays
    log_removal_policy: object
    table: dynamodb.Table
    event_bus: events.IEventBus  # where the runs it promotes are announced, as the promoter's
    role_name: str | None = None  # a fixed name a target account's trust can name; None: generated


class Reconciliation(Construct):
    """The schedule, the function, its role and log group."""

    def __init__(self, scope: Construct, construct_id: str, parts: ReconciliationParts) -> None:
        super().__init__(scope, construct_id)
        config = parts.config
        self.table = parts.table
        self.log_group = logs.LogGroup(
            self, "Logs", retention=parts.log_retention, removal_policy=parts.log_removal_policy
        )
        self.role = iam.Role(
            self,
            "Role",
            role_name=parts.role_name,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="ECR image promoter, reconciliation: lists sources, promotes what events missed",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=(
                "Reconciles the rules with the registry: promotes push rules' images whose events "
                "were lost, attaches missing attestations"
            ),
            runtime=parts.runtime,
            architecture=parts.architecture,
            handler=RECONCILE_HANDLER,
            code=parts.code,
            layers=list(parts.layers),
            role=self.role,
            timeout=parts.timeout,
            memory_size=parts.memory_size_mb,
            log_group=self.log_group,
            environment={**parts.environment, RECONCILE_TABLE_ENV: self.table.table_name},
        )
        self.function.node.default_child.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="Runs the reconciliation (lost ECR events are caught here)",
            schedule=events.Schedule.rate(parts.rate),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )

        sources, destinations = config.source_repository_globs(), config.target_repository_globs()
        grant_ecr(self, self.role, sources, destinations, config.restore_archived_source_globs())
        grant_remote_targets(self, self.role, config.remote_targets())
        grant_create_missing(
            self,
            self.role,
            config.created_target_repositories(),
            config.created_tagged_target_repositories(),
            config.created_target_kms_keys(),
        )
        list_all = any(not _is_exact(glob) for glob in sources)
        iam.Grant.add_to_principal(
            grantee=self.role,
            actions=list(ECR_SOURCE_LIST_ACTIONS),
            resource_arns=repository_arns(self, sources),
        )
        if list_all:
            # A glob source is resolved by listing every repository (DescribeRepositories without
            # names), which IAM checks against the account's repositories: metadata only.
            iam.Grant.add_to_principal(
                grantee=self.role,
                actions=["ecr:DescribeRepositories"],
                resource_arns=[_all_repositories_arn(self)],
            )
        grant_tables(self.role, parts.idempotency_table, parts.history_table)
        parts.history_table.grant(self.role, *HISTORY_READ_ACTIONS)
        self.table.grant(self.role, *RECONCILE_TABLE_ACTIONS)
        parts.event_bus.grant_put_events_to(self.role)
        # The sweep runs each rule's gates before it promotes (never what an event was refused).
        grant_scan_findings(self, self.role, config.gated_source_repository_globs())
        grant_signature_checks(self.role, config.signature_kms_key_arns(), config.notation_gated())
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        policy.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3037"]}})
        acknowledge_reconcile_findings(
            self.role,
            self.function,
            (*sources, *destinations),
            list_all=list_all,
            signer_revocation=config.notation_gated(),
        )


def _is_exact(glob: str) -> bool:
    return not any(c in glob for c in "*?[")


def _all_repositories_arn(scope: Construct) -> str:
    return Stack.of(scope).format_arn(
        service="ecr", resource="repository", resource_name="*", arn_format=ArnFormat.SLASH_RESOURCE_NAME
    )
