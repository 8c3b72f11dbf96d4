"""Who the approval channel's resource policy names (infra.approval_policies): an exact IAM role or user
as itself, any other approver entry as its account, never a wildcard principal."""

from __future__ import annotations

import pytest

from infra.approval_policies import local_resource_policy, permission_principals
from local_aws import policy
from local_aws.policy import Principal

FUNCTION = "arn:aws:lambda:us-east-1:111122223333:function:approvals"


def test_exact_roles_and_users_are_named_and_every_other_entry_by_its_account():
    approvers = [
        "arn:aws:iam::111122223333:user/alice",
        "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Release_0a1b",
        "arn:aws:sts::444455556666:assumed-role/AWSReservedSSO_Release_*/*",
        "arn:aws:sts::555566667777:assumed-role/release/bob",
        "arn:aws:iam::666677778888:root",
        "arn:aws:iam::777788889999:user/team-*",
        "arn:aws:iam::111122223333:user/alice",
    ]

    assert permission_principals(approvers) == [
        "444455556666",
        "555566667777",
        "666677778888",
        "777788889999",
        "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Release_0a1b",
        "arn:aws:iam::111122223333:user/alice",
    ]


def test_an_entry_that_is_no_iam_or_sts_arn_is_refused():
    with pytest.raises(ValueError, match="not an approver ARN"):
        permission_principals(["alice"])


@pytest.mark.parametrize(
    "caller, allowed",
    [
        (Principal(arn="arn:aws:iam::111122223333:user/alice", account="111122223333"), True),
        (Principal(arn="arn:aws:iam::222233334444:user/alice", account="222233334444"), False),
        (Principal(arn="arn:aws:iam::111122223333:role/promoter", account="111122223333"), False),
    ],
    ids=["approver", "another-account", "promoter-role"],
)
def test_the_local_document_allows_approvers_and_denies_the_promoters_roles(caller, allowed):
    document = local_resource_policy(
        FUNCTION,
        ["arn:aws:iam::111122223333:user/alice", "arn:aws:sts::111122223333:assumed-role/*/*"],
        ["arn:aws:iam::111122223333:role/promoter"],
    )

    decisions = [
        policy.allows(document, caller, action, FUNCTION, "111122223333", keys)
        for action, keys in (
            ("lambda:InvokeFunctionUrl", {"lambda:FunctionUrlAuthType": "AWS_IAM"}),
            ("lambda:InvokeFunction", {"lambda:InvokedViaFunctionUrl": "true"}),
        )
    ]

    assert decisions == [allowed, allowed]
