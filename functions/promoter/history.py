"""The promotion history: one DynamoDB item per executed action, to answer "what happened to
this target tag, when, from which digest, and why".

Keys: `pk` = "<target repository>:<target tag>", `sk` = "<UTC time>#<source digest>", so a Query
on one target returns its history in time order. ECR stays the source of truth: a history write
that fails is logged and skipped, never a reason to redo a promotion.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from promoter import settings
from promoter.outcomes import ActionResult

logger = logging.getLogger(__name__)


class History(Protocol):
    """Where outcomes are recorded."""

    def record(self, event_id: str, result: ActionResult) -> None: ...


def history_key(repository: str, tag: str) -> str:
    return f"{repository}:{tag}"


class DynamoDbHistory:
    """`History` on the history table (name from settings unless given)."""

    def __init__(self, table_name: str | None = None, resource: Any = None) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(
            table_name or settings.history_table_name()
        )

    def record(self, event_id: str, result: ActionResult) -> None:
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        item = {
            "pk": history_key(result.target_repository, result.target_tag),
            "sk": f"{at}#{result.source_digest}",
            "event_id": event_id,
            "rule": result.rule,
            "outcome": result.outcome,
            "source": f"{result.source_repository}:{result.source_tag}@{result.source_digest}",
            "target_digest": result.target_digest or "",
            "reason": result.reason or "",
            "blobs_mounted": result.stats.blobs_mounted,
            "blobs_copied": result.stats.blobs_copied,
            "bytes_copied": result.stats.bytes_copied,
        }
        try:
            self._table.put_item(Item=item)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("history not recorded for %s: %s", item["pk"], exc)

    def for_target(self, repository: str, tag: str) -> list[dict[str, Any]]:
        """The recorded outcomes for a target tag, oldest first."""
        from boto3.dynamodb.conditions import Key

        response = self._table.query(KeyConditionExpression=Key("pk").eq(history_key(repository, tag)))
        return list(response.get("Items") or ())
