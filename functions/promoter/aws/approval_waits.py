"""The engine's own writes on approval waits (the gates table): announcing a wait once, and ending
an older wait that a newer request for the same target supersedes.

The channel's writes (approvals, rejections) are `promoter.aws.approvals.ApprovalStore`'s; the
record itself (hold, release, find) is `promoter.aws.gate_store.DynamoDbGates`'s. Both writes here
are one conditional UpdateItem each, so two deliveries racing each other cannot both win:

- `claim_announcement` sets `announced_at` only if it is absent: the first delivery that holds the
  wait tells the approvers (SNS) and supersedes the older waits; a redelivery, a resume or a sweep
  finds it set and says nothing again;
- `supersede` sets `superseded_by` and moves the deadline to now, only on a record that is still
  there and neither rejected nor superseded: the channel then refuses decisions on it (409), and
  the sweep (every wait past its deadline) runs it once more, when the approval gate ends it as
  `expired`, "superseded by request X".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from promoter import settings
from promoter.aws.dynamodb import all_items
from promoter.aws.gate_store import waiting_of
from promoter.exceptions import GateStoreError
from promoter.model.approvals import (
    ANNOUNCED_KEY,
    REJECTION_KEY,
    REQUESTER_KEY,
    SUPERSEDED_BY_KEY,
    TARGET_KEY,
    iso_time,
)
from promoter.model.verdicts import APPROVAL_GATE, Waiting

logger = logging.getLogger(__name__)


class ApprovalWaits:
    """Announcement and supersession of approval waits (gates table from settings unless given)."""

    def __init__(self, table_name: str | None = None, resource: Any = None) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(
            table_name or settings.gates_table_name()
        )

    def claim_announcement(self, wait: Waiting, now: float, requester: str, targets: Sequence[str]) -> bool:
        """Marks the wait announced at `now`, with what `promoter approvals` shows of it (the
        requester's ARN, "" when unknown; the targets, `repository:tag`); True for the one caller
        that marked it, False when it was announced already, was superseded or has ended. Raises
        GateStoreError (retryable) when the table fails."""
        return self._update(
            wait,
            "SET #announced = :now, #requester = :requester, #target = :targets",
            "attribute_exists(pk) AND attribute_not_exists(#announced) AND attribute_not_exists(#superseded)",
            {
                "#announced": ANNOUNCED_KEY,
                "#requester": REQUESTER_KEY,
                "#target": TARGET_KEY,
                "#superseded": SUPERSEDED_BY_KEY,
            },
            {":now": iso_time(now), ":requester": requester, ":targets": list(targets)},
        )

    def open_waits(self, rule: str) -> list[Waiting]:
        """The approval waits of `rule` still open to decisions (neither rejected nor superseded),
        whatever their image. A Scan with a filter: a gates table holds the waits of the moment."""
        from boto3.dynamodb.conditions import Attr

        condition = (
            Attr("gate").eq(APPROVAL_GATE)
            & Attr("rule").eq(rule)
            & Attr(SUPERSEDED_BY_KEY).not_exists()
            & Attr(REJECTION_KEY).not_exists()
        )
        try:
            items = all_items(self._table.scan, {"FilterExpression": condition, "ConsistentRead": True})
        except (ClientError, BotoCoreError) as exc:
            raise GateStoreError(f"approval waits of rule {rule} not read: {exc}") from exc
        return [waiting_of(item) for item in items]

    def supersede(self, wait: Waiting, by_request: str, now: float) -> bool:
        """Ends `wait` in favour of the request `by_request`: True when this call did, False when
        the wait had ended, was rejected or was superseded already."""
        return self._update(
            wait,
            "SET #superseded = :by, #deadline = :now",
            "attribute_exists(pk) AND attribute_not_exists(#rejection) AND attribute_not_exists(#superseded)",
            {"#superseded": SUPERSEDED_BY_KEY, "#deadline": "deadline", "#rejection": REJECTION_KEY},
            {":by": by_request, ":now": int(now)},
        )

    def _update(
        self, wait: Waiting, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        try:
            self._table.update_item(
                Key={"pk": wait.pk, "sk": wait.sk},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise GateStoreError(f"approval wait {wait.wait_id} ({wait.pk}) not updated: {exc}") from exc
        except BotoCoreError as exc:
            raise GateStoreError(f"approval wait {wait.wait_id} ({wait.pk}) not updated: {exc}") from exc
        return True
