"""`promoter redrive [--queue delivery|processing] [--dry-run] [--limit N]`: dead letters back in.

Both dead-letter queues hold EventBridge events, so both go back the same way, into the queue the
function consumes, byte for byte:
- `delivery`: the rule targets' dead-letter queue. EventBridge puts an event there when it could not
  put it into the queue (body = the event, plus message attributes ERROR_CODE, ERROR_MESSAGE,
  RULE_ARN, TARGET_ARN, ...). It is no SQS dead-letter queue of another queue, so SQS's own
  redrive (StartMessageMoveTask) cannot move it: this command can. The attributes are reported,
  not forwarded (the rule sends the bare event).
- `processing`: the queue's dead-letter queue. A message lands there after the function failed on
  it maxReceiveCount times; its body is the original message body (the event).

Moves only what EventBridge delivered (issue 18): each message's SQS `SenderId` is read, and one
that a principal sent rather than EventBridge (`promoter.model.senders`) is refused: reported, left
in the dead-letter queue, never moved. A moved message carries the SenderId it had in the
dead-letter queue as the message attribute `promoter-redriven-sender`, which the handler checks.

Never loses a message: each one is deleted from the dead-letter queue only after SendMessage
succeeded. A failed send stops the run and leaves that message and the rest where they were
(visible again at once). A crash between send and delete leaves a copy in both queues, so the event
can at worst run twice; the idempotency table answers the second run from its record (and a
second redrive later moves the copy again, equally harmless).
Exit codes: 0 everything asked for was moved (or nothing was waiting), 1 a send or delete failed
or a message was refused (what was not moved stays in the dead-letter queue), 2 bad input (no
queue known, a bad --limit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from promoter import settings
from promoter.model.senders import REDRIVEN_SENDER_ATTRIBUTE, sender_refusal
from promoter_cli.cmd_engine import EXIT_OK, bad_input
from promoter_cli.output import printable
from promoter_cli.resources import (
    DEAD_LETTER_QUEUE_URL_ENV,
    DELIVERY_DEAD_LETTER_QUEUE_URL_ENV,
    QUEUE_URL_ENV,
)

EXIT_NOT_ALL_MOVED = 1
# The dead-letter queues in the order a run without --queue empties them.
REDRIVE_QUEUES = (settings.REDRIVE_DELIVERY, settings.REDRIVE_PROCESSING)
DEAD_LETTER_QUEUE_ENV_VARS = {
    settings.REDRIVE_DELIVERY: DELIVERY_DEAD_LETTER_QUEUE_URL_ENV,
    settings.REDRIVE_PROCESSING: DEAD_LETTER_QUEUE_URL_ENV,
}
SQS_MAX_MESSAGES_PER_RECEIVE = 10
# Long polling asks every SQS server, so an empty answer means the queue is empty (short polling
# samples some servers and can answer empty while messages wait).
RECEIVE_WAIT_SECONDS = 1
# How long a received message stays invisible to others while this run moves it (or, in a dry run,
# until the run ends and releases it). A run that dies leaves it visible again after this.
HOLD_SECONDS = 120
# Message attributes EventBridge sets on what it dead-letters, shown in the report.
EVENTBRIDGE_ERROR_ATTRIBUTES = ("ERROR_CODE", "ERROR_MESSAGE", "RULE_ARN", "TARGET_ARN")


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `redrive`."""
    parser = sub.add_parser(
        "redrive", help="move dead-lettered events back into the promoter's queue (both DLQs by default)"
    )
    parser.add_argument(
        "--queue",
        choices=REDRIVE_QUEUES,
        help=f"only this dead-letter queue: {settings.REDRIVE_DELIVERY} = events EventBridge could not "
        f"deliver, {settings.REDRIVE_PROCESSING} = messages the function failed on (default: both)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would move; move nothing")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="move at most N messages in all")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.add_argument("--queue-url", metavar="URL", help=f"where to send (default: ${QUEUE_URL_ENV})")
    parser.add_argument(
        "--delivery-dlq-url", metavar="URL", help=f"default: ${DELIVERY_DEAD_LETTER_QUEUE_URL_ENV}"
    )
    parser.add_argument("--processing-dlq-url", metavar="URL", help=f"default: ${DEAD_LETTER_QUEUE_URL_ENV}")
    parser.set_defaults(func=cmd_redrive)


@dataclass
class MessageReport:
    """One dead-lettered message: its SQS id, the event in it, and why EventBridge gave up (if it did)."""

    message_id: str
    event_id: str | None
    detail_type: str | None
    errors: dict[str, str] = field(default_factory=dict)
    moved: bool = False
    deleted: bool = False
    sender: str | None = None  # SQS's SenderId (for a redriven message: the first sender's)
    refused: str | None = None  # why it is not moved: not sent by EventBridge


@dataclass
class QueueReport:
    queue: str
    source_url: str
    target_url: str
    messages: list[MessageReport] = field(default_factory=list)
    error: str | None = None

    @property
    def moved(self) -> int:
        return sum(m.moved for m in self.messages)

    @property
    def refused(self) -> int:
        return sum(m.refused is not None for m in self.messages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "from": self.source_url,
            "to": self.target_url,
            "found": len(self.messages),
            "moved": self.moved,
            "refused": self.refused,
            "error": self.error,
            "messages": [asdict(m) for m in self.messages],
        }


def cmd_redrive(args: argparse.Namespace) -> int:
    import boto3

    if args.limit is not None and args.limit < 1:
        return bad_input("--limit must be at least 1")
    names = (args.queue,) if args.queue else REDRIVE_QUEUES
    flags = {
        settings.REDRIVE_DELIVERY: args.delivery_dlq_url,
        settings.REDRIVE_PROCESSING: args.processing_dlq_url,
    }
    target_url = args.queue_url or os.environ.get(QUEUE_URL_ENV)
    if not target_url:
        return bad_input(f"which queue? pass --stack NAME, --queue-url URL, or set {QUEUE_URL_ENV}")
    sources: list[tuple[str, str]] = []
    for name in names:
        url = flags[name] or os.environ.get(DEAD_LETTER_QUEUE_ENV_VARS[name])
        if not url:
            return bad_input(
                f"which {name} dead-letter queue? pass --stack NAME, --{name}-dlq-url URL, "
                f"or set {DEAD_LETTER_QUEUE_ENV_VARS[name]}"
            )
        sources.append((name, url))
    sqs = boto3.client("sqs")
    remaining = args.limit
    reports: list[QueueReport] = []
    for name, url in sources:
        report = redrive_queue(sqs, name, url, target_url, limit=remaining, dry_run=args.dry_run)
        reports.append(report)
        if report.error is not None:
            break
        if remaining is not None:
            remaining -= len(report.messages)
            if remaining <= 0:
                break
    _print(reports, args.dry_run, args.json)
    return EXIT_NOT_ALL_MOVED if any(r.error or r.refused for r in reports) else EXIT_OK


def redrive_queue(
    sqs: Any, name: str, source_url: str, target_url: str, *, limit: int | None, dry_run: bool
) -> QueueReport:
    """Moves up to `limit` messages (None = all) from `source_url` to `target_url`, each deleted only
    after its send succeeded; stops at the first failure (QueueReport.error) and hands back at once
    what it holds and has not moved. A dry run receives, reports and hands everything back."""
    from botocore.exceptions import BotoCoreError, ClientError

    report = QueueReport(name, source_url, target_url)
    held: list[dict[str, Any]] = []
    try:
        while limit is None or len(report.messages) < limit:
            wanted = SQS_MAX_MESSAGES_PER_RECEIVE
            if limit is not None:
                wanted = min(wanted, limit - len(report.messages))
            batch = sqs.receive_message(
                QueueUrl=source_url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
                VisibilityTimeout=HOLD_SECONDS,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["SenderId"],
            ).get("Messages", [])
            if not batch:
                break
            held.extend(batch)
            for message in batch:
                entry = _describe(message)
                report.messages.append(entry)
                if dry_run or entry.refused is not None:
                    continue
                marker = {"DataType": "String", "StringValue": entry.sender or ""}
                try:
                    sqs.send_message(
                        QueueUrl=target_url,
                        MessageBody=message["Body"],
                        MessageAttributes={REDRIVEN_SENDER_ATTRIBUTE: marker},
                    )
                except (ClientError, BotoCoreError) as exc:
                    report.error = f"sending {entry.message_id} to {target_url} failed: {exc}"
                    return report
                entry.moved = True
                try:
                    sqs.delete_message(QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"])
                except (ClientError, BotoCoreError) as exc:
                    report.error = (
                        f"{entry.message_id} was sent, but deleting it from {source_url} failed: {exc} "
                        "(a later redrive moves the copy again; idempotency absorbs the duplicate)"
                    )
                    return report
                entry.deleted = True
                held.remove(message)
    except (ClientError, BotoCoreError) as exc:
        report.error = f"receiving from {source_url} failed: {exc}"
    finally:
        _release(sqs, source_url, held)
    return report


def _release(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    """Makes held messages visible again now rather than after HOLD_SECONDS. Best effort: if this
    fails they come back on their own when the hold ends, so nothing is lost either way."""
    from botocore.exceptions import BotoCoreError, ClientError

    for start in range(0, len(messages), SQS_MAX_MESSAGES_PER_RECEIVE):
        chunk = messages[start : start + SQS_MAX_MESSAGES_PER_RECEIVE]
        try:
            sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )
        except (ClientError, BotoCoreError) as exc:
            print(f"promoter: could not hand back {len(chunk)} message(s) at once: {exc}", file=sys.stderr)


def _describe(message: dict[str, Any]) -> MessageReport:
    """The event id and detail-type from the body (when it is an event), EventBridge's error attributes."""
    event_id = detail_type = None
    try:
        event = json.loads(message["Body"])
    except ValueError:
        event = None
    if isinstance(event, dict):
        event_id = event.get("id") if isinstance(event.get("id"), str) else None
        detail_type = event.get("detail-type") if isinstance(event.get("detail-type"), str) else None
    attributes = message.get("MessageAttributes", {})
    errors = {
        name: str(attributes[name].get("StringValue", ""))
        for name in EVENTBRIDGE_ERROR_ATTRIBUTES
        if name in attributes
    }
    sender = message.get("Attributes", {}).get("SenderId")
    redriven = attributes.get(REDRIVEN_SENDER_ATTRIBUTE)
    first = str(redriven.get("StringValue", "")) if redriven is not None else None
    entry = MessageReport(message["MessageId"], event_id, detail_type, errors)
    entry.sender = first if first is not None else sender
    entry.refused = sender_refusal(sender, first) if sender else "SQS names no sender"
    return entry


def _print(reports: list[QueueReport], dry_run: bool, as_json: bool) -> None:
    if as_json:
        json.dump({"dry_run": dry_run, "queues": [r.to_dict() for r in reports]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for report in reports:
        if dry_run:
            print(
                f"{report.queue}: {len(report.messages)} message(s) would move from {report.source_url} "
                f"to {report.target_url} (dry run: nothing moved)"
            )
        else:
            moved = f"moved {report.moved} message(s)"
            print(f"{report.queue}: {moved} from {report.source_url} to {report.target_url}")
        if report.refused:
            print(
                f"promoter: {report.queue}: {report.refused} message(s) not sent by EventBridge: refused, "
                "left in the dead-letter queue",
                file=sys.stderr,
            )
        for m in report.messages:
            state = "moved" if m.moved else ("found" if dry_run else "not moved")
            if m.refused is not None:
                state = f"refused ({m.refused}):"
            why = f" [{m.errors['ERROR_CODE']}]" if "ERROR_CODE" in m.errors else ""
            # The event id and detail-type are whatever the message says: shown, never obeyed.
            line = f"  {state} {m.message_id} event {m.event_id or '-'} {m.detail_type or ''}{why}"
            print(printable(line.rstrip()))
        if report.error:
            print(f"promoter: {report.queue}: {printable(report.error)}", file=sys.stderr)
