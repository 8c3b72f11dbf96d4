"""Result events: every executed action is announced on the promoter's bus, so deploy pipelines
and chat notifications can subscribe (`Image Promoted`, `Image Promotion Failed`,
`Image Promotion Blocked`).

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
from promoter.model.outcomes import ALREADY_PRESENT, CONFLICT, FAILED, GATE_TIMEOUT, PROMOTED, ActionResult
from promoter.model.plan import Provenance

logger = logging.getLogger(__name__)

# PutEvents takes at most 10 entries per call (EventBridge quotas).
MAX_ENTRIES_PER_PUT = 10
PROMOTED_OUTCOMES = frozenset({PROMOTED, ALREADY_PRESENT})
# A gate that never opened is final: the promotion failed (a pending one is still "blocked").
FAILED_OUTCOMES = frozenset({FAILED, CONFLICT, GATE_TIMEOUT})


class ResultSink(Protocol):
    """Where results are announced."""

    def publish(self, results: Sequence[ActionResult], provenance: Provenance) -> None: ...


def detail_type_for(outcome: str) -> str:
    """Promoted (or already there); failed (a conflict, a gate timeout); anything else did not
    happen for a stated reason (a blocking finding, a pending scan, a floating tag kept back): blocked."""
    if outcome in PROMOTED_OUTCOMES:
        return settings.PROMOTED_DETAIL_TYPE
    if outcome in FAILED_OUTCOMES:
        return settings.FAILED_DETAIL_TYPE
    return settings.BLOCKED_DETAIL_TYPE


def result_detail(result: ActionResult, provenance: Provenance) -> dict[str, Any]:
    """The `detail` of a result event (keys in the style of ECR's own events)."""
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
        "requested-by": provenance.requested_by,
        "authenticated-as": provenance.authenticated_as,
        "reason": provenance.reason,
        "outcome": result.outcome,
        "outcome-reason": result.reason or "",
        "finding-severity-counts": dict(result.blocking_findings or {}),
        "signature": dict(result.signature or {}),
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


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
        for start in range(0, len(entries), MAX_ENTRIES_PER_PUT):
            chunk = entries[start : start + MAX_ENTRIES_PER_PUT]
            try:
                response = self._events.put_events(Entries=chunk)
            except (ClientError, BotoCoreError) as exc:
                logger.warning("%d result event(s) not published: %s", len(chunk), exc)
                continue
            if response.get("FailedEntryCount"):
                logger.warning("%d result event(s) not published", response["FailedEntryCount"])
