"""Who put a message on the promoter's queue, read from SQS's `SenderId` (issue 18, defence in depth).

The queue policy is the control: only EventBridge, for the stack's own rules, and the principals
named to redrive may send (infra/queue_policies.py). Behind it, the handler and `promoter redrive`
read each message's `SenderId`, the IAM unique id SQS records for its sender (SQS developer guide,
ReceiveMessage): a user's id (`AIDA...`), a role's id and session (`AROA...:<session>`), the account
id for the account's root. EventBridge sends as an AWS service whose id AWS does not document; it
is no role session and no account root of any account. So:

- a `SenderId` that is a role session or an account root was sent by a principal, not by
  EventBridge: the message is refused (never promoted, reported, sent on to the dead-letter queue);
- any other `SenderId` is taken for EventBridge's. That is an inference: an IAM user's id has the
  same form as the service's, and only the queue policy tells them apart;
- a message `promoter redrive` moved back carries REDRIVEN_SENDER_ATTRIBUTE, the `SenderId` it had
  in the dead-letter queue; it is accepted when that one passes the rule above (redrive itself
  refuses to move anything else). Only the redrive principals may send such a message at all.
- a record with no `SenderId` did not come through SQS (a direct invocation): not checked here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# The message attribute `promoter redrive` sets on what it moves: the SenderId in the dead-letter queue.
REDRIVEN_SENDER_ATTRIBUTE = "promoter-redriven-sender"
ACCOUNT_ROOT_RE = re.compile(r"\d{12}")


def principal_kind(sender_id: str) -> str | None:
    """What kind of principal a SenderId names when it is certainly not EventBridge, else None."""
    if ACCOUNT_ROOT_RE.fullmatch(sender_id):
        return "the account root"
    if ":" in sender_id:
        return "a role session"
    return None


def sender_refusal(sender_id: str | None, redriven_sender: str | None = None) -> str | None:
    """Why a message with this SenderId (and redrive attribute) is refused, or None to accept it."""
    if not sender_id:
        return None
    kind = principal_kind(sender_id)
    if kind is None:
        return None
    if redriven_sender is not None:
        original = principal_kind(redriven_sender) if redriven_sender else "nobody known"
        if original is None:
            return None
        first = f"{redriven_sender or '?'} ({original})"
        return f"redriven by {sender_id}, but first sent by {first}, not by EventBridge"
    return f"sent by {sender_id} ({kind}), not by EventBridge"


def record_sender(record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(SenderId, the redrive attribute's value or None) of an SQS record as Lambda hands it."""
    attributes = record.get("attributes") or {}
    redriven = (record.get("messageAttributes") or {}).get(REDRIVEN_SENDER_ATTRIBUTE)
    value = redriven.get("stringValue") if isinstance(redriven, Mapping) else None
    return attributes.get("SenderId"), (str(value) if value is not None else None)


def delivery_note(sender_id: str | None, redriven_sender: str | None = None) -> str:
    """How an accepted message reached the queue, for the history's `authenticated` field: an
    inference from SenderId, and said to be one. "" when SQS named no sender."""
    if not sender_id:
        return ""
    if redriven_sender is not None and principal_kind(sender_id) is not None:
        return (
            f"redriven by {sender_id} from a message delivered by EventBridge "
            f"(inferred from its SQS SenderId {redriven_sender})"
        )
    return f"delivered by EventBridge (inferred from SQS SenderId {sender_id})"
