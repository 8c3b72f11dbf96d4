"""Lambda's SQS event source mapping, run locally: poll a queue, invoke a handler, honour its answer.

What Lambda's poller does and the promoter relies on (Lambda developer guide, "Using Lambda with
Amazon SQS"): it receives up to `batch_size` messages, invokes the function with them as `Records`,
and deletes the messages the function did not name in `batchItemFailures` (with
`ReportBatchItemFailures` on). A function error or timeout fails the whole batch: nothing is deleted
and the messages come back after the visibility timeout, until the queue's redrive policy moves them
to the dead-letter queue. `maximumConcurrency` caps the invocations in flight.

A timeout is enforced as Lambda enforces it: the handler runs in a thread of its own, and when
`timeout_seconds` pass first the invocation is over ("Task timed out"): its answer, should one come
later, is discarded, nothing is deleted, and its slot is free again. A thread cannot be killed, so
an abandoned handler may still finish calls it had started (Lambda stops the runtime instead); only
this module deletes messages, and it never does for an abandoned invocation.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

LOG = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
# Told each invocation's verdict (its event and what the mapping did with it), in the polling thread.
Observer = Callable[[dict[str, Any], "Invocation"], None]

DEFAULT_BATCH_SIZE = 10
DEFAULT_MAX_CONCURRENCY = 2
DEFAULT_TIMEOUT_SECONDS = 60
RECEIVE_WAIT_SECONDS = 1


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that Powertools and the handler read."""

    function_name: str = "image-promoter"
    memory_limit_in_mb: int = 512
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/image-promoter"
    log_stream_name: str = "local"
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        left = self.timeout_seconds - (time.monotonic() - self.started)
        return max(0, int(left * 1000))


@dataclass
class Invocation:
    """One handler invocation: how many records went in, which failed, and any function error."""

    records: int
    failed_ids: tuple[str, ...]
    error: str | None = None
    timed_out: bool = False


def sqs_event(messages: list[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda builds from received SQS messages (the `aws:sqs` record shape)."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": dict(m.get("Attributes", {})),
                "messageAttributes": {
                    name: _lambda_attribute(value) for name, value in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def _lambda_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda hands it over (`stringValue`, ...), not as ReceiveMessage
    answers it (`StringValue`, ...)."""
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = value["BinaryValue"]
    return out


class EventSourceMapping:
    """Polls one SQS queue and feeds a handler, as Lambda's SQS event source mapping does."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
        function_name: str = "image-promoter",
        observer: Observer | None = None,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._batch_size = batch_size
        self._timeout_seconds = timeout_seconds
        self._function_name = function_name
        self._observer = observer
        self._max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="esm")
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self._queue_arn = attrs["QueueArn"]
        self._region = self._queue_arn.split(":")[3]
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()

    def poll_once(self) -> int:
        """Receives one batch and starts its invocation; returns the number of messages received."""
        self._slots.acquire()
        try:
            got = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=self._batch_size,
                WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        except BaseException:
            self._slots.release()
            raise
        if not got:
            self._slots.release()
            return 0
        future: Future[None] = self._pool.submit(self._invoke, got)
        future.add_done_callback(lambda _f: self._slots.release())
        return len(got)

    def drain(self, idle_polls: int = 2, deadline_seconds: float = 120.0) -> list[Invocation]:
        """Polls until the queue stays empty for `idle_polls` receives and every invocation ended."""
        end = time.monotonic() + deadline_seconds
        idle = 0
        while idle < idle_polls and time.monotonic() < end:
            idle = idle + 1 if self.poll_once() == 0 else 0
        self.wait_idle()
        return list(self.invocations)

    def wait_idle(self) -> None:
        """Blocks until no invocation is in flight."""
        for _ in range(self._max_concurrency):
            self._slots.acquire()
        for _ in range(self._max_concurrency):
            self._slots.release()

    def close(self) -> None:
        self.wait_idle()
        self._pool.shutdown(wait=True)

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = sqs_event(messages, self._queue_arn, self._region)
        context = LocalLambdaContext(function_name=self._function_name, timeout_seconds=self._timeout_seconds)
        everything = tuple(m["MessageId"] for m in messages)
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def run() -> None:
            try:
                outcome["response"] = self._handler(event, context) or {}
            # A function error fails the whole batch, as in Lambda; so does a crash (a BaseException
            # standing for the runtime dying mid-invocation: no cleanup code of the function runs).
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=run, name=f"invocation-{context.aws_request_id}", daemon=True).start()
        if not finished.wait(self._timeout_seconds):
            LOG.warning(
                "invocation %s timed out after %s s: the batch of %d returns to the queue",
                context.aws_request_id,
                self._timeout_seconds,
                len(messages),
            )
            error = f"Task timed out after {self._timeout_seconds} seconds"
            self._record(event, Invocation(len(messages), everything, error, timed_out=True))
            return
        if "error" in outcome:
            exc = outcome["error"]
            LOG.warning("handler raised %s: the batch of %d returns to the queue", exc, len(messages))
            self._record(event, Invocation(len(messages), everything, repr(exc)))
            return
        response = outcome["response"]
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        self._record(event, Invocation(len(messages), tuple(sorted(failed))))

    def _record(self, event: dict[str, Any], invocation: Invocation) -> None:
        with self._lock:
            self.invocations.append(invocation)
        if self._observer is not None:
            self._observer(event, invocation)
