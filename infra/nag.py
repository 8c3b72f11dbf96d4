"""cdk-nag (AwsSolutions) findings that are by design, each acknowledged with its reason.

cdk-nag 3 matches acknowledgments by exact finding id, so each id is built here from what the
construct made (one per wildcard repository ARN); anything new it finds still fails synth.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Acknowledgment, Stack, Token, Validations
from constructs import Construct

from infra.permissions import iam_resource_pattern

PACK = "AwsSolutions"
# IAM5 flags `*` in a resource; a `?` (one character) passes, so it needs no acknowledgment.
_WILDCARD = "*"


def _finding(rule: str, detail: str | None = None) -> str:
    return f"{PACK}::{PACK}-{rule}" + (f"[{detail}]" if detail else "")


def _nag_value(value: str, pseudo: str) -> str:
    """How cdk-nag prints an ARN part: the literal, or `<AWS::Region>` for a deploy-time token."""
    return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value


def wildcard_repository_findings(scope: Construct, globs: Iterable[str]) -> list[str]:
    """The IAM5 finding ids cdk-nag reports for repository ARNs that hold a `*`."""
    stack = Stack.of(scope)
    prefix = (
        f"arn:{_nag_value(stack.partition, 'Partition')}:ecr:{_nag_value(stack.region, 'Region')}:"
        f"{_nag_value(stack.account, 'AccountId')}:repository/"
    )
    names = sorted({iam_resource_pattern(glob) for glob in globs})
    return [_finding("IAM5", f"Resource::{prefix}{name}") for name in names if _WILDCARD in name]


def acknowledge_findings(
    role: Construct,
    function: Construct,
    delivery_dead_letter_queue: Construct,
    repository_globs: Iterable[str],
    *,
    signer_revocation: bool = False,
) -> None:
    """Acknowledge the by-design findings on the constructs that cause them (and only there)."""
    Validations.of(role).acknowledge(
        _account_actions_on_star(signer_revocation=signer_revocation),
        *(
            Acknowledgment(
                id=finding,
                reason="The wildcard comes from a repository glob in the promotion rules: the function may "
                "read (sources) or write (targets) exactly the repositories the rules name.",
            )
            for finding in wildcard_repository_findings(role, repository_globs)
        ),
    )
    _acknowledge_pinned_runtime(function)
    Validations.of(delivery_dead_letter_queue).acknowledge(
        Acknowledgment(
            id=_finding("SQS3"),
            reason="This queue is itself a dead-letter queue: the EventBridge targets' DLQ for events "
            "that could not be delivered. cdk-nag only recognises SQS redrive DLQs.",
        )
    )


def acknowledge_reconcile_findings(
    role: Construct,
    function: Construct,
    repository_globs: Iterable[str],
    *,
    list_all: bool,
    signer_revocation: bool = False,
) -> None:
    """The reconciliation's by-design findings: the promoter's, plus listing every repository's
    metadata when a source is a glob (infra.reconciliation)."""
    wildcard_globs = [*repository_globs, *(["*"] if list_all else [])]
    Validations.of(role).acknowledge(
        _account_actions_on_star(signer_revocation=signer_revocation),
        *(
            Acknowledgment(
                id=finding,
                reason="The wildcard comes from a repository glob in the promotion rules (or, for "
                "ecr:DescribeRepositories only, the listing that resolves such a glob): the function "
                "reads and writes exactly the repositories the rules name.",
            )
            for finding in wildcard_repository_findings(role, wildcard_globs)
        ),
    )
    _acknowledge_pinned_runtime(function)


def acknowledge_approval_channel_findings(function: Construct) -> None:
    """The approval channel's by-design finding: its runtime is pinned like the promoter's (its
    grants name the gates table, its index and the bus: nothing to acknowledge)."""
    _acknowledge_pinned_runtime(function)


def _account_actions_on_star(*, signer_revocation: bool = False) -> Acknowledgment:
    """Both roles hold the two ECR actions that have no resource-level permissions; the promoter's
    also AWS Signer's revocation check when a rule accepts Notation signatures."""
    if signer_revocation:
        return Acknowledgment(
            id=_finding("IAM5", "Resource::*"),
            reason="Only ecr:GetAuthorizationToken, ecr:GetAccountSetting, "
            "ecr:DescribeRepositoryCreationTemplates and signer:GetRevocationStatus are on '*': none "
            "supports resource-level permissions (Service Authorization Reference for Amazon ECR and "
            "AWS Signer).",
        )
    return Acknowledgment(
        id=_finding("IAM5", "Resource::*"),
        reason="Only ecr:GetAuthorizationToken, ecr:GetAccountSetting and "
        "ecr:DescribeRepositoryCreationTemplates are on '*': none supports resource-level permissions "
        "(Service Authorization Reference for Amazon ECR).",
    )


def _acknowledge_pinned_runtime(function: Construct) -> None:
    Validations.of(function).acknowledge(
        Acknowledgment(
            id=_finding("L1"),
            reason="Python 3.13 is pinned on purpose: the official Powertools layer used "
            "(AWSLambdaPowertoolsPythonV3-python313-arm64) is built for it.",
        )
    )
