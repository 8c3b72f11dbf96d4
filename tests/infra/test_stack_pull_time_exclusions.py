"""Lifecycle-neutral reads (issue 21, item 4): the stack registers the roles that read images (the
promoter's, and its reconciliation's) as ECR pull-time update exclusions, so their reads do not keep
images alive under "since last pulled" lifecycle rules; and no other principal."""

from __future__ import annotations

from typing import Any


def _role_ids(synthesized) -> dict[str, str]:
    """Each Lambda function's role (logical id), by the function's logical id."""
    return {
        name: function["Properties"]["Role"]["Fn::GetAtt"][0]
        for name, function in synthesized.resources("AWS::Lambda::Function").items()
        if "Fn::GetAtt" in function["Properties"]["Role"]
    }


def _excluded(synthesized) -> list[Any]:
    exclusions = synthesized.resources("AWS::ECR::PullTimeUpdateExclusion").values()
    return [e["Properties"]["PrincipalArn"] for e in exclusions]


def test_the_promoter_and_reconciliation_roles_are_excluded_from_pull_time_updates(synthesized):
    excluded = _excluded(synthesized)
    promoter_role = synthesized.of_promoter("AWS::Lambda::Function")["Properties"]["Role"]

    assert promoter_role in excluded
    assert all(arn == {"Fn::GetAtt": [arn["Fn::GetAtt"][0], "Arn"]} for arn in excluded)
    readers = {r for f, r in _role_ids(synthesized).items() if "Protection" not in f}
    assert {arn["Fn::GetAtt"][0] for arn in excluded} == readers
    assert len(excluded) == len(set(map(str, excluded)))
