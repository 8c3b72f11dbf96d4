"""Lifecycle-neutral reads: the promoter's roles as ECR pull-time update exclusions.

ECR records an image's last pull time (`lastRecordedPullTime`), and lifecycle rules with
`countType: sinceImagePulled` expire images by it. The promoter reads every image it promotes (and
the reconciliation reads sources and targets again and again), so without an exclusion its own
reads would keep images alive that nobody else pulls. `AWS::ECR::PullTimeUpdateExclusion` (ECR's
RegisterPullTimeUpdateExclusion; at most 100 principals a registry) names a role whose pulls are
not recorded. It applies to the registry of the stack's own account and region, where the sources
are read; targets in other accounts are written, and their owners register exclusions there.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import aws_ecr as ecr
from constructs import Construct


def exclude_from_pull_times(
    scope: Construct, role_arns: Mapping[str, str]
) -> list[ecr.CfnPullTimeUpdateExclusion]:
    """One exclusion per role (`<name>PullTimeUpdateExclusion`): its pulls leave images' last
    recorded pull time alone."""
    return [
        ecr.CfnPullTimeUpdateExclusion(scope, f"{name}PullTimeUpdateExclusion", principal_arn=arn)
        for name, arn in role_arns.items()
    ]
