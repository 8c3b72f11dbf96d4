"""The Lambda entry point: an SQS batch of EventBridge events in, partial batch failures out.

Retry policy, decided here:
- retried (the record is reported as a batch item failure, SQS redelivers it, and after
  `maxReceiveCount` moves it to the DLQ): throttling that outlasted botocore's backoff, ECR or
  DynamoDB faults, a blob transfer that broke, a promotion another invocation is running; and a
  message that is not an EventBridge event at all (only EventBridge writes to the queue, so this
  is a broken contract: it belongs in the DLQ, where the alarm shows it, not in a log line), and
  one that SQS says a principal sent, not EventBridge (`promoter.model.senders`: never promoted);
- not retried (the record succeeds; the outcome is logged and counted): conflicts on immutable
  tags, a source image deleted before we ran, a missing target repository, a manifest ECR refuses,
  an event whose detail is invalid (e.g. a promotion request without a repository), and events
  that ask for nothing. Redelivering those cannot change the answer.

Anything else a record raises is unexpected (a bug, a runtime SDK without an operation): it is
logged at ERROR with its traceback and the event id, counted as `UnexpectedErrors` (an alarm
watches it) and the record is handed back. Powertools' batch processor would log it at DEBUG only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from promoter import settings
from promoter.aws.gate_store import DynamoDbGates
from promoter.aws.history import DynamoDbHistory
from promoter.aws.idempotency import idempotent_runner, make_persistence
from promoter.aws.ledger import IdempotencyLedger
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.aws.results import EventBridgeResults
from promoter.exceptions import EventError, MalformedMessageError, PromoterError
from promoter.metrics import record_event_result, record_invalid_event, record_unexpected_error
from promoter.model.config import PromotionConfig, load_config
from promoter.model.events import PromotionRequested, parse_json_event
from promoter.model.senders import delivery_note, record_sender, sender_refusal
from promoter.settings import config_path  # the staged configuration; also what tests ask the handler for
from promoter.workflows.attest import Attestor, attestor_from_environment
from promoter.workflows.out_of_band import push_check
from promoter.workflows.promote import Promoter
from promoter.workflows.service import handle_delivered

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
ENGINE_LOGGER = "promoter"
logger = Logger(service=settings.SERVICE_NAME)
# The engine modules log through the standard library ("promoter.*", also used by the CLI); in the
# Lambda their records get the same JSON format and correlation id as the handler's own.
logging.getLogger(ENGINE_LOGGER)
copy_config_to_registered_loggers(source_logger=logger, include={ENGINE_LOGGER})
metrics = Metrics(namespace=settings.METRICS_NAMESPACE, service=settings.SERVICE_NAME)

TRACE_DISABLED_ENV = "POWERTOOLS_TRACE_DISABLED"


def _lambda_tracing() -> Callable[[Handler], Handler]:
    """Powertools Tracer's handler decorator when the stack turns X-Ray tracing on, else nothing.

    Constructing a Tracer imports the X-Ray SDK even when tracing is disabled: about 120 ms of
    every cold start (measured: `python -X importtime -c "import promoter.handler"`). The stack
    disables tracing by default (`POWERTOOLS_TRACE_DISABLED=true`: X-Ray's write actions need
    `Resource: *`), so the import is paid only by stacks that trace.
    """
    if os.environ.get(TRACE_DISABLED_ENV, "false").strip().lower() in {"1", "true"}:
        return lambda handler: handler
    from aws_lambda_powertools import Tracer

    return Tracer(service=settings.SERVICE_NAME).capture_lambda_handler


def _batch_processor() -> BatchProcessor:
    """A processor per invocation: it holds the batch's successes and failures, and a shared one
    mixed them up between invocations running side by side in one process (the local event source
    mapping, the benchmarks), answering a failed record as handled so SQS deleted it. A batch whose
    every record failed is still answered with `batchItemFailures` (not an exception), so one code
    path decides redelivery; the queue's age and DLQ alarms see stuck work either way."""
    return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class RetryLaterError(PromoterError):
    """Raised for a record whose event must be delivered again (see the module docstring)."""

    retryable = True


@dataclass(frozen=True)
class Runtime:
    """What a warm Lambda keeps between invocations."""

    config: PromotionConfig
    ecr: Any
    persistence: DynamoDBPersistenceLayer
    history: DynamoDbHistory
    results: EventBridgeResults
    gates: DynamoDbGates
    attestor: Attestor | None = None  # signs each promotion's attestation (None: no key configured)


@cache
def runtime() -> Runtime:
    """Built once per container: the config is validated at cold start, clients are reused."""
    session = boto3.session.Session()
    config = load_config(config_path())
    return Runtime(
        config=config,
        ecr=make_ecr_client(session),
        persistence=make_persistence(),
        history=DynamoDbHistory(resource=session.resource("dynamodb")),
        results=EventBridgeResults(session.client("events")),
        gates=DynamoDbGates(resource=session.resource("dynamodb")),
        attestor=attestor_from_environment(config),
    )


@logger.inject_lambda_context(clear_state=True)
@_lambda_tracing()
@metrics.log_metrics
def handle_queue(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS -> Lambda entry point: returns `batchItemFailures` for the records to redeliver."""
    state = runtime()
    registry = EcrRegistry(state.ecr)
    carrier = Promoter(registry, attestor=state.attestor)
    run = idempotent_runner(carrier, state.persistence, context)
    # After the runner: it configures the persistence layer whose keys the check looks up.
    out_of_band = push_check(state.config, IdempotencyLedger(state.persistence), state.history)

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        logger.set_correlation_id(None)  # the event id, once this record's body parses
        try:
            return handle_record(record)
        except RetryLaterError:
            raise
        except Exception:
            logger.exception(
                "unexpected error: the record goes back to the queue",
                message_id=record.message_id,
                event_id=logger.get_correlation_id(),
            )
            record_unexpected_error(metrics)
            raise

    def handle_record(record: SQSRecord) -> dict[str, Any]:
        try:
            parsed = parse_json_event(record.body)
        except MalformedMessageError as exc:
            logger.error(
                "not an EventBridge event: on to the DLQ", message_id=record.message_id, error=str(exc)
            )
            record_invalid_event(metrics)
            raise RetryLaterError(f"record {record.message_id}: {exc}") from exc
        except EventError as exc:
            logger.error(
                "invalid event: nothing a retry could fix", message_id=record.message_id, error=str(exc)
            )
            record_invalid_event(metrics)
            return {"error": str(exc)}
        logger.set_correlation_id(parsed.event_id)
        refused = sender_refusal(*record_sender(record.raw_event))
        if refused is not None:  # promoter.model.senders: the queue policy let a principal through
            logger.error(
                "not delivered by EventBridge: refused, on to the DLQ",
                message_id=record.message_id,
                error=refused,
            )
            record_invalid_event(metrics)
            raise RetryLaterError(f"record {record.message_id}: {refused}")
        if isinstance(parsed, PromotionRequested):  # what reached the queue how, said as an inference
            parsed = replace(parsed, delivery=delivery_note(*record_sender(record.raw_event)))
        result = handle_delivered(
            parsed,
            state.config,
            registry,
            carrier,
            run,
            state.history,
            state.results,
            state.gates,
            out_of_band=out_of_band,
        )
        record_event_result(metrics, result)
        logger.info("event handled", result=result.to_dict())
        if result.retry:
            raise RetryLaterError(f"event {parsed.event_id}: an action failed and will be retried")
        return result.to_dict()

    return process_partial_response(
        event=event, record_handler=record_handler, processor=_batch_processor(), context=context
    )
