"""Protected target repositories (`protect: true`): a repository policy that lets only the promoter
write them, put in place by a custom resource because the stack does not own the repositories.

What the statements say is promoter.model.protection's (one source, shared with the custom
resource's function and `promoter local`). Here: one small function (promoter.protection_handler,
from the promoter's own code asset) and one `Custom::RepositoryProtection` per protected repository,
whose logical id is derived from the repository's name, so adding or removing another repository
never replaces it (a replaced resource's Delete would take the statements out again). Its role may
read, set and delete the policy of exactly the protected repositories and nothing else; the
promoter's own grants are not widened.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from aws_cdk import (
    Acknowledgment,
    ArnFormat,
    CustomResource,
    Duration,
    RemovalPolicy,
    Stack,
    Stage,
    Validations,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.asset import stage_function_code
from infra.permissions import iam_resource_pattern
from promoter.model.protection import POLICY_MANAGE_ACTIONS, protection_statements

HANDLER = "promoter.protection_handler.handle"
RESOURCE_TYPE = "Custom::RepositoryProtection"
RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
FUNCTION_TIMEOUT = Duration.minutes(1)
MEMORY_SIZE_MB = 256
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
# Break-glass principals: IAM roles or users named exactly (no wildcard: each one is a way around
# the gate, and should be one an auditor can name).
BREAK_GLASS_ARN_PATTERN = re.compile(r"arn:aws(-[a-z-]+)?:iam::\d{12}:(role|user)/[\w+=,.@/-]{1,512}")


def check_break_glass_principals(principals: Sequence[str]) -> tuple[str, ...]:
    """The principals, each an exact IAM role or user ARN; raises ValueError naming the first that
    is not (an account id or a wildcard would exempt everyone it covers)."""
    for principal in principals:
        if not BREAK_GLASS_ARN_PATTERN.fullmatch(principal):
            raise ValueError(
                "break_glass_principals takes exact IAM role or user ARNs "
                f"(arn:aws:iam::<account>:role/<name>), got {principal!r}"
            )
    return tuple(dict.fromkeys(principals))


def repository_construct_id(repository: str) -> str:
    """A stable construct id for a repository's protection: its name, readable, and a hash so two
    names that differ only in punctuation never collide."""
    digest = hashlib.sha256(repository.encode()).hexdigest()[:8]
    return f"Repository-{re.sub(r'[^A-Za-z0-9]+', '-', repository)}-{digest}"


def protection_code(scope: Construct, config_json: str) -> lambda_.Code:
    """The promoter's package staged for a stack that has no promoter function of its own (a
    target account's): the same code, with nothing but the protection handler ever called."""
    staging_dir = Path(Stage.of(scope).outdir) / f"protection-function-{scope.node.addr[:16]}"
    stage_function_code(config_json, staging_dir)
    return lambda_.Code.from_asset(str(staging_dir))


class RepositoryProtection(Construct):
    """The protection of `repositories` (exact names, in `region`, default the stack's): only
    `writers` (the promoter's role ARNs) and `break_glass` may write their images, only this
    construct's role and `break_glass` may change their policies."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        repositories: Sequence[str],
        writers: Sequence[str],
        code: lambda_.Code,
        break_glass: Sequence[str] = (),
        region: str | None = None,
        log_removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        if not repositories:
            raise ValueError("RepositoryProtection needs at least one repository")
        stack = Stack.of(self)
        names = sorted(set(repositories))
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="ECR image promoter: puts the protection into the protected repositories' policies",
        )
        self.repository_arns = [
            stack.format_arn(
                service="ecr",
                resource="repository",
                resource_name=iam_resource_pattern(name),
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                region=region or stack.region,
            )
            for name in names
        ]
        self.role.add_to_policy(
            iam.PolicyStatement(actions=list(POLICY_MANAGE_ACTIONS), resources=self.repository_arns)
        )
        log_group = logs.LogGroup(self, "Logs", retention=LOG_RETENTION, removal_policy=log_removal_policy)
        log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description="Merges the promoter's protection statements into protected repositories' policies",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=code,
            role=self.role,
            timeout=FUNCTION_TIMEOUT,
            memory_size=MEMORY_SIZE_MB,
            log_group=log_group,
        )
        Validations.of(self.function).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-L1",
                reason="Python 3.13 is pinned on purpose: the promoter's code asset is built and tested "
                "for it.",
            )
        )
        self.statements = protection_statements(writers, [self.role.role_arn], break_glass)
        self.resources: dict[str, CustomResource] = {}
        for name in names:
            resource = CustomResource(
                self,
                repository_construct_id(name),
                service_token=self.function.function_arn,
                resource_type=RESOURCE_TYPE,
                properties={
                    "RepositoryName": name,
                    "Region": region or stack.region,
                    "Statements": stack.to_json_string(self.statements),
                },
            )
            # The role's policy must outlive the resources: their Delete takes the statements out.
            resource.node.add_dependency(self.role)
            self.resources[name] = resource
