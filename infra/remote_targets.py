"""IAM for targets in other accounts and regions, on both sides of the boundary.

Source side (the promoter's role): `sts:AssumeRole` on exactly the roles the rules name, and for a
remote target without a role the target-write actions on that registry's repository ARNs (its
repository policy must allow them too). Never an ECR write grant in the source registry for them.
Target side (`TargetAccountStack`, deployed with the target account's credentials): the role the
promoter assumes, trusted by the promoter's role only, allowed the target-write actions on exactly
the repositories the rules name in that account.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aws_cdk import Acknowledgment, ArnFormat, CfnOutput, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.permissions import ECR_TARGET_WRITE_ACTIONS, iam_resource_pattern
from promoter.model.config import ROLE_ARN_PATTERN, PromotionConfig, TargetRegistry

ASSUME_ROLE_ACTIONS = ("sts:AssumeRole",)
# The promoter's function role is named by CloudFormation `<stack name>-<logical id>...`.
DEFAULT_SOURCE_STACK_NAME = "ImagePromoter"
NAG_PACK = "AwsSolutions"


def remote_repository_arns(scope: Construct, targets: Iterable[tuple[TargetRegistry, str]]) -> list[str]:
    """Repository ARNs of remote targets: their account and region, else the stack's."""
    stack = Stack.of(scope)
    arns = {
        stack.format_arn(
            service="ecr",
            resource="repository",
            resource_name=iam_resource_pattern(glob),
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            account=registry.account or stack.account,
            region=registry.region or stack.region,
        )
        for registry, glob in targets
    }
    return sorted(arns)


def grant_remote_targets(
    scope: Construct, grantee: iam.Role, targets: Sequence[tuple[TargetRegistry, str]]
) -> None:
    """AssumeRole on the named roles; target writes on role-less remote repositories."""
    roles = sorted({registry.role for registry, _ in targets if registry.role})
    if roles:
        iam.Grant.add_to_principal(grantee=grantee, actions=list(ASSUME_ROLE_ACTIONS), resource_arns=roles)
    direct = remote_repository_arns(scope, [(r, glob) for r, glob in targets if not r.role])
    if direct:
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(ECR_TARGET_WRITE_ACTIONS), resource_arns=direct
        )
        _acknowledge_wildcards(
            grantee,
            direct,
            "The wildcard comes from a target repository glob in another account or region named by "
            "the promotion rules; that registry's repository policy must allow the promoter too.",
        )


class TargetAccountStack(Stack):
    """Deploy into the target account: the role(s) the promoter assumes there, nothing else; for
    role-less targets there, the repository policy to set on them (output `RepositoryPolicy`:
    CloudFormation cannot attach a policy to a repository it does not own).

    `promoter_role_arn` (the source stack's `FunctionRoleArn` output) is the only principal
    trusted when given; before the source stack exists, the source account is trusted on the
    condition that the caller is a role of the promoter stack (`aws:PrincipalArn`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PromotionConfig,
        target_account: str,
        source_account: str,
        source_region: str,
        promoter_role_arn: str | None = None,
        source_stack_name: str = DEFAULT_SOURCE_STACK_NAME,
        **kwargs: object,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"ECR Image Promoter: the role it assumes in account {target_account}",
            **kwargs,
        )
        by_role: dict[str, list[tuple[TargetRegistry, str]]] = {}
        direct: list[str] = []
        for registry, glob in config.remote_targets():
            if registry.account == target_account and registry.role:
                by_role.setdefault(registry.role, []).append((registry, glob))
            elif registry.account == target_account:
                direct.append(glob)
        if not by_role and not direct:
            raise ValueError(f"no target in account {target_account}")
        if direct:
            principal = self._trusted(source_account, source_stack_name, promoter_role_arn)
            statement = iam.PolicyStatement(
                sid="ImagePromoterPush", actions=list(ECR_TARGET_WRITE_ACTIONS), principals=[principal]
            )
            CfnOutput(
                self,
                "RepositoryPolicy",
                value=Stack.of(self).to_json_string(iam.PolicyDocument(statements=[statement]).to_json()),
                description="aws ecr set-repository-policy --policy-text '<this>' on each of: "
                + ", ".join(sorted(set(direct))),
            )
        self.roles: dict[str, iam.Role] = {}
        for index, (role_arn, targets) in enumerate(sorted(by_role.items())):
            match = ROLE_ARN_PATTERN.fullmatch(role_arn)
            assert match is not None  # validated by promoter.model.config
            role = iam.Role(
                self,
                f"PromoterTargetRole{index}",
                role_name=role_arn.rsplit("/", 1)[1],
                path=_role_path(role_arn),
                assumed_by=self._trusted(source_account, source_stack_name, promoter_role_arn),
                description="Assumed by the ECR image promoter to write promoted images here",
            )
            repositories = [
                Stack.of(self).format_arn(
                    service="ecr",
                    resource="repository",
                    resource_name=iam_resource_pattern(glob),
                    arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                    region=registry.region or source_region,
                )
                for registry, glob in targets
            ]
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=list(ECR_TARGET_WRITE_ACTIONS), resources=sorted(set(repositories))
                )
            )
            _acknowledge_wildcards(
                role,
                repositories,
                "The wildcard comes from a target repository glob in the promotion rules: the role may "
                "write exactly the repositories the rules name in this account.",
            )
            CfnOutput(self, f"PromoterTargetRoleArn{index}", value=role.role_arn)
            self.roles[role_arn] = role

    def _trusted(self, source_account: str, stack_name: str, role_arn: str | None) -> iam.IPrincipal:
        if role_arn:
            return iam.ArnPrincipal(role_arn)
        return iam.AccountPrincipal(source_account).with_conditions(
            {
                "ArnLike": {
                    "aws:PrincipalArn": f"arn:{Stack.of(self).partition}:iam::{source_account}:role/"
                    f"{stack_name}-*"
                }
            }
        )


def _role_path(role_arn: str) -> str:
    """`arn:aws:iam::1:role/a/b/name` -> `/a/b/` (IAM role paths), `/` when there is none."""
    parts = role_arn.split(":role/", 1)[1].split("/")
    return "/" + "".join(f"{p}/" for p in parts[:-1])


def _acknowledge_wildcards(construct: Construct, arns: Iterable[str], reason: str) -> None:
    """cdk-nag IAM5 findings for repository ARNs holding a `*`, acknowledged one by one."""
    stack = Stack.of(construct)
    findings = []
    for arn in arns:
        if "*" not in arn.rsplit("repository/", 1)[-1]:
            continue
        text = stack.resolve(arn)
        findings.append(f"{NAG_PACK}::{NAG_PACK}-IAM5[Resource::{_nag_text(text)}]")
    if findings:
        Validations.of(construct).acknowledge(*(Acknowledgment(id=f, reason=reason) for f in findings))


def _nag_text(resolved: object) -> str:
    """How cdk-nag prints a resolved ARN: Fn::Join parts, with `<AWS::Partition>` for pseudo refs."""
    if isinstance(resolved, str):
        return resolved
    if isinstance(resolved, dict) and "Fn::Join" in resolved:
        separator, parts = resolved["Fn::Join"]
        return separator.join(_nag_text(p) for p in parts)
    if isinstance(resolved, dict) and "Ref" in resolved:
        return f"<{resolved['Ref']}>"
    return str(resolved)
