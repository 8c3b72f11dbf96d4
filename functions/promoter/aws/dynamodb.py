"""DynamoDB reads that span pages: a Query or Scan returns at most 1 MB (or `Limit` items) a call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def all_items(read: Callable[..., Mapping[str, Any]], kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every item of a Query or Scan (`read` is `table.query` or `table.scan`), following
    `LastEvaluatedKey` until the last page. The service's errors propagate unchanged: the caller
    maps them to its own."""
    request = dict(kwargs)
    items: list[dict[str, Any]] = []
    while True:
        response = read(**request)
        items.extend(response.get("Items") or ())
        if "LastEvaluatedKey" not in response:
            return items
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
