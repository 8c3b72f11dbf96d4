"""The scheduled reconciliation's Lambda entry point (`promoter.reconcile_handler.handle`).

An EventBridge schedule invokes it; the payload is ignored. It shares the promoter's runtime (the
staged config, the ECR client, the idempotency layer, the history) and its idempotent path, and
stops before the invocation's time runs out, leaving its cursor for the next run. A run that stops
on a fault a later run can outlive is still answered normally: the next scheduled run resumes.

One run at a time: a run first takes the lease on the reconcile table (`DynamoDbRunLease`, which
says why a lease and not reserved concurrency); a run that finds it held exits at once, logged and
counted (`ReconcileRunsSkipped`). An exception no outcome names is logged at ERROR with its
traceback, counted as `UnexpectedErrors` and raised (the invocation fails: Lambda's Errors too).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from promoter import settings
from promoter.aws.idempotency import idempotent_runner
from promoter.aws.reconcile_state import LEASE_MARGIN_SECONDS, DynamoDbCursorStore, DynamoDbRunLease
from promoter.aws.registry import EcrRegistry
from promoter.handler import runtime
from promoter.metrics import record_event_result, record_unexpected_error
from promoter.workflows.out_of_band import repair_note
from promoter.workflows.promote import Promoter
from promoter.workflows.reconcile import RECONCILE_EVENT_PREFIX, ReconcileReport, reconcile
from promoter.workflows.rollback import rollback_hold
from promoter.workflows.service import EventResult

logger = Logger(service=settings.SERVICE_NAME)
metrics = Metrics(namespace=settings.METRICS_NAMESPACE, service=settings.SERVICE_NAME)

IMAGES_CHECKED_METRIC = "ReconcileImagesChecked"
IN_SYNC_METRIC = "ReconcileTargetsInSync"
BEHIND_METRIC = "ReconcileTargetsBehind"
INCOMPLETE_METRIC = "ReconcileRunsIncomplete"
ERRORS_METRIC = "ReconcileErrors"
SKIPPED_METRIC = "ReconcileRunsSkipped"


@cache
def cursor_store() -> DynamoDbCursorStore:
    return DynamoDbCursorStore(resource=boto3.session.Session().resource("dynamodb"))


@cache
def run_lease() -> DynamoDbRunLease:
    return DynamoDbRunLease(resource=boto3.session.Session().resource("dynamodb"))


def record_report(report: ReconcileReport) -> None:
    """The sweep's own counts, plus the usual per-outcome metrics of what it ran."""
    metrics.add_metric(name=IMAGES_CHECKED_METRIC, unit=MetricUnit.Count, value=report.images)
    metrics.add_metric(name=IN_SYNC_METRIC, unit=MetricUnit.Count, value=report.in_sync)
    metrics.add_metric(name=BEHIND_METRIC, unit=MetricUnit.Count, value=len(report.results))
    metrics.add_metric(name=INCOMPLETE_METRIC, unit=MetricUnit.Count, value=int(not report.complete))
    metrics.add_metric(name=ERRORS_METRIC, unit=MetricUnit.Count, value=len(report.errors))
    if report.results or report.history_failures:
        record_event_result(
            metrics,
            EventResult(RECONCILE_EVENT_PREFIX, report.results, history_failures=report.history_failures),
        )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Schedule -> one bounded reconcile run; returns the report (also logged), or why it did not run."""
    try:
        lease = run_lease()
        holder = context.aws_request_id
        busy = lease.try_acquire(holder, context.get_remaining_time_in_millis() / 1000 + LEASE_MARGIN_SECONDS)
        if busy:
            logger.info("reconcile run skipped: another run is in progress", reason=busy)
            metrics.add_metric(name=SKIPPED_METRIC, unit=MetricUnit.Count, value=1)
            return {"skipped": busy}
        try:
            return _run(context)
        finally:
            if not lease.release(holder):
                logger.warning("reconcile lease had expired and was taken by another run", holder=holder)
    except Exception:
        logger.exception("unexpected error: the reconcile run failed")
        record_unexpected_error(metrics)
        raise


def _run(context: Any) -> dict[str, Any]:
    state = runtime()
    registry = EcrRegistry(state.ecr)
    promoter = Promoter(registry, attestor=state.attestor)
    report = reconcile(
        state.config,
        registry,
        idempotent_runner(promoter, state.persistence, context),
        attestations=promoter if promoter.attests else None,
        history=state.history,
        cursors=cursor_store(),
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
        hold_back=rollback_hold(state.history),
        repair_note=repair_note(state.history),
        results=state.results,
    )
    record_report(report)
    logger.info("reconcile run", report=report.to_dict())
    return report.to_dict()
