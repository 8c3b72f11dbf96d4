"""Where the scheduled reconciliation keeps its place between invocations: one DynamoDB item.

Table: partition key `id` (S). Item `id` = "scheduled" holds the `Cursor` of the unfinished pass;
no item means the next run starts a new pass. Written only when a run stops early, deleted when a
pass completes, so a run over a consistent registry that finishes in time writes nothing. Item
`id` = "scheduled-lease" is the lease of the run in progress (`DynamoDbRunLease`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

from promoter.workflows.reconcile import Cursor

RECONCILE_TABLE_ENV = "RECONCILE_TABLE"
DEFAULT_RECONCILE_TABLE = "image-promoter-reconcile"
SCHEDULED_PASS_ID = "scheduled"
SCHEDULED_LEASE_ID = "scheduled-lease"
# Clock skew between two Lambda hosts that the lease's expiry allows for.
LEASE_MARGIN_SECONDS = 5


def reconcile_table_name() -> str:
    """The cursor table (env set by the stack, else the local default)."""
    return os.environ.get(RECONCILE_TABLE_ENV, DEFAULT_RECONCILE_TABLE)


class DynamoDbCursorStore:
    """`CursorStore` on the reconcile table; `pass_id` names the pass (one scheduled pass)."""

    def __init__(
        self, table_name: str | None = None, resource: Any = None, pass_id: str = SCHEDULED_PASS_ID
    ) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(table_name or reconcile_table_name())
        self._key = {"id": pass_id}

    def load(self) -> Cursor | None:
        item = self._table.get_item(Key=self._key, ConsistentRead=True).get("Item")
        if not item:
            return None
        return Cursor(
            rule=str(item["rule"]),
            repository=str(item["repository"]),
            next_token=str(item["next_token"]) if item.get("next_token") else None,
        )

    def save(self, cursor: Cursor) -> None:
        item = {**self._key, "rule": cursor.rule, "repository": cursor.repository}
        if cursor.next_token:
            item["next_token"] = cursor.next_token
        self._table.put_item(Item=item)

    def clear(self) -> None:
        self._table.delete_item(Key=self._key)


class DynamoDbRunLease:
    """One scheduled reconciliation at a time, without reserved concurrency: a lease item on the
    reconcile table, taken with a conditional PutItem and given back with a conditional DeleteItem.

    Why a lease: the schedule guarantees nothing here. EventBridge invokes the function
    asynchronously, and Lambda's async invocations are at-least-once (a run can start twice), and
    a run may last longer than the schedule's rate; two runs at once would write the same cursor.
    Reserved concurrency 1 would also prevent that, but it fails the deploy in accounts whose
    unreserved concurrency would drop below its floor (new accounts often have 10 in all).

    The lease expires when its holder's invocation must have ended (its remaining time plus
    `LEASE_MARGIN_SECONDS`), so a run killed at its timeout blocks the next one no longer than that.
    """

    def __init__(
        self,
        table_name: str | None = None,
        resource: Any = None,
        lease_id: str = SCHEDULED_LEASE_ID,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(table_name or reconcile_table_name())
        self._key = {"id": lease_id}
        self._clock = clock

    def try_acquire(self, holder: str, seconds: float) -> str | None:
        """Takes the lease for `seconds`; None when taken, else why not (who holds it, until when).

        Raises botocore's ClientError for any DynamoDB failure other than the lease being held."""
        now = self._clock()
        try:
            self._table.put_item(
                Item={**self._key, "holder": holder, "expires_at": Decimal(str(round(now + seconds, 3)))},
                # Free, or its holder's invocation has ended (it expired): then it is ours.
                ConditionExpression="attribute_not_exists(id) OR expires_at < :now",
                ExpressionAttributeValues={":now": Decimal(str(round(now, 3)))},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            item = exc.response.get("Item") or {}
            other = (item.get("holder") or {}).get("S", "another run")
            until = float((item.get("expires_at") or {}).get("N", now))
            return f"the reconciliation lease is held by {other} for {max(until - now, 0):.0f} s more"
        return None

    def release(self, holder: str) -> bool:
        """Gives the lease back if `holder` still has it; False when it had expired and was taken."""
        try:
            self._table.delete_item(
                Key=self._key,
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": holder},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True
