"""The gates table: promotions waiting on a scan gate (`promoter.gates.scan.GateStore` on DynamoDB).

Keyed on the image (`pk` = "<repository>@<digest>") and the rule and request (`sk`), with the event
to run again and a deadline; a put is conditional, so a redelivered event never extends its own
deadline; the TTL on `expiration` cleans up what nobody resumed.
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
from promoter.gates.scan import Waiting, event_from_item, event_to_item, image_key

logger = logging.getLogger(__name__)

# Kept this long after the deadline, so a late scan event still finds the record and says why.
GATE_RECORD_GRACE_SECONDS = 24 * 3600


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
        """Records the wait unless it is recorded already; returns the record that holds (its deadline)."""
        item = {
            "pk": image_key(waiting.repository, waiting.digest),
            "sk": f"{waiting.rule}#{waiting.event.event_id}",
            "rule": waiting.rule,
            "event": json.dumps(event_to_item(waiting.event)),
            "deadline": int(waiting.deadline),
            "expiration": int(waiting.deadline) + GATE_RECORD_GRACE_SECONDS,
        }
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
            return waiting
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise GateStoreError(f"gate not recorded for {item['pk']}: {exc}") from exc
        except BotoCoreError as exc:
            raise GateStoreError(f"gate not recorded for {item['pk']}: {exc}") from exc
        held = self._table.get_item(Key={"pk": item["pk"], "sk": item["sk"]}, ConsistentRead=True).get("Item")
        return _waiting(held) if held else waiting

    def waiting_for(self, repository: str, digest: str) -> list[Waiting]:
        from boto3.dynamodb.conditions import Key

        try:
            response = self._table.query(KeyConditionExpression=Key("pk").eq(image_key(repository, digest)))
        except (ClientError, BotoCoreError) as exc:
            raise GateStoreError(f"gates of {repository}@{digest} not read: {exc}") from exc
        return [_waiting(item) for item in response.get("Items") or ()]

    def expired(self, now: float) -> list[Waiting]:
        from boto3.dynamodb.conditions import Attr

        return self._scan({"FilterExpression": Attr("deadline").lt(int(now))})

    def all_waiting(self) -> list[Waiting]:
        """Every promotion waiting on a scan (a Scan: for `promoter status`, not the hot path)."""
        return self._scan({})

    def _scan(self, kwargs: dict[str, Any]) -> list[Waiting]:
        try:
            items = all_items(self._table.scan, kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise GateStoreError(f"gates table not read: {exc}") from exc
        return [_waiting(item) for item in items]

    def release(self, waiting: Waiting) -> None:
        key = {
            "pk": image_key(waiting.repository, waiting.digest),
            "sk": f"{waiting.rule}#{waiting.event.event_id}",
        }
        try:
            self._table.delete_item(Key=key)
        except (ClientError, BotoCoreError) as exc:  # the TTL removes it later; the verdict stands
            logger.warning("gate record %s not removed: %s", key, exc)


def _waiting(item: dict[str, Any]) -> Waiting:
    repository, _, digest = str(item["pk"]).rpartition("@")
    return Waiting(
        repository,
        digest,
        str(item["rule"]),
        event_from_item(json.loads(item["event"])),
        float(item["deadline"]),
    )
