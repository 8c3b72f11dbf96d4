"""The promotion bus's request statements as plain JSON, for the local AWS (issue 18).

infra/construct.py writes the bus policy with CDK (`ImagePromoter._restrict_bus`); `promoter local
--config` (local_aws.stack_route) has no CDK and writes these instead, so `requesters:` can be tried
before deploying. tests/infra/test_stack_queue_policies.py checks that they are the statements the
stack synthesizes, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any

from promoter import settings
from promoter.model.config import requester_account

PUT_EVENTS = "events:PutEvents"


def principal_patterns(account: str, principals: tuple[str, ...], partition: str = "aws") -> list[str]:
    """`aws:PrincipalArn` patterns: an account id stands for every principal of that account."""
    return [p if p.startswith("arn:") else f"arn:{partition}:iam::{p}:*" for p in principals]


def request_statements(
    bus_arn: str,
    account: str,
    requested_rules: list[tuple[str, tuple[str, ...]]],
    request_source: str = settings.DEFAULT_REQUEST_EVENT_SOURCE,
    trusted_principals: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Requests on the shared source only from the trusted principals (default: `account`), and on
    a rule's own source only from its requesters (`requested_rules`: each rule's name and requesters)."""
    trusted = trusted_principals or (account,)
    sources = [settings.rule_request_source(name, request_source) for name, _ in requested_rules]
    shared_only = {"StringNotEquals": {"events:source": sources}} if sources else {}
    statements: list[dict[str, Any]] = [
        _statement(
            "OnlyTrustedPrincipalsRequest",
            "Deny",
            {"AWS": "*"},
            bus_arn,
            {
                "StringEquals": {"events:detail-type": settings.REQUEST_DETAIL_TYPE},
                **shared_only,
                "ArnNotLike": {"aws:PrincipalArn": principal_patterns(account, trusted)},
            },
        )
    ]
    for index, ((_, requesters), source) in enumerate(zip(requested_rules, sources, strict=True)):
        on_source = {"events:detail-type": settings.REQUEST_DETAIL_TYPE, "events:source": source}
        statements.append(
            _statement(
                f"OnlyRequestersOfRequestRule{index}",
                "Deny",
                {"AWS": "*"},
                bus_arn,
                {
                    "StringEquals": on_source,
                    "ArnNotLike": {"aws:PrincipalArn": principal_patterns(account, requesters)},
                },
            )
        )
        accounts = sorted({requester_account(r) for r in requesters})
        statements.append(
            _statement(
                f"RequestersOfRequestRule{index}MayRequest",
                "Allow",
                {"AWS": [f"arn:aws:iam::{a}:root" for a in accounts]},
                bus_arn,
                {"StringEquals": on_source},
            )
        )
    others = [p for p in trusted_principals if p != account]
    if others:
        statements.append(
            _statement(
                "TrustedPrincipalsMayRequest",
                "Allow",
                {"AWS": [p if p.startswith("arn:") else f"arn:aws:iam::{p}:root" for p in others]},
                bus_arn,
                {
                    "StringEquals": {
                        "events:detail-type": settings.REQUEST_DETAIL_TYPE,
                        "events:source": request_source,
                    }
                },
            )
        )
    return statements


def _statement(
    sid: str, effect: str, principal: dict[str, Any], bus_arn: str, condition: dict
) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": effect,
        "Principal": principal,
        "Action": PUT_EVENTS,
        "Resource": bus_arn,
        "Condition": condition,
    }
