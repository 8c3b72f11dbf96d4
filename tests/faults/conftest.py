"""The fault suite's pipeline: the deployed path, run locally, with a ledger of every message.

    ECR push (local ECR) / put_events -> EventBridge (moto) -> SQS queue (redrive to a DLQ)
    -> Lambda's event source mapping (local) -> promoter.handler.handle_queue -> the local ECR

The ledger records each delivery of each SQS message (handled, or failed for redelivery, or the
invocation crashed) and what the handler logged about it, so a test can prove that every event
ended as a result, a retry that later succeeded, or a DLQ message with its reason.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.event_patterns import push_event_pattern, request_event_pattern
from local_aws import LocalAws
from local_aws.enforcement import deliver_as_eventbridge
from local_aws.event_source_mapping import EventSourceMapping, Invocation
from local_aws.images import EcrPusher
from promoter import handler, settings
from promoter.model.config import parse_config

pytestmark = pytest.mark.integration

# The local event source mapping ends an invocation at FUNCTION_TIMEOUT_SECONDS, as Lambda does
# (its answer discarded, its batch back after the visibility timeout), which also bounds how long a
# crashed invocation's INPROGRESS record blocks its key. So a delivery is in flight for at most the
# function timeout plus the time to receive and to delete; the visibility timeout adds
# DELETE_MARGIN_SECONDS on top, so a message is never received again while its delivery is still
# running, unless a test asks for that (a smaller `visibility_timeout`). The function timeout leaves
# room for a batch on a 2-core machine under `yes` hogs and other work: batches took over 10 s
# there (a 10 s timeout turned them into redeliveries). Every deliberate retry waits the
# visibility timeout, so the stack's factor of six (VISIBILITY_TIMEOUT_FACTOR) is not used here.
FUNCTION_TIMEOUT_SECONDS = 20
DELETE_MARGIN_SECONDS = 5
VISIBILITY_TIMEOUT_SECONDS = FUNCTION_TIMEOUT_SECONDS + DELETE_MARGIN_SECONDS
MAX_RECEIVE_COUNT = 8
RUN_DEADLINE_SECONDS = 300.0


@dataclass
class Delivery:
    """One delivery of one SQS message to the handler."""

    message_id: str
    body: str
    receive_count: int
    status: str  # "handled" | "retry" | "crash"
    error: str | None = None


@dataclass
class Ledger:
    """Every delivery and every log line the handler wrote about events, thread-safe."""

    deliveries: list[Delivery] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)  # "event handled" results
    rejections: dict[str, str] = field(default_factory=dict)  # message id -> logged reason
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, message_id: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.message_id == message_id]

    def message_ids(self) -> set[str]:
        with self.lock:
            return {d.message_id for d in self.deliveries}

    def actions(self) -> list[dict[str, Any]]:
        """Every action result logged, in order (replays included, marked `replayed`)."""
        with self.lock:
            return [a for r in self.results for a in r["results"]]

    def promoted(self, repository: str, tag: str) -> list[dict[str, Any]]:
        """The actions that wrote `repository:tag` (not answered from an idempotency record)."""
        return [
            a
            for a in self.actions()
            if (a["target_repository"], a["target_tag"]) == (repository, tag)
            and a["outcome"] == "promoted"
            and not a.get("replayed")
        ]


class LedgerLog(logging.Handler):
    """Reads the handler's Powertools log records into the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        with self.ledger.lock:
            result = getattr(record, "result", None)
            if message == "event handled" and isinstance(result, dict):
                self.ledger.results.append(result)
            message_id = getattr(record, "message_id", None)
            if message_id and getattr(record, "error", None):
                self.ledger.rejections[message_id] = f"{message}: {record.error}"  # type: ignore[attr-defined]


class Pipeline:
    """One test's wiring: its queue and DLQ, its rules, the handler with the stack's environment."""

    def __init__(
        self,
        local: LocalAws,
        config: dict[str, Any],
        work: Path,
        max_receive_count: int = MAX_RECEIVE_COUNT,
        visibility_timeout: int = VISIBILITY_TIMEOUT_SECONDS,
        **esm: Any,
    ) -> None:
        kw: dict[str, Any] = {"endpoint_url": local.endpoint, "region_name": local.region}
        self.local = local
        self.sqs = boto3.client("sqs", **kw)
        self.events = boto3.client("events", **kw)
        self.ecr = boto3.client("ecr", **kw)
        self.pusher = EcrPusher(self.ecr)
        self.ledger = Ledger()
        name = f"fault-{uuid.uuid4().hex[:10]}"
        self.dlq_url = self.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        redrive = {"deadLetterTargetArn": self._arn(self.dlq_url), "maxReceiveCount": str(max_receive_count)}
        self.queue_url = self.sqs.create_queue(
            QueueName=name,
            Attributes={
                "RedrivePolicy": json.dumps(redrive),
                "VisibilityTimeout": str(visibility_timeout),
            },
        )["QueueUrl"]
        parsed = parse_config(config)
        self.bus = name
        self.events.create_event_bus(Name=self.bus)
        self.rules: list[tuple[str, str]] = []
        push_sources = [r.source.repository_glob for r in parsed.rules_for("push")]
        if push_sources:
            self._rule(f"{name}-push", "default", push_event_pattern(push_sources))
        self._rule(f"{name}-request", self.bus, request_event_pattern())
        path = work / settings.STAGED_CONFIG_FILE
        path.write_text(parsed.to_json())
        self.config_path = path
        self.esm = EventSourceMapping(
            self.sqs,
            self.queue_url,
            self._recording,
            observer=self._note,
            **{"max_concurrency": 2, "batch_size": 10, "timeout_seconds": FUNCTION_TIMEOUT_SECONDS, **esm},
        )
        self.before_invoke: Callable[[dict[str, Any]], None] | None = None
        self._dead: dict[str, dict[str, Any]] = {}

    def _arn(self, url: str) -> str:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        return str(attrs["QueueArn"])

    def _rule(self, name: str, bus: str, pattern: dict[str, Any]) -> None:
        self.events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern), State="ENABLED")
        self.events.put_targets(
            Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": self._arn(self.queue_url)}]
        )
        self.rules.append((name, bus))

    def _recording(self, event: dict[str, Any], context: Any) -> Any:
        if self.before_invoke is not None:
            self.before_invoke(event)
        return handler.handle_queue(event, context)

    def _note(self, event: dict[str, Any], invocation: Invocation) -> None:
        """The event source mapping's verdict on each delivery (what SQS then sees): handled
        (deleted), retry (reported failed), or crash (a function error or a timeout: the whole
        batch returns). An abandoned invocation's late answer never reaches the ledger."""
        failed = set(invocation.failed_ids)
        with self.ledger.lock:
            for r in event["Records"]:
                count = int(r["attributes"].get("ApproximateReceiveCount", "0"))
                if invocation.error is not None:
                    status = "crash"
                else:
                    status = "retry" if r["messageId"] in failed else "handled"
                self.ledger.deliveries.append(
                    Delivery(r["messageId"], r["body"], count, status, invocation.error)
                )

    # --- input -------------------------------------------------------------------------------
    def send(self, body: str) -> str:
        """A message EventBridge puts into the queue (again: a duplicate, or something only a broken
        contract sends). A principal's SendMessage would be refused by the handler (its SenderId)."""
        return deliver_as_eventbridge(self.queue_url, body)

    def request(self, detail: dict[str, Any]) -> None:
        """A promotion request on this pipeline's bus, as `aws events put-events` sends it."""
        response = self.events.put_events(
            Entries=[
                {
                    "EventBusName": self.bus,
                    "Source": settings.REQUEST_EVENT_SOURCE,
                    "DetailType": settings.REQUEST_DETAIL_TYPE,
                    "Detail": json.dumps(detail),
                }
            ]
        )
        assert response["FailedEntryCount"] == 0, response

    # --- running -----------------------------------------------------------------------------
    def depth(self, url: str | None = None) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def run(self, deadline_seconds: float = RUN_DEADLINE_SECONDS) -> None:
        """Polls until the queue is empty (everything handled or moved to the DLQ)."""
        end = time.monotonic() + deadline_seconds
        while time.monotonic() < end:
            if self.depth() == 0:  # visible or in flight: 0 means every delivery has ended
                self.esm.wait_idle()
                if self.depth() == 0:
                    return
            self.esm.poll_once()  # no waiting in between: copies received together run together
        raise AssertionError(f"the queue still holds {self.depth()} message(s) after {deadline_seconds} s")

    def dead_letters(self) -> list[dict[str, Any]]:
        """Everything that reached the DLQ so far (kept here once read: reading hides a message)."""
        while messages := self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0
        ).get("Messages", []):
            self._dead.update({m["MessageId"]: m for m in messages})
        return list(self._dead.values())

    # --- the invariant -----------------------------------------------------------------------
    def assert_every_event_accounted(self) -> dict[str, str]:
        """Every message ended as a handled result or in the DLQ with a reason; never both, none
        lost. Returns message id -> "handled" | "dlq"."""
        assert self.depth() == 0, "messages left in the queue"
        dead = {m["MessageId"]: m for m in self.dead_letters()}
        ends: dict[str, str] = {}
        for message_id in self.ledger.message_ids() | set(dead):
            deliveries = self.ledger.of(message_id)
            handled = [d for d in deliveries if d.status == "handled"]
            if message_id in dead:
                assert not handled, f"{message_id} was handled and still went to the DLQ"
                assert self.reason(message_id), f"{message_id} is in the DLQ with no logged reason"
                ends[message_id] = "dlq"
            else:
                # At least once: a delivery that outlives the visibility timeout is received again
                # while in flight (SQS semantics); that copy may end either way, the message is
                # deleted by the one that handled it. "Never twice" is proven on ECR's side.
                assert handled, f"{message_id} was deleted without a result: {deliveries}"
                ends[message_id] = "handled"
        return ends

    def reason(self, message_id: str) -> str | None:
        """Why a message failed: the handler's rejection, the failed actions, or the crash."""
        if message_id in self.ledger.rejections:
            return self.ledger.rejections[message_id]
        deliveries = self.ledger.of(message_id)
        crashes = [d.error for d in deliveries if d.status == "crash" and d.error]
        if crashes:
            return crashes[-1]
        event_id = _event_id(deliveries[0].body) if deliveries else None
        with self.ledger.lock:
            failures = [
                a.get("reason") or r.get("error")
                for r in self.ledger.results
                if r["event_id"] == event_id and r.get("retry")
                for a in (r["results"] or [{}])
                if a.get("outcome", "failed") == "failed"
            ]
        return next((f for f in failures if f), None)

    def close(self) -> None:
        self.esm.close()
        for name, bus in self.rules:
            self.events.remove_targets(Rule=name, EventBusName=bus, Ids=["queue"])
            self.events.delete_rule(Name=name, EventBusName=bus)


def _event_id(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("id") if isinstance(data, dict) else None


@pytest.fixture
def pipeline(
    aws_env: LocalAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Pipeline]]:
    """`pipeline(config, max_receive_count=..., visibility_timeout=..., **esm_options)`: one
    pipeline with the stack's environment."""
    made: list[Pipeline] = []
    log = logging.getLogger(settings.SERVICE_NAME)
    # Fewer, quicker retries for the clients that take the environment's retry settings
    # (Powertools' DynamoDB client); the ECR client sets its own (promoter.aws.registry).
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")

    def make(config: dict[str, Any], **esm: Any) -> Pipeline:
        assert not made, "one pipeline per test: the handler's runtime is per process"
        built = Pipeline(aws_env, config, tmp_path, **esm)
        for name, value in settings.function_environment(config_path=str(built.config_path)).items():
            monkeypatch.setenv(name, value)
        handler.runtime.cache_clear()
        capture = LedgerLog(built.ledger)
        log.addHandler(capture)
        made.append(built)
        built._capture = capture  # type: ignore[attr-defined]
        return built

    yield make
    for built in made:
        log.removeHandler(built._capture)  # type: ignore[attr-defined]
        built.close()
    handler.runtime.cache_clear()


@pytest.fixture
def repos(aws_env: LocalAws, unique_name: Callable[[str], str]) -> Callable[..., str]:
    """`repos("dev", mutability="IMMUTABLE")` creates a fresh repository and returns its name."""
    ecr = boto3.client("ecr", endpoint_url=aws_env.endpoint, region_name=aws_env.region)

    def make(prefix: str, mutability: str = "MUTABLE") -> str:
        name = unique_name(prefix)
        ecr.create_repository(repositoryName=name, imageTagMutability=mutability)
        return name

    return make
