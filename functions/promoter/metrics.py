"""CloudWatch metrics (EMF through Powertools) for what the promoter did: one place names them."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from promoter.model.outcomes import (
    ALREADY_PRESENT,
    BLOCKED,
    CONFLICT,
    EXPIRED,
    FAILED,
    FOREIGN,
    GATE_PENDING,
    GATE_TIMEOUT,
    KEPT,
    PROMOTED,
    REJECTED,
    SKIPPED,
    UNVERIFIED,
    ActionResult,
)
from promoter.model.verdicts import FAILED as FAILED_VERDICT
from promoter.model.verdicts import PENDING as PENDING_VERDICT
from promoter.workflows.service import EventResult

PROMOTED_METRIC = "ImagesPromoted"
ALREADY_PRESENT_METRIC = "ImagesAlreadyPresent"
# A success: the target tag stayed on a newer image (a floating tag on a higher version, a tag on a
# later push), by design.
KEPT_METRIC = "TargetsKept"
CONFLICT_METRIC = "TagConflicts"
FAILED_METRIC = "PromotionFailures"
SKIPPED_METRIC = "PromotionsSkipped"
BLOCKED_METRIC = "PromotionsBlocked"
# A promotion held by a gate, by the gate it waits on (`pending_gate`): the scan's public name stays.
GATE_PENDING_METRIC = "PromotionsAwaitingScan"
APPROVAL_PENDING_METRIC = "PromotionsAwaitingApproval"
GATE_TIMEOUT_METRIC = "ScanGateTimeouts"
UNVERIFIED_METRIC = "PromotionsUnverified"
# Issue 20: a person rejected the promotion; a wait ran past its deadline without a decision.
REJECTED_METRIC = "PromotionsRejected"
EXPIRED_METRIC = "PromotionsExpired"
# A gate that could not decide for a reason no retry fixes (a missing grant such as
# ecr:DescribeImageScanFindings, a disabled KMS key): the action failed, named (an alarm watches it).
# Counted besides PromotionFailures. A public name: keep it.
GATE_FAILURES_METRIC = "GateFailures"
INVALID_EVENT_METRIC = "InvalidEvents"
# A duplicate delivery answered from the idempotency record: counted apart, so that a redelivered
# event neither counts as a second promotion nor adds its blobs and bytes again.
REPLAYED_METRIC = "DuplicatesAbsorbed"
IGNORED_EVENT_METRIC = "EventsIgnored"
# Outcomes the history table did not take: the promotion stands (ECR is the truth), the audit has a gap.
HISTORY_WRITE_FAILURES_METRIC = "HistoryWriteFailures"
BLOBS_MOUNTED_METRIC = "BlobsMounted"
BLOBS_COPIED_METRIC = "BlobsCopied"
BYTES_COPIED_METRIC = "BytesCopied"
# An exception no outcome names (a bug, an SDK without an operation, a dependency's surprise): the
# record goes back to the queue and the UnexpectedErrors alarm fires. A public name: keep it.
UNEXPECTED_ERROR_METRIC = "UnexpectedErrors"
# A target tag written or moved by anything but the promoter (issue 18; an alarm watches it). Public.
OUT_OF_BAND_WRITES_METRIC = "OutOfBandWrites"

_OUTCOME_METRICS = {
    PROMOTED: PROMOTED_METRIC,
    ALREADY_PRESENT: ALREADY_PRESENT_METRIC,
    KEPT: KEPT_METRIC,
    CONFLICT: CONFLICT_METRIC,
    FAILED: FAILED_METRIC,
    SKIPPED: SKIPPED_METRIC,
    BLOCKED: BLOCKED_METRIC,
    GATE_PENDING: GATE_PENDING_METRIC,
    GATE_TIMEOUT: GATE_TIMEOUT_METRIC,
    UNVERIFIED: UNVERIFIED_METRIC,
    REJECTED: REJECTED_METRIC,
    EXPIRED: EXPIRED_METRIC,
    FOREIGN: OUT_OF_BAND_WRITES_METRIC,
}
# A gate-pending outcome counts under the metric of the gate it waits on (none named: a scan, as
# before gates other than the scan could wait).
_PENDING_METRICS = {"approval": APPROVAL_PENDING_METRIC}


def pending_gate(action: ActionResult) -> str | None:
    """The gate a gate-pending result waits on: the first gate of its evidence still pending (the
    one its reason names); None when its evidence names none."""
    return next((e.get("gate") for e in action.evidence or () if e.get("state") == PENDING_VERDICT), None)


def outcome_metric(action: ActionResult) -> str:
    """The metric an action's outcome counts under."""
    if action.outcome == GATE_PENDING:
        return _PENDING_METRICS.get(str(pending_gate(action)), GATE_PENDING_METRIC)
    return _OUTCOME_METRICS[action.outcome]


def record_event_result(metrics: Metrics, result: EventResult) -> None:
    """Adds one event's outcomes to the invocation's metrics."""
    if result.error is not None:
        metrics.add_metric(name=FAILED_METRIC, unit=MetricUnit.Count, value=1)
    elif not result.results:
        metrics.add_metric(name=IGNORED_EVENT_METRIC, unit=MetricUnit.Count, value=1)
    if result.history_failures:
        metrics.add_metric(
            name=HISTORY_WRITE_FAILURES_METRIC, unit=MetricUnit.Count, value=result.history_failures
        )
    for action in result.results:
        if action.replayed:
            metrics.add_metric(name=REPLAYED_METRIC, unit=MetricUnit.Count, value=1)
            continue
        metrics.add_metric(name=outcome_metric(action), unit=MetricUnit.Count, value=1)
        if action.outcome == FAILED and any(e.get("state") == FAILED_VERDICT for e in action.evidence or ()):
            metrics.add_metric(name=GATE_FAILURES_METRIC, unit=MetricUnit.Count, value=1)
        if action.stats.blobs_mounted:
            metrics.add_metric(
                name=BLOBS_MOUNTED_METRIC, unit=MetricUnit.Count, value=action.stats.blobs_mounted
            )
        if action.stats.blobs_copied:
            metrics.add_metric(
                name=BLOBS_COPIED_METRIC, unit=MetricUnit.Count, value=action.stats.blobs_copied
            )
            metrics.add_metric(
                name=BYTES_COPIED_METRIC, unit=MetricUnit.Bytes, value=action.stats.bytes_copied
            )


def record_invalid_event(metrics: Metrics) -> None:
    metrics.add_metric(name=INVALID_EVENT_METRIC, unit=MetricUnit.Count, value=1)


def record_unexpected_error(metrics: Metrics) -> None:
    metrics.add_metric(name=UNEXPECTED_ERROR_METRIC, unit=MetricUnit.Count, value=1)
