"""Unexpected errors are loud: an exception no outcome names (here: an ECR client without an
operation, as on a Lambda runtime whose botocore predates it) is logged at ERROR with its traceback
and the event id, counted as `UnexpectedErrors`, and its record handed back; the reconcile
handler does the same and fails its invocation."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from local_aws import images as im
from promoter import handler, reconcile_handler, settings
from promoter.metrics import UNEXPECTED_ERROR_METRIC
from tests.fixtures import EVENTS_DIR
from tests.lambda_events import sqs_batch

pytestmark = pytest.mark.integration

SAMPLES = EVENTS_DIR
RUNTIME = handler.runtime  # the cached builder, whatever a test puts in its place


@dataclass
class Context:
    """The attributes Powertools and the handlers read from a Lambda context."""

    function_name: str = "image-promoter"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:image-promoter"
    aws_request_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


class ClientWithout:
    """A real ECR client lacking one operation, as botocore builds it for a model without it."""

    def __init__(self, client: Any, operation: str) -> None:
        self._client = client
        self._operation = operation

    def __getattr__(self, name: str) -> Any:
        if name == self._operation:
            raise AttributeError(f"'ECR' object has no attribute {name!r}")
        return getattr(self._client, name)


@pytest.fixture
def config(aws_env, ecr, unique_name, pusher, tmp_path, monkeypatch) -> tuple[str, str]:
    source, target = unique_name("dev"), unique_name("prod")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    image = im.image((512,))
    pusher.push(source, image, "v1")
    path = tmp_path / settings.STAGED_CONFIG_FILE
    path.write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "name": "ship",
                        "source": {"repository": source, "tags": ["v*"]},
                        "targets": [{"repository": target, "tags": ["{tag}"]}],
                    }
                ]
            }
        )
    )
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    RUNTIME.cache_clear()
    reconcile_handler.cursor_store.cache_clear()
    reconcile_handler.run_lease.cache_clear()
    yield source, image.digest
    RUNTIME.cache_clear()
    reconcile_handler.cursor_store.cache_clear()
    reconcile_handler.run_lease.cache_clear()


def without(operation: str, monkeypatch) -> None:
    """The promoter's runtime, its ECR client lacking `operation`."""
    state = handler.runtime()
    broken = dataclasses.replace(state, ecr=ClientWithout(state.ecr, operation))
    monkeypatch.setattr(handler, "runtime", lambda: broken)
    monkeypatch.setattr(reconcile_handler, "runtime", lambda: broken)




@pytest.fixture
def log_lines(monkeypatch) -> io.StringIO:
    """What the functions' Powertools logger writes (its JSON lines, as CloudWatch would get them)."""
    stream = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", stream)
    return stream


def output(log_lines: io.StringIO, capsys) -> tuple[list[dict], list[dict]]:
    """The JSON log lines and the EMF metric documents (printed by Powertools Metrics) of the run."""
    logs = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.startswith("{")]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    return logs, emf


def test_an_unexpected_error_is_logged_at_error_counted_and_its_record_handed_back(
    config, monkeypatch, log_lines, capsys
):
    source, digest = config
    without("batch_get_image", monkeypatch)
    push = json.loads((SAMPLES / "ecr-push.json").read_text())
    push["id"] = event_id = str(uuid.uuid4())
    push["detail"].update({"repository-name": source, "image-digest": digest, "image-tag": "v1"})
    ignored = (SAMPLES / "ecr-delete.json").read_text()  # asks for nothing: never reaches ECR

    response = handler.handle_queue(sqs_batch(ignored, json.dumps(push)), Context())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    logs, emf = output(log_lines, capsys)
    (error,) = [x for x in logs if x["level"] == "ERROR"]
    assert error["event_id"] == event_id and error["message_id"] == "msg-1"
    assert error["exception_name"] == "AttributeError"
    assert "Traceback" in error["exception"] and "batch_get_image" in error["exception"]
    assert emf[-1][UNEXPECTED_ERROR_METRIC] == [1.0]
    # Where the stack's UnexpectedErrors alarm looks (infra.monitoring): namespace and dimensions.
    (declared,) = emf[-1]["_aws"]["CloudWatchMetrics"]
    assert declared["Namespace"] == settings.METRICS_NAMESPACE and declared["Dimensions"] == [["service"]]
    assert emf[-1]["service"] == settings.SERVICE_NAME
    assert {"Name": UNEXPECTED_ERROR_METRIC, "Unit": "Count"} in declared["Metrics"]


def test_known_outcomes_are_not_counted_as_unexpected(config, log_lines, capsys):
    source, digest = config
    push = json.loads((SAMPLES / "ecr-push.json").read_text())
    push["detail"].update({"repository-name": source, "image-digest": digest, "image-tag": "v1"})

    response = handler.handle_queue(sqs_batch(json.dumps(push), "not an event"), Context())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}  # the DLQ path, known
    _, emf = output(log_lines, capsys)
    assert UNEXPECTED_ERROR_METRIC not in emf[-1]


def test_an_unexpected_error_in_the_reconcile_run_is_logged_counted_and_fails_the_invocation(
    config, monkeypatch, log_lines, capsys
):
    without("describe_images", monkeypatch)

    with pytest.raises(AttributeError, match="describe_images"):
        reconcile_handler.handle({"source": "aws.events"}, Context(function_name="reconcile"))

    logs, emf = output(log_lines, capsys)
    (error,) = [x for x in logs if x["level"] == "ERROR"]
    assert error["exception_name"] == "AttributeError" and "Traceback" in error["exception"]
    assert emf[-1][UNEXPECTED_ERROR_METRIC] == [1.0]
    # The failed run gave its lease back: the next run is not kept waiting.
    assert reconcile_handler.run_lease().try_acquire("next-run", 60) is None
    assert reconcile_handler.run_lease().release("next-run")
