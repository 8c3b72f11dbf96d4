"""Who may put work on the promoter's queues (issue 18): the policy statements, as plain JSON.

The stack (infra/construct.py) and the local AWS (local_aws.stack_route) write the same statements,
so a test on the local AWS exercises the policies the stack deploys.

- The queue: only EventBridge, for one of the stack's own rules (`aws:SourceArn`), and the
  principals named to redrive (`redrive_principals`) may send. A Deny, not only an Allow: an
  account principal with a broad `sqs:SendMessage` grant needs no Allow in the queue policy.
- The processing dead-letter queue: nobody sends. SQS moves a message there itself after
  maxReceiveCount receives (the queue's redrive policy); that move is no SendMessage, so this
  Deny leaves it alone and leaves the message as it was sent (its SenderId included).
- The delivery dead-letter queue: only EventBridge, for the stack's rules (a rule target's
  dead-letter queue is written by EventBridge with the rule as `aws:SourceArn`).

`aws:SourceArn` is set only when an AWS service calls on behalf of a resource; a principal's own
request never carries it, so `ArnNotEquals` on it holds for every principal that is not the
service acting for one of our rules.
"""

from __future__ import annotations

from typing import Any

SEND_MESSAGE = "sqs:SendMessage"
EVENTBRIDGE_SERVICE = "events.amazonaws.com"
ONLY_THE_RULES_SEND_SID = "OnlyTheStackRulesSend"
NOBODY_SENDS_SID = "NothingButSqsRedriveWritesHere"
EVENTBRIDGE_SENDS_SID = "EventBridgeRulesSend"


def only_rules_send(queue_arn: Any, rule_arns: list[Any], senders: tuple[str, ...] = ()) -> dict[str, Any]:
    """Deny SendMessage to every principal unless it is EventBridge acting for one of `rule_arns`,
    or one of `senders` (exact IAM role or user ARNs)."""
    unless: dict[str, Any] = {"aws:SourceArn": list(rule_arns)}
    if senders:
        unless["aws:PrincipalArn"] = list(senders)
    return {
        "Sid": ONLY_THE_RULES_SEND_SID,
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": SEND_MESSAGE,
        "Resource": queue_arn,
        "Condition": {"ArnNotEquals": unless},
    }


def nobody_sends(queue_arn: Any) -> dict[str, Any]:
    """Deny SendMessage to every principal (SQS's own dead-lettering is not a SendMessage)."""
    return {
        "Sid": NOBODY_SENDS_SID,
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": SEND_MESSAGE,
        "Resource": queue_arn,
    }


def eventbridge_sends(queue_arn: Any, rule_arns: list[Any]) -> dict[str, Any]:
    """Allow EventBridge to send for `rule_arns`: what CDK's SqsQueue target adds for each rule
    (the local AWS, which has no CDK, writes it with this)."""
    return {
        "Sid": EVENTBRIDGE_SENDS_SID,
        "Effect": "Allow",
        "Principal": {"Service": EVENTBRIDGE_SERVICE},
        "Action": SEND_MESSAGE,
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": list(rule_arns)}},
    }
