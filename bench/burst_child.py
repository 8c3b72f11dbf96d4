"""Child process: the Lambda side of a burst. Lambda's SQS event source mapping (run locally)
feeds the real handler until `expected` records succeeded; prints one JSON line.

    python -m bench.burst_child QUEUE_URL EXPECTED BATCH_SIZE MAX_CONCURRENCY DEADLINE_SECONDS LOG

Every PutImage attempt the handler's ECR client makes is counted by its answer (botocore's
`needs-retry` event fires once per attempt, before the retry handler decides), so throttled
attempts and admitted ones can be told apart.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from typing import Any


def main(argv: list[str]) -> int:
    queue_url, expected, batch_size, concurrency, deadline_s, log_path = argv
    log = open(log_path, "a")  # noqa: SIM115 - the handler's JSON logs and metrics, for the process's life
    sys.stdout = log  # Powertools' Logger binds sys.stdout when the handler module is imported

    import os

    import boto3

    from local_aws.event_source_mapping import EventSourceMapping
    from promoter import handler
    from promoter.aws import registry

    if os.environ.get("BENCH_NO_PUT_IMAGE_PACING"):
        # What-if: the engine without its adaptive PutImage rate (botocore's retries only).
        registry.pace_put_image = lambda client: None

    attempts: Counter[str] = Counter()
    lock = threading.Lock()

    def count_put_image(response: Any = None, caught_exception: Any = None, **_: Any) -> None:
        if response is None:
            code = f"no response: {type(caught_exception).__name__}"
        else:
            http, parsed = response
            error = parsed.get("Error", {}).get("Code", str(http.status_code))
            code = "ok" if http.status_code < 300 else error
        with lock:
            attempts[code] += 1

    handler.runtime().ecr.meta.events.register_first("needs-retry.ecr.PutImage", count_put_image)

    done = 0
    failed_records = 0
    busy_seconds = 0.0
    finished_at: float | None = None

    def invoke(event: dict[str, Any], context: Any) -> Any:
        nonlocal done, failed_records, finished_at, busy_seconds
        began = time.perf_counter()
        response = handler.handle_queue(event, context)
        failures = len((response or {}).get("batchItemFailures", []))
        with lock:
            busy_seconds += time.perf_counter() - began
            failed_records += failures
            done += len(event["Records"]) - failures
            if done >= int(expected) and finished_at is None:
                finished_at = time.perf_counter()
        return response

    sqs = boto3.client("sqs")
    esm = EventSourceMapping(
        sqs,
        queue_url,
        invoke,
        batch_size=int(batch_size),
        max_concurrency=int(concurrency),
        timeout_seconds=300,
    )
    started = time.perf_counter()
    deadline = started + float(deadline_s)
    while done < int(expected) and time.perf_counter() < deadline:
        esm.poll_once()
    esm.close()
    errors = [i.error for i in esm.invocations if i.error]
    out = {
        "seconds": (finished_at or time.perf_counter()) - started,
        "finished": finished_at is not None,
        "records_ok": done,
        "records_failed": failed_records,
        "function_errors": len(errors),
        "first_error": errors[0] if errors else None,
        "invocations": len(esm.invocations),
        "busy_seconds": busy_seconds,
        "put_image_attempts": dict(attempts),
    }
    sys.__stdout__.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
