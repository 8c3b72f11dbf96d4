"""Where the scheduled reconciliation keeps its place between invocations: one DynamoDB item.

Table: partition key `id` (S). Item `id` = "scheduled" holds the `Cursor` of the unfinished pass;
no item means the next run starts a new pass. Written only when a run stops early, deleted when a
pass completes, so a run over a consistent registry that finishes in time writes nothing.
"""

from __future__ import annotations

import os
from typing import Any

import boto3

from promoter.workflows.reconcile import Cursor

RECONCILE_TABLE_ENV = "RECONCILE_TABLE"
DEFAULT_RECONCILE_TABLE = "image-promoter-reconcile"
SCHEDULED_PASS_ID = "scheduled"


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
