"""Result events: every executed action is announced on the promoter's bus, so deploy pipelines
and chat notifications can subscribe (`Image Promoted`, `Image Promotion Failed`,
`Image Promotion Blocked`), and so is a target tag written behind the promoter's back
(`Image Written Outside The Promoter`: repository, tag, digest, when, and what the promoter expected
there).

Publishing is best effort, like the history: ECR is the source of truth, and a result that could
not be published is logged, never a reason to redo a promotion. The detail-types differ from the
request's, so the request rule can never match a result (no loops).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from promoter import settings
from promoter.model.approvals import decisions_of
from promoter.model.outcomes import (
    ALREADY_PRESENT,
    FAILED_OUTCOMES,
    FOREIGN,
    KEPT,
    MAX_METADATA_BYTES,
    MAX_REASON_BYTES,
    MAX_REQUESTED_BY_BYTES,
    PROMOTED,
    REJECTED,
    ActionResult,
    clip,
)
from promoter.model.plan import Provenance

logger = logging.getLogger(__name__)

# PutEvents takes at most 10 entries per call, and 256 KB of entries in all (EventBridge quotas;
# an entry's size is its Time (14 bytes), Source, DetailType, Detail and Resources in UTF-8): calls
# are split on both. An entry alone always fits: free text in it is cut (outcomes.clip).
MAX_ENTRIES_PER_PUT = 10
MAX_BYTES_PER_PUT = 256 * 1024
ENTRY_TIME_BYTES = 14
# A tag kept on a newer image by design is announced with the promotion it belongs to, never as blocked.
PROMOTED_OUTCOMES = frozenset({PROMOTED, ALREADY_PRESENT, KEPT})


class ResultSink(Protocol):
    """Where results are announced."""

    def publish(self, results: Sequence[ActionResult], provenance: Provenance) -> None: ...


def detail_type_for(outcome: str) -> str:
    """Promoted (or already there, or kept on a newer image by design); failed (a conflict, a gate
    timeout, an expired wait); a write outside the promoter; anything else did not happen for a
    stated reason (a blocking finding, a pending scan, a skipped target, a person's rejection):
    blocked. A rejection is final, and a failure for the CLI's exit code (FAILED_OUTCOMES), but a
    person refused it: it is announced as blocked, as issue 20 says, not as a fault."""
    if outcome == FOREIGN:
        return settings.OUT_OF_BAND_DETAIL_TYPE
    if outcome in PROMOTED_OUTCOMES:
        return settings.PROMOTED_DETAIL_TYPE
    if outcome == REJECTED:
        return settings.BLOCKED_DETAIL_TYPE
    if outcome in FAILED_OUTCOMES:
        return settings.FAILED_DETAIL_TYPE
    return settings.BLOCKED_DETAIL_TYPE


def result_detail(result: ActionResult, provenance: Provenance) -> dict[str, Any]:
    """The `detail` of a result event (keys in the style of ECR's own events)."""
    if result.outcome == FOREIGN:
        return foreign_detail(result)
    return {
        "source": {
            "repository-name": result.source_repository,
            "image-tag": result.source_tag,
            "image-digest": result.source_digest,
        },
        "target": {
            "repository-name": result.target_repository,
            "image-tag": result.target_tag,
            "image-digest": result.target_digest or "",
        },
        "image-digest": result.source_digest,
        "tags": [result.target_tag],
        "rule": result.rule,
        "trigger": provenance.trigger,
        "request-id": provenance.request_id,
        "requested-by": clip(provenance.requested_by, MAX_REQUESTED_BY_BYTES),
        "authenticated-as": provenance.authenticated_as,
        "reason": clip(provenance.reason, MAX_REASON_BYTES),
        "metadata": carried_metadata(provenance.metadata),
        "outcome": result.outcome,
        "outcome-reason": clip(result.reason or "", MAX_REASON_BYTES),
        "finding-severity-counts": dict(result.blocking_findings or {}),
        "signature": dict(result.signature or {}),
        "approval": decisions_of(result.evidence),
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def foreign_detail(result: ActionResult) -> dict[str, Any]:
    """The `detail` of `Image Written Outside The Promoter`: what was written where and when, and
    the digest the promoter last placed on that tag ("" when it never placed one)."""
    return {
        "repository-name": result.target_repository,
        "image-tag": result.target_tag,
        "image-digest": result.target_digest or "",
        "time": result.written_at or "",
        "expected-digest": result.expected_digest or "",
        "rules": [name for name in result.rule.split(",") if name],
        "target-account": result.target_account or "",
        "target-region": result.target_region or "",
        "outcome": result.outcome,
        "outcome-reason": clip(result.reason or "", MAX_REASON_BYTES),
        "detected-at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def carried_metadata(metadata: Any) -> dict[str, Any]:
    """A request's metadata as results carry it: the object itself when it fits, else its JSON text
    cut with the marker, under `truncated`."""
    if not metadata:
        return {}
    text = json.dumps(metadata, sort_keys=True, default=str)
    if len(text.encode("utf-8")) <= MAX_METADATA_BYTES:
        return dict(metadata)
    return {"truncated": clip(text, MAX_METADATA_BYTES)}


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge counts it against the 256 KB of a PutEvents call."""
    text = entry.get("Source", "") + entry.get("DetailType", "") + entry.get("Detail", "")
    text += "".join(entry.get("Resources") or ())
    return ENTRY_TIME_BYTES + len(text.encode("utf-8"))


def put_batches(entries: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The entries in order, split into PutEvents calls of at most 10 entries and 256 KB."""
    batches: list[list[dict[str, Any]]] = []
    size = 0
    for entry in entries:
        needed = entry_size(entry)
        if not batches or len(batches[-1]) >= MAX_ENTRIES_PER_PUT or size + needed > MAX_BYTES_PER_PUT:
            batches.append([])
            size = 0
        batches[-1].append(entry)
        size += needed
    return batches


class EventBridgeResults:
    """`ResultSink` on EventBridge PutEvents (bus and source from settings unless given)."""

    def __init__(self, client: Any = None, bus_name: str | None = None, source: str | None = None) -> None:
        self._events = client or boto3.client("events")
        self._bus = bus_name or settings.event_bus_name()
        self._source = source or settings.request_event_source()

    def publish(self, results: Sequence[ActionResult], provenance: Provenance) -> None:
        entries = [
            {
                "EventBusName": self._bus,
                "Source": self._source,
                "DetailType": detail_type_for(r.outcome),
                "Detail": json.dumps(result_detail(r, provenance)),
            }
            for r in results
        ]
        for chunk in put_batches(entries):
            try:
                response = self._events.put_events(Entries=chunk)
            except (ClientError, BotoCoreError) as exc:
                logger.error("%d result event(s) not published: %s", len(chunk), exc)
                continue
            if response.get("FailedEntryCount"):
                logger.error("%d result event(s) not published", response["FailedEntryCount"])
