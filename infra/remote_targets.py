"""IAM for targets in other accounts and regions, on both sides of the boundary.

Source side (the promoter's role): `sts:AssumeRole` on exactly the roles the rules name, and for a
remote target without a role the target-write actions on that registry's repository ARNs (its
repository policy must allow them too). Never an ECR write grant in the source registry for them.
Target side (`TargetAccountStack`, deployed with the target account's credentials): the role the
promoter assumes, trusted by exactly the promoter's two roles (its function's and its
reconciliation's, which promotes what events missed), allowed the target-write actions on exactly
the repositories the rules name in that account. Both roles have fixed names
(`promoter_role_names`), so the trust can name them before the promoter stack exists; once it
does, `promoter_role_arn` pins the trust to the roles themselves (IAM then binds it to their unique
ids: a role deleted and re-created under the same name is no longer trusted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aws_cdk import Acknowledgment, ArnFormat, CfnOutput, CfnWaitConditionHandle, Stack, Token, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.permissions import ECR_TARGET_WRITE_ACTIONS, iam_resource_pattern
from infra.props import STACK_NAME
from infra.protection import RepositoryProtection, check_break_glass_principals, protection_code
from promoter.model.config import ROLE_ARN_PATTERN, PromotionConfig, TargetRegistry

ASSUME_ROLE_ACTIONS = ("sts:AssumeRole",)
NAG_PACK = "AwsSolutions"
# IAM's limit on a role name.
MAX_ROLE_NAME_CHARS = 64


def promoter_role_names(stack_name: str, region: str) -> tuple[str, str]:
    """The names of the promoter's function role and of its reconciliation's role: fixed by the
    stack's name and region (role names are per account, stacks per region), so that a target
    account can trust exactly these two. Raises ValueError when they would exceed IAM's limit."""
    names = (f"{stack_name}-{region}-promoter", f"{stack_name}-{region}-reconcile")
    if not Token.is_unresolved(region) and any(len(name) > MAX_ROLE_NAME_CHARS for name in names):
        raise ValueError(
            f"stack name {stack_name!r} is too long for the promoter's role names "
            f"({names[1]!r} is over {MAX_ROLE_NAME_CHARS} characters)"
        )
    return names


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
    CloudFormation cannot attach a policy to a repository it does not own). For protected targets
    there (`protect: true`), the protection (infra.protection): only the promoter's roles, the roles
    it assumes here and `break_glass_principals` may write them.

    Trusted: the promoter's function role and its reconciliation's role, and nothing else. Before
    the source stack exists, by name: the source account, on the condition that the caller is one
    of those two roles (`aws:PrincipalArn`, exact ARNs). Once it exists, pinned: `promoter_role_arn`
    (the source stack's `FunctionRoleArn` output) and `reconcile_role_arn` (`ReconcileRoleArn`;
    by default the reconciliation role's fixed name beside `promoter_role_arn`) as principals."""

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
        reconcile_role_arn: str | None = None,
        source_stack_name: str = STACK_NAME,
        break_glass_principals: Sequence[str] = (),
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
        trusted = self._trusted(
            source_account, source_region, source_stack_name, promoter_role_arn, reconcile_role_arn
        )
        if direct:
            statement = iam.PolicyStatement(
                sid="ImagePromoterPush", actions=list(ECR_TARGET_WRITE_ACTIONS), principals=trusted
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
                assumed_by=trusted[0] if len(trusted) == 1 else iam.CompositePrincipal(*trusted),
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
            # cfn-lint's IAM action list predates ecr:ListImageReferrers (W3037), as for the
            # promoter's own role (infra.construct); the infra tests check actions against botocore.
            policy = role.node.find_child("DefaultPolicy").node.default_child
            policy.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3037"]}})
            _acknowledge_wildcards(
                role,
                repositories,
                "The wildcard comes from a target repository glob in the promotion rules: the role may "
                "write exactly the repositories the rules name in this account.",
            )
            CfnOutput(self, f"PromoterTargetRoleArn{index}", value=role.role_arn)
            self.roles[role_arn] = role
        self.protections = self._protect(
            config,
            target_account,
            source_region,
            [
                *self._promoter_role_arns(
                    source_account, source_region, source_stack_name, promoter_role_arn, reconcile_role_arn
                ),
                *(role.role_arn for role in self.roles.values()),
            ],
            check_break_glass_principals(break_glass_principals),
        )
        if not self.roles and not self.protections:
            # Only the RepositoryPolicy output to apply by hand: CloudFormation refuses a template
            # without resources ("At least one Resources member must be defined"), so the stack
            # holds a handle that creates nothing and costs nothing.
            CfnWaitConditionHandle(self, "NothingToCreate")

    def _protect(
        self,
        config: PromotionConfig,
        target_account: str,
        source_region: str,
        writers: Sequence[str],
        break_glass: Sequence[str],
    ) -> dict[str, RepositoryProtection]:
        """The protected targets in this account, one RepositoryProtection per region."""
        by_region: dict[str, list[str]] = {}
        for registry, repository in config.protected_targets():
            if registry is not None and registry.account == target_account:
                by_region.setdefault(registry.region or source_region, []).append(repository)
        if not by_region:
            return {}
        code = protection_code(self, config.to_json())
        return {
            region: RepositoryProtection(
                self,
                f"Protection{region}",
                repositories=repositories,
                writers=writers,
                code=code,
                break_glass=break_glass,
                region=region,
            )
            for region, repositories in sorted(by_region.items())
        }

    def _promoter_role_arns(
        self,
        source_account: str,
        source_region: str,
        stack_name: str,
        promoter_role_arn: str | None,
        reconcile_role_arn: str | None,
    ) -> list[str]:
        """The ARNs of the promoter's two roles: pinned, or by their fixed names."""
        promoter_name, reconcile_name = promoter_role_names(stack_name, source_region)
        if promoter_role_arn:
            return [
                promoter_role_arn,
                reconcile_role_arn or promoter_role_arn.removesuffix(promoter_name) + reconcile_name,
            ]
        prefix = f"arn:{Stack.of(self).partition}:iam::{source_account}:role/"
        return [prefix + promoter_name, prefix + reconcile_name]

    def _trusted(
        self,
        source_account: str,
        source_region: str,
        stack_name: str,
        promoter_role_arn: str | None,
        reconcile_role_arn: str | None,
    ) -> list[iam.IPrincipal]:
        """The promoter's two roles: pinned as principals, or by exact name in the source account."""
        promoter_name, reconcile_name = promoter_role_names(stack_name, source_region)
        if promoter_role_arn:
            if not reconcile_role_arn:
                if not promoter_role_arn.endswith(f":role/{promoter_name}"):
                    raise ValueError(
                        f"promoter_role_arn {promoter_role_arn} is not the role {promoter_name} the "
                        "promoter stack creates: pass its reconciliation's role too "
                        "(-c reconcile_role_arn=<ReconcileRoleArn output>)"
                    )
                reconcile_role_arn = promoter_role_arn.removesuffix(promoter_name) + reconcile_name
            return [iam.ArnPrincipal(promoter_role_arn), iam.ArnPrincipal(reconcile_role_arn)]
        prefix = f"arn:{Stack.of(self).partition}:iam::{source_account}:role/"
        return [
            iam.AccountPrincipal(source_account).with_conditions(
                {"ArnEquals": {"aws:PrincipalArn": [prefix + promoter_name, prefix + reconcile_name]}}
            )
        ]


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
