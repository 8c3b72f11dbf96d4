"""Approval notifications: when a promotion starts waiting for people, one SNS message asks them.

The message names the image and digest, the rule, the requester, the verdicts of the gates that
already passed, when the wait expires, and the exact commands that decide it
(`promoter approve <wait id> --reason "..."`, `promoter reject ...`). Its body is an AWS Chatbot
(Amazon Q Developer in chat applications) custom notification, so a Chatbot Slack or Teams channel
subscribed to the topic shows it as a formatted message: `{"version": "1.0", "source": "custom",
"content": {"textType": "client-markdown", "title", "description", "nextSteps", "keywords"},
"metadata": {...}}` (the Chatbot admin guide, "Custom notifications", event schema). Any other
subscriber (e-mail, SQS, a webhook) gets the same JSON, with the short Subject.

Publishing is best effort, like the history and the result events: the wait is recorded before
anyone is told, and a notification that could not be published is logged at ERROR and counted in
`ApprovalNotificationFailures` (Powertools metrics, flushed with the handler's), never a reason to
drop or redo the wait: `promoter approvals` still lists it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from promoter import settings
from promoter.model.outcomes import clip
from promoter.model.verdicts import Verdict

logger = logging.getLogger(__name__)

# A public metric name (an alarm may watch it): approval requests nobody was told about.
APPROVAL_NOTIFICATION_FAILURES_METRIC = "ApprovalNotificationFailures"
# Chatbot's custom notification format (version and source are fixed by the schema).
CHATBOT_VERSION = "1.0"
CHATBOT_SOURCE = "custom"
CHATBOT_TEXT_TYPE = "client-markdown"
EVENT_TYPE = "ImagePromotionAwaitingApproval"
# SNS: a Subject is at most 100 printable ASCII characters, no line breaks (Publish API reference).
MAX_SUBJECT_CHARS = 100
# Free text a requester chose (their name, a verdict's reason) is cut to this many bytes: the whole
# message stays far below SNS's 256 KB, and a chat message stays readable.
MAX_FREE_TEXT_BYTES = 300
# What a person types as the reason in the commands shown.
REASON_PLACEHOLDER = "..."
UNKNOWN_REQUESTER = "unknown (any listed approver may decide)"
# Characters that would break out of a Markdown code span or drive a terminal or chat client:
# backticks, control characters, Unicode's bidirectional marks and line separators.
_UNSAFE = re.compile(r"[`\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")


class ApprovalWait(Protocol):
    """What the notification needs of a wait record (`promoter.model.verdicts.Waiting` has it)."""

    @property
    def repository(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def wait_id(self) -> str: ...


def approve_command(wait_id: str) -> str:
    """The command that approves the wait, as a person types it."""
    return f'promoter approve {wait_id} --reason "{REASON_PLACEHOLDER}"'


def reject_command(wait_id: str) -> str:
    """The command that rejects the wait, as a person types it."""
    return f'promoter reject {wait_id} --reason "{REASON_PLACEHOLDER}"'


def notify_approval_wait(
    topic_arn: str,
    waiting: ApprovalWait,
    rule: str,
    verdicts: Mapping[str, Verdict],
    expires_at: float,
    requester: str | None,
    *,
    min_approvals: int = 1,
    targets: Sequence[str] = (),
    client: Any = None,
) -> bool:
    """Publishes the request for approval of `waiting` (rule `rule`) on `topic_arn`.

    `verdicts`: the gates that already decided, by gate name, in the order to show them;
    `expires_at`: epoch seconds; `requester`: who asked, as authenticated (None: unknown);
    `targets`: where it would go (`repository:tag`), for the reader. Returns True when SNS took
    the message; False when it did not (logged at ERROR and counted, never raised: the wait stands).
    """
    subject, message = approval_message(
        waiting, rule, verdicts, expires_at, requester, min_approvals=min_approvals, targets=targets
    )
    try:
        sns = client or sns_client(topic_region(topic_arn))
        sns.publish(TopicArn=topic_arn, Subject=subject, Message=json.dumps(message))
    except (ClientError, BotoCoreError) as exc:
        logger.error(
            "approval request %s (%s@%s, rule %s) not published to %s: %s",
            waiting.wait_id,
            waiting.repository,
            waiting.digest,
            rule,
            topic_arn,
            exc,
        )
        _count_failure()
        return False
    return True


def approval_message(
    waiting: ApprovalWait,
    rule: str,
    verdicts: Mapping[str, Verdict],
    expires_at: float,
    requester: str | None,
    *,
    min_approvals: int = 1,
    targets: Sequence[str] = (),
) -> tuple[str, dict[str, Any]]:
    """The SNS Subject and the Chatbot custom notification for one approval wait (pure)."""
    image = f"{waiting.repository}@{waiting.digest}"
    expires = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    who = _code(requester) if requester else UNKNOWN_REQUESTER
    approve, reject = approve_command(waiting.wait_id), reject_command(waiting.wait_id)
    gates = [f"• {_code(name)} {_code(v.state)}: {_verdict_text(v)}" for name, v in verdicts.items()]
    lines = [
        f"*Image:* `{image}`",
        f"*Digest:* `{waiting.digest}` (exactly this digest is promoted)",
        f"*Rule:* {_code(rule)}",
        *([f"*Targets:* {', '.join(_code(t) for t in targets)}"] if targets else []),
        f"*Requested by:* {who}",
        f"*Approvals needed:* {min_approvals} distinct approver{'s' if min_approvals != 1 else ''}",
        f"*Expires:* {expires}",
        "*Gates passed:*",
        *(gates or ["• none before approval"]),
        "",
        f"Approve: `{approve}`",
        f"Reject: `{reject}`",
        f"Wait id: `{waiting.wait_id}` (`promoter approvals` lists every pending approval)",
    ]
    title = f"Approval needed: {waiting.repository}@{waiting.digest[:19]} (rule {rule})"
    message = {
        "version": CHATBOT_VERSION,
        "source": CHATBOT_SOURCE,
        "id": waiting.wait_id,
        "content": {
            "textType": CHATBOT_TEXT_TYPE,
            "title": _plain(title),
            "description": "\n".join(lines),
            "nextSteps": [f"`{approve}`", f"`{reject}`"],
            "keywords": [_plain(rule), _plain(waiting.repository)],
        },
        "metadata": {
            # A later message about the same wait (its decision) threads under this one.
            "threadId": waiting.wait_id,
            "summary": _plain(title),
            "eventType": EVENT_TYPE,
            "additionalContext": {
                "wait-id": waiting.wait_id,
                "repository": waiting.repository,
                "digest": waiting.digest,
                "rule": _plain(rule),
                "requester": _plain(requester or ""),
                "expires": expires,
                "approve-command": approve,
                "reject-command": reject,
            },
        },
    }
    return _subject(title), message


def _verdict_text(verdict: Verdict) -> str:
    """What a gate found, in its words: its reason, else its evidence's summary (a passed scan has
    no reason to give, but its counts)."""
    said = verdict.reason or (verdict.evidence.summary if verdict.evidence else "")
    return _code(said) if said else "-"


def _code(text: str) -> str:
    """Free text as an inline code span: chat clients then show it as it is (no mentions, links or
    formatting a requester could slip in), cut to MAX_FREE_TEXT_BYTES."""
    return f"`{_plain(text)}`"


def _plain(text: str) -> str:
    return clip(_UNSAFE.sub("'", str(text)), MAX_FREE_TEXT_BYTES)


def _subject(title: str) -> str:
    ascii_only = "".join(c if " " <= c <= "~" else "?" for c in title)
    return ascii_only if len(ascii_only) <= MAX_SUBJECT_CHARS else ascii_only[: MAX_SUBJECT_CHARS - 3] + "..."


def topic_region(topic_arn: str) -> str | None:
    """The region of an SNS topic ARN (`arn:<partition>:sns:<region>:<account>:<name>`); None for
    anything else (then the function's own region is asked, and SNS says what is wrong)."""
    parts = topic_arn.split(":")
    if len(parts) == 6 and parts[0] == "arn" and parts[2] == "sns" and parts[3]:
        return parts[3]
    return None


@cache
def sns_client(region: str | None) -> Any:
    """An SNS client for `region` (None: the function's own), one per region per process. SNS
    Publish goes to the topic's own region: a client of another region does not find the topic."""
    import boto3

    return boto3.client("sns", region_name=region)


def _count_failure() -> None:
    """Adds one to the invocation's metrics: Powertools' Metrics share one metric set per process,
    so the handler's `log_metrics` flushes it with the rest of the invocation's metrics."""
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    metrics = Metrics(namespace=settings.METRICS_NAMESPACE, service=settings.SERVICE_NAME)
    metrics.add_metric(name=APPROVAL_NOTIFICATION_FAILURES_METRIC, unit=MetricUnit.Count, value=1)
