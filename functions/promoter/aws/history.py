"""The promotion history: one DynamoDB item per executed action, to answer "what happened to
this target tag, when, from which digest, and why".

Keys: `pk` = "<target repository>:<target tag>" (the repository qualified as `app@<account>,<region>`
for a target in another registry), `sk` = "<UTC time>#<source digest>", so a Query on one target
returns its history in time order.

A write that fails raises `HistoryWriteError`; the caller decides what it means. For the Lambda and
the sweep, ECR stays the source of truth: the failure is logged at ERROR and counted, never a reason
to redo a promotion. For a break-glass `promoter promote` and a rollback the audit is part of the
action: they fail (exit 1). Free text (reasons, requested-by, a request's metadata) is cut with a
marker (outcomes.clip) so an item always fits DynamoDB's 400 KB.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from promoter import settings
from promoter.aws.dynamodb import all_items
from promoter.exceptions import HistoryWriteError
from promoter.model.approvals import decisions_of
from promoter.model.outcomes import (
    MAX_METADATA_BYTES,
    MAX_REASON_BYTES,
    MAX_REQUESTED_BY_BYTES,
    ActionResult,
    clip,
)
from promoter.model.plan import Provenance


class History(Protocol):
    """Where outcomes are recorded."""

    def record(self, event_id: str, result: ActionResult, provenance: Provenance | None = None) -> None:
        """Writes one record; raises HistoryWriteError when it could not be written."""
        ...


def history_key(repository: str, tag: str) -> str:
    return f"{repository}:{tag}"


def unwritable_text(provenance: Provenance) -> str | None:
    """Which free text of a provenance no record can hold ("requested-by", "reason", "metadata"),
    or None when every part can: a string that is not Unicode text, such as a lone surrogate
    (`"\\ud800"` in a request's JSON, or an undecodable byte of a command line). UTF-8 cannot encode
    it, so neither DynamoDB nor EventBridge would take the record or the result: a caller refuses
    such a request before it writes anything."""
    parts = (
        ("requested-by", provenance.requested_by),
        ("reason", provenance.reason),
        ("metadata", provenance.metadata),
    )
    return next((name for name, value in parts if not _is_text(value)), None)


def _is_text(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, Mapping):
        return all(_is_text(key) and _is_text(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(_is_text(item) for item in value)
    return True


def metadata_text(metadata: Any) -> str:
    """A request's metadata as the JSON text history keeps ("" when none), cut to fit."""
    if not metadata:
        return ""
    return clip(json.dumps(metadata, sort_keys=True, default=str), MAX_METADATA_BYTES)


class DynamoDbHistory:
    """`History` on the history table (name from settings unless given). `query_page_size` caps
    the items of one Query page (default: DynamoDB's 1 MB pages); reads follow every page."""

    def __init__(
        self, table_name: str | None = None, resource: Any = None, query_page_size: int | None = None
    ) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(
            table_name or settings.history_table_name()
        )
        self._page_size = query_page_size

    def record(self, event_id: str, result: ActionResult, provenance: Provenance | None = None) -> None:
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        why = provenance or Provenance()
        unwritable = unwritable_text(why)
        if unwritable is not None:  # callers refuse such text first; this keeps it a HistoryWriteError
            raise HistoryWriteError(
                f"history not recorded for {result.target_location}:{result.target_tag}: "
                f"its {unwritable} is not Unicode text"
            )
        item = {
            # Another account's or region's target is kept apart: `app@210987654321:v1`.
            "pk": history_key(result.target_location, result.target_tag),
            "sk": f"{at}#{result.source_digest}",
            "event_id": event_id,
            "rule": result.rule,
            "outcome": result.outcome,
            "source": f"{result.source_repository}:{result.source_tag}@{result.source_digest}",
            "target_digest": result.target_digest or "",
            "reason": clip(result.reason or "", MAX_REASON_BYTES),
            "blobs_mounted": result.stats.blobs_mounted,
            "blobs_copied": result.stats.blobs_copied,
            "bytes_copied": result.stats.bytes_copied,
            # Who and why (issue 5), and the parts of the keys as plain attributes for `promoter history`.
            "at": at,
            "trigger": why.trigger,
            "request_id": why.request_id,
            "requested_by": clip(why.requested_by, MAX_REQUESTED_BY_BYTES),
            "authenticated_as": why.authenticated_as,
            "request_reason": clip(why.reason, MAX_REASON_BYTES),
            "metadata": metadata_text(why.metadata),
            "source_repository": result.source_repository,
            "source_digest": result.source_digest,
            "target_repository": result.target_repository,
            "target_tag": result.target_tag,
            "blocking_findings": dict(result.blocking_findings or {}),
            # The signature that passed the rule's signature gate (verifier, identity, ...).
            "signature": dict(result.signature or {}),
            # The approval gate's decisions (issue 20): who approved or rejected, when and why, the
            # requester and the quorum; {} without an approval gate.
            "approval": decisions_of(result.evidence),
            "target_account": result.target_account or "",
            "target_region": result.target_region or "",
            # Issue 19: the digest of the promotion's attestation in the target repository ("" none).
            "attestation": result.attestation or "",
        }
        try:
            self._table.put_item(Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise HistoryWriteError(f"history not recorded for {item['pk']}: {exc}") from exc

    def for_target(self, repository: str, tag: str, newest_first: bool = False) -> list[dict[str, Any]]:
        """Every recorded outcome for a target tag (all Query pages), oldest first unless
        `newest_first`. `repository` is the target location (`app@210987654321,eu-west-1` for
        another registry's)."""
        from boto3.dynamodb.conditions import Key

        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(history_key(repository, tag)),
            "ScanIndexForward": not newest_first,
        }
        if self._page_size:
            kwargs["Limit"] = self._page_size
        return all_items(self._table.query, kwargs)

    def last_for_target(self, repository: str, tag: str) -> dict[str, Any] | None:
        """The newest record of a target tag (one Query of one item), None when there is none."""
        from boto3.dynamodb.conditions import Key

        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(history_key(repository, tag)), ScanIndexForward=False, Limit=1
        )
        items = response.get("Items") or ()
        return items[0] if items else None

    def find(
        self,
        repository: str | None = None,
        tag: str | None = None,
        digest: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Records, newest first, filtered by repository (source or target), target tag and digest
        (source or target). One target tag is a Query; anything wider is a Scan (operator's use)."""
        items = self.for_target(repository, tag) if repository and tag else all_items(self._table.scan, {})

        def keep(item: dict[str, Any]) -> bool:
            source = str(item.get("source", ""))
            target_repo, _, target_tag = str(item.get("pk", "")).rpartition(":")
            if repository and repository not in (target_repo, source.split(":", 1)[0].split("@", 1)[0]):
                return False
            if tag and tag != target_tag:
                return False
            return not digest or digest in (source.rpartition("@")[2], item.get("target_digest"))

        chosen = sorted((i for i in items if keep(i)), key=lambda i: str(i.get("sk", "")), reverse=True)
        return chosen[:limit] if limit else chosen
