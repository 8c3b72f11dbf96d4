"""The gates table: promotions waiting on a gate (`promoter.model.verdicts.GateStore` on DynamoDB).

One record per image, rule, gate and request: `pk` = "<repository>@<digest>", `sk` =
"<rule>#<gate>#<event_id>", with `gate`, `rule`, the event to run again (`event`, JSON), its own
`deadline`, `expiration` (the TTL) and `wait_id` (a short stable id; the `by-wait-id` index finds a
wait by it). Whatever else a gate keeps on its record (an approval gate's `approvals`, `rejection`,
`requester`, `target`) is handed back in `Waiting.data`, and written by that gate's own adapter.

Timeline of a wait: `hold` puts the record only if it is not there (a redelivered event never
extends its own deadline, and never overwrites a gate's data); `release` deletes it once a verdict
is final; the TTL on `expiration` cleans up what nobody resumed. A record written before waits were
kept per gate (`sk` = "<rule>#<event_id>", no `gate`) is read as a scan wait until it expires.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from promoter import settings
from promoter.aws.dynamodb import all_items
from promoter.exceptions import GateStoreError
from promoter.model.verdicts import SCAN_GATE, Waiting, event_from_item, event_to_item

logger = logging.getLogger(__name__)

# Kept this long after the deadline, so a late scan event still finds the record and says why.
GATE_RECORD_GRACE_SECONDS = 24 * 3600
# The index that finds a wait by its short id (`promoter approve <wait_id>`): partition key `wait_id`.
WAIT_ID_INDEX = "by-wait-id"
# The attributes every record has; the rest of an item is its gate's data (`Waiting.data`).
RECORD_ATTRIBUTES = frozenset({"pk", "sk", "gate", "rule", "event", "deadline", "expiration", "wait_id"})


class DynamoDbGates:
    """`GateStore` on the gates table (name from settings unless given)."""

    def __init__(
        self, table_name: str | None = None, resource: Any = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(
            table_name or settings.gates_table_name()
        )
        self._clock = clock

    def hold(self, waiting: Waiting) -> Waiting:
        """Records the wait unless it is recorded already; returns the record that holds (its
        deadline and data)."""
        item = {
            **dict(waiting.data),
            "pk": waiting.pk,
            "sk": waiting.sk,
            "gate": waiting.gate,
            "rule": waiting.rule,
            "event": json.dumps(event_to_item(waiting.event)),
            "deadline": int(waiting.deadline),
            "expiration": int(waiting.deadline) + GATE_RECORD_GRACE_SECONDS,
            "wait_id": waiting.wait_id,
        }
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
            return waiting
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise GateStoreError(f"{waiting.gate} gate not recorded for {item['pk']}: {exc}") from exc
        except BotoCoreError as exc:
            raise GateStoreError(f"{waiting.gate} gate not recorded for {item['pk']}: {exc}") from exc
        try:
            held = self._table.get_item(Key={"pk": item["pk"], "sk": item["sk"]}, ConsistentRead=True).get(
                "Item"
            )
        except (ClientError, BotoCoreError) as exc:
            raise GateStoreError(f"{waiting.gate} gate of {item['pk']} not read: {exc}") from exc
        return waiting_of(held) if held else waiting

    def waiting_for(self, repository: str, digest: str) -> list[Waiting]:
        """Every wait on the image, whatever the gate (old records included, as scan waits)."""
        from boto3.dynamodb.conditions import Key

        kwargs = {"KeyConditionExpression": Key("pk").eq(f"{repository}@{digest}"), "ConsistentRead": True}
        try:
            items = all_items(self._table.query, kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise GateStoreError(f"gates of {repository}@{digest} not read: {exc}") from exc
        return [waiting_of(item) for item in items]

    def find(self, wait_id: str) -> Waiting | None:
        """The wait with this id, through the `by-wait-id` index (None: none, or it ended)."""
        from boto3.dynamodb.conditions import Key

        kwargs = {"IndexName": WAIT_ID_INDEX, "KeyConditionExpression": Key("wait_id").eq(wait_id)}
        try:
            items = all_items(self._table.query, kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise GateStoreError(f"wait {wait_id} not read: {exc}") from exc
        found = [waiting_of(item) for item in items]
        return found[0] if found else None

    def expired(self, now: float) -> list[Waiting]:
        """Every wait past its own deadline, whatever the gate."""
        from boto3.dynamodb.conditions import Attr

        return self._scan({"FilterExpression": Attr("deadline").lt(int(now))})

    def all_waiting(self) -> list[Waiting]:
        """Every promotion waiting on a gate (a Scan: for `promoter status`, not the hot path)."""
        return self._scan({})

    def _scan(self, kwargs: dict[str, Any]) -> list[Waiting]:
        try:
            items = all_items(self._table.scan, kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise GateStoreError(f"gates table not read: {exc}") from exc
        return [waiting_of(item) for item in items]

    def release(self, waiting: Waiting) -> None:
        key = {"pk": waiting.pk, "sk": waiting.sk}
        try:
            self._table.delete_item(Key=key)
        except (ClientError, BotoCoreError) as exc:  # the TTL removes it later; the verdict stands
            logger.warning("gate record %s not removed: %s", key, exc)


def waiting_of(item: dict[str, Any]) -> Waiting:
    """A gates table item as a `Waiting`; an item without `gate` is an old-format scan wait."""
    repository, _, digest = str(item["pk"]).rpartition("@")
    legacy = "gate" not in item
    data = {k: _plain(v) for k, v in item.items() if k not in RECORD_ATTRIBUTES}
    return Waiting(
        repository,
        digest,
        str(item["rule"]),
        SCAN_GATE if legacy else str(item["gate"]),
        event_from_item(json.loads(item["event"])),
        float(item["deadline"]),
        str(item.get("wait_id") or ""),
        data,
        legacy,
    )


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as ints or floats, sets as sorted lists, all the way down."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    return value
