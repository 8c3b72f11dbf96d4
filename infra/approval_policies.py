"""Who may call the approval channel, as plain policy JSON (issue 20): for the stack and the local AWS.

The channel is a Lambda function URL with `AuthType: AWS_IAM` (infra/approvals.py). Lambda
verifies the caller's SigV4 signature and then IAM decides with the function's resource policy
and the caller's identity policies; the function itself then checks that the caller matches the
wait's rule's `approvers` (promoter.model.approvals), because a resource policy cannot say all of it:

- A Lambda resource policy is written with AddPermission (CloudFormation `AWS::Lambda::Permission`):
  Allow statements only, a principal each, and no condition of our choosing (only SourceArn,
  SourceAccount, PrincipalOrgID, FunctionUrlAuthType, InvokedViaFunctionUrl). So an exact IAM role
  or user ARN among the approvers becomes a permission for that principal (a role's permission
  covers its sessions); every other entry (a pattern such as
  `arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Release_*/*`, an exact session ARN, a
  root) becomes a permission for its account, which then lets in only the account's principals
  whose identity policy also allows `lambda:InvokeFunctionUrl` on the function (IAM's rule for a
  resource policy that names an account), and the function refuses the ones no entry matches.
  Accounts that no approver belongs to get nothing: Lambda refuses their calls before the
  function runs.
- Since October 2025 a function URL needs both `lambda:InvokeFunctionUrl` (condition
  `lambda:FunctionUrlAuthType` = `AWS_IAM`) and `lambda:InvokeFunction` (condition
  `lambda:InvokedViaFunctionUrl` = `true`): each principal gets both.
- The promoter's own roles can never decide, whatever the approvers say (a pattern could match
  them): an explicit Deny of both actions on the function, in each role's identity policy (a
  resource policy of Lambda cannot hold a Deny; an explicit Deny in any policy wins).

`permission_principals` and the statement builders are what infra/approvals.py synthesizes and
what the local AWS (local_aws.approval_url) applies, as one document: the permissions, then
the Deny written as a resource policy statement denying the promoter's roles by
`aws:PrincipalArn` (the local AWS has no identity policies).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promoter.model.config import PromotionConfig

INVOKE_URL = "lambda:InvokeFunctionUrl"
INVOKE = "lambda:InvokeFunction"
INVOKE_ACTIONS = (INVOKE_URL, INVOKE)
AUTH_TYPE = "AWS_IAM"
# The conditions Lambda renders for AddPermission's FunctionUrlAuthType and InvokedViaFunctionUrl.
URL_CONDITION = {"StringEquals": {"lambda:FunctionUrlAuthType": AUTH_TYPE}}
VIA_URL_CONDITION = {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
DENY_SID = "PromoterRolesNeverDecide"
# An exact IAM role (any path) or user: a principal a Lambda permission can name.
_EXACT_IDENTITY = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+")
_ACCOUNT = re.compile(r"arn:aws[a-z-]*:(iam|sts)::(?P<account>\d{12}):")


def approvers_of(config: PromotionConfig) -> tuple[str, ...]:
    """Every rule's approver entries, each once, in the rules' order (none: no rule requires
    approval, and there is no approval channel)."""
    entries: dict[str, None] = {}
    for rule in config.rules:
        if rule.approval_gate is not None:
            entries.update(dict.fromkeys(rule.approval_gate.approvers))
    return tuple(entries)


def permission_principals(approvers: Iterable[str]) -> list[str]:
    """The principals the function's permissions name, sorted, each once: an exact IAM role or
    user ARN as itself, any other approver entry as its account id (see the module docstring)."""
    principals: set[str] = set()
    for entry in approvers:
        if _EXACT_IDENTITY.fullmatch(entry):
            principals.add(entry)
            continue
        match = _ACCOUNT.match(entry)
        if match is None:
            raise ValueError(f"not an approver ARN: {entry!r}")
        principals.add(match["account"])
    return sorted(principals)


def permission_statements(function_arn: str, principals: Iterable[str], partition: str = "aws") -> list[dict]:
    """The function's resource policy statements, as Lambda's GetPolicy shows the permissions:
    both actions for each principal (an account as its root ARN)."""
    statements = []
    for principal in principals:
        aws = f"arn:{partition}:iam::{principal}:root" if principal.isdigit() else principal
        for action, condition in ((INVOKE_URL, URL_CONDITION), (INVOKE, VIA_URL_CONDITION)):
            statements.append(
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": aws},
                    "Action": action,
                    "Resource": function_arn,
                    "Condition": condition,
                }
            )
    return statements


def promoter_deny_statement(function_arn: str) -> dict[str, Any]:
    """The Deny the stack puts in each of the promoter's roles' identity policies."""
    return {"Sid": DENY_SID, "Effect": "Deny", "Action": list(INVOKE_ACTIONS), "Resource": function_arn}


def local_resource_policy(
    function_arn: str, approvers: Iterable[str], promoter_roles: Iterable[str]
) -> dict[str, Any]:
    """The one document the local AWS decides the channel with: the permissions, and the promoter
    roles' Deny as a resource policy statement (the local AWS has no identity policies)."""
    statements: list[dict[str, Any]] = permission_statements(function_arn, permission_principals(approvers))
    denied = sorted(set(promoter_roles))
    if denied:
        statements.append(
            {
                **promoter_deny_statement(function_arn),
                "Principal": "*",
                "Condition": {"ArnEquals": {"aws:PrincipalArn": denied}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
