"""Which repository creation template ECR applies (local_aws.creation_templates): the longest
prefix that stands for the name (`prod` for `prod/...`, never `prod` itself or `production/...`),
ROOT for every name no other template covers, and only templates applied for the operation."""

from __future__ import annotations

import pytest

from local_aws.creation_templates import CREATE_ON_PUSH, ROOT, covers, template_for


def _templates(**applied: list[str]) -> dict[str, dict]:
    return {
        prefix.replace("_", "/"): {"prefix": prefix.replace("_", "/"), "appliedFor": a}
        for prefix, a in applied.items()
    }


@pytest.mark.parametrize(
    ("prefix", "name", "covered"),
    [
        ("prod", "prod/api", True),
        ("prod", "prod/team/api", True),
        ("prod", "prod", False),
        ("prod", "production/api", False),
        ("prod/team", "prod/team/api", True),
        ("prod/team", "prod/other/api", False),
        (ROOT, "anything", True),
    ],
)
def test_a_prefix_stands_for_the_names_under_it(prefix, name, covered):
    assert covers(prefix, name) is covered


def test_the_longest_prefix_applied_for_the_operation_wins_and_root_comes_last():
    templates = _templates(
        ROOT=[CREATE_ON_PUSH],
        prod=[CREATE_ON_PUSH],
        prod_team=["PULL_THROUGH_CACHE"],
        prod_team_api=[CREATE_ON_PUSH],
    )

    assert template_for(templates, "prod/team/api/x", CREATE_ON_PUSH)["prefix"] == "prod/team/api"
    assert (
        template_for(templates, "prod/team/web", CREATE_ON_PUSH)["prefix"] == "prod"
    )  # prod/team: not for pushes
    assert template_for(templates, "prod/team/web", "PULL_THROUGH_CACHE")["prefix"] == "prod/team"
    assert template_for(templates, "dev/api", CREATE_ON_PUSH)["prefix"] == ROOT
    assert template_for(templates, "dev/api", "REPLICATION") is None
    assert template_for({}, "dev/api", CREATE_ON_PUSH) is None
