"""Hostile input never costs an audit record (issue 18.5), on the local AWS through the Lambda
handler: a request whose free text holds a lone surrogate (`"\\ud800"` in its JSON: valid JSON, not
Unicode text, which DynamoDB and EventBridge cannot store) is refused before anything is written;
one holding control characters and escapes is promoted with its history record and its result
event, word for word; and the CLI prints such stored text with its control characters escaped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from local_aws import images as im
from promoter import handler, settings
from promoter.aws.history import DynamoDbHistory
from tests.integration.test_rollback import released, tag_digest  # noqa: F401 - released is a fixture
from tests.lambda_events import FakeLambdaContext, sqs_record

pytestmark = pytest.mark.integration

# How long a routed result event may take to reach the capture queue (polled, not slept).
ROUTING_DEADLINE_SECONDS = 10.0
ESCAPES = "ci\x1b[2J\x07\r\u202eevil\x00 and a literal \\u001b"
LONE_SURROGATE = "\\ud800"  # as JSON spells it; json.loads makes it the one code point U+D800


def _request_body(detail_json: str) -> str:
    """A request envelope around detail JSON given as text (so an escape stays as written)."""
    envelope = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": settings.REQUEST_DETAIL_TYPE,
        "source": settings.request_event_source(),
        "account": "123456789012",
        "time": "2026-12-06T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": "__DETAIL__",
    }
    return json.dumps(envelope).replace('"__DETAIL__"', detail_json)


@pytest.fixture
def promoted(aws_env, ecr, unique_name, tmp_path, monkeypatch):
    """A staging image, a request rule to prod, and `handle(body)`: one SQS record through the
    Lambda handler (its EMF metrics and logs are on stdout)."""
    source, target = unique_name("staging"), unique_name("prod")
    for name in (source, target):
        ecr.create_repository(repositoryName=name)
    image = im.image((1024,))
    im.EcrPusher(ecr).push(source, image, "v1")
    config = {
        "rules": [
            {
                "name": "to-prod",
                "trigger": "request",
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": target}],
            }
        ]
    }
    path = tmp_path / settings.STAGED_CONFIG_FILE
    path.write_text(json.dumps(config))
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    handler.runtime.cache_clear()

    def handle(body: str) -> dict[str, Any]:
        return handler.handle_queue({"Records": [sqs_record(body)]}, FakeLambdaContext())

    yield {"source": source, "target": target, "image": image, "handle": handle, "config": path}
    handler.runtime.cache_clear()


def result_capture(endpoint: str, target: str) -> Callable[[int], list[dict[str, Any]]]:
    """Result events about `target` (default bus -> a rule -> a queue whose policy lets EventBridge
    deliver, as a real queue needs): `drain(count)` returns what arrived."""
    kw = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    sqs, events = boto3.client("sqs", **kw), boto3.client("events", **kw)
    name = f"hostile-{uuid.uuid4().hex[:12]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule_arn = events.put_rule(
        Name=name,
        EventPattern=json.dumps(
            {
                "source": [settings.DEFAULT_REQUEST_EVENT_SOURCE],
                "detail-type": list(settings.RESULT_DETAIL_TYPES),
                "detail": {"target": {"repository-name": [target]}},
            }
        ),
    )["RuleArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])

    def drain(count: int) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + ROUTING_DEADLINE_SECONDS
        while len(got) < count and time.monotonic() < deadline:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                got.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return got

    return drain


def _tag_digest(ecr, repository: str, tag: str) -> str | None:
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return images[0]["imageId"]["imageDigest"] if images else None


def _emf(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if '"_aws"' in line]


def _detail(promoted: dict[str, Any], **free_text: str) -> str:
    fields = {"repository-name": json.dumps(promoted["source"]), "image-tag": '"v1"', **free_text}
    return "{" + ", ".join(f'"{key}": {value}' for key, value in fields.items()) + "}"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_escaped(output: str) -> None:
    assert not set("\x1b\x07\r\x00\u202e") & set(output), output
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in output), output


@pytest.mark.parametrize(
    "free_text",
    [
        {"reason": f'"release {LONE_SURROGATE}"'},
        {"requested-by": f'"ci{LONE_SURROGATE}"'},
        {"metadata": f'{{"ticket": "CHG-1", "note": ["ok", "x{LONE_SURROGATE}"]}}'},
        {"metadata": f'{{"k{LONE_SURROGATE}": 1}}'},
    ],
    ids=["reason", "requested-by", "metadata-value", "metadata-key"],
)
def test_a_lone_surrogate_in_free_text_is_refused_before_anything_is_written(
    promoted, ecr, aws_env, capsys, caplog, free_text
):
    results = result_capture(aws_env.endpoint, promoted["target"])
    body = _request_body(_detail(promoted, **free_text))
    assert "\\ud800" in body  # JSON text: the escape is what arrives

    assert promoted["handle"](body) == {"batchItemFailures": []}  # bad input: never redelivered

    out = capsys.readouterr().out
    assert _tag_digest(ecr, promoted["target"], "v1") is None
    assert DynamoDbHistory().for_target(promoted["target"], "v1") == []
    assert results(1) == []
    refusals = [r for r in caplog.records if r.levelname == "ERROR" and "not Unicode text" in r.getMessage()]
    assert len(refusals) == 1, caplog.text
    assert _emf(out)[-1]["PromotionFailures"] == [1.0]


def test_control_characters_and_escapes_are_promoted_with_their_record_and_result_word_for_word(
    promoted, ecr, aws_env, capsys
):
    results = result_capture(aws_env.endpoint, promoted["target"])
    metadata = {"ticket": ESCAPES, ESCAPES: [1, ESCAPES]}
    body = _request_body(
        _detail(
            promoted,
            reason=json.dumps(ESCAPES),
            **{"requested-by": json.dumps(ESCAPES), "metadata": json.dumps(metadata)},
        )
    )

    assert promoted["handle"](body) == {"batchItemFailures": []}

    assert _tag_digest(ecr, promoted["target"], "v1") == promoted["image"].digest
    (record,) = DynamoDbHistory().for_target(promoted["target"], "v1")
    assert record["outcome"] == "promoted"
    assert record["request_reason"] == ESCAPES and record["requested_by"] == ESCAPES
    assert json.loads(record["metadata"]) == metadata
    (event,) = results(1)
    assert event["detail"]["reason"] == ESCAPES and event["detail"]["requested-by"] == ESCAPES
    assert event["detail"]["metadata"] == metadata

    history = _cli("history", "--repository", promoted["target"], "--tag", "v1")
    assert history.returncode == 0, history.stderr
    assert "ci\\x1b[2J\\x07\\r\\u202eevil\\x00" in history.stdout
    _assert_escaped(history.stdout)


def test_status_prints_stored_text_with_its_control_characters_escaped(promoted, aws_env):
    assert promoted["handle"](_request_body(_detail(promoted, reason='"ok"'))) == {"batchItemFailures": []}
    # A record someone wrote into the history table by hand (or an older writer): stored text.
    table = boto3.resource("dynamodb").Table(settings.history_table_name())
    table.put_item(
        Item={
            "pk": f"{promoted['target']}:v1",
            "sk": f"2099-01-01T00:00:00.000000Z#{promoted['image'].digest}",
            "at": "2099-01-01T00:00:00.000000Z",
            "outcome": "promoted\x1b[31m",
            "trigger": "request\u202eevil\x07",
        }
    )

    status = _cli("status", "--config", str(promoted["config"]))

    assert status.returncode == 0, status.stderr
    assert "promoted\\x1b[31m (request\\u202eevil\\x07)" in status.stdout
    _assert_escaped(status.stdout)


def test_redrive_dry_run_prints_what_a_dead_letter_says_escaped(aws_env):
    sqs = boto3.client("sqs", endpoint_url=aws_env.endpoint, region_name="us-east-1")
    queue = sqs.create_queue(QueueName=f"promoter-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    dead = sqs.create_queue(QueueName=f"promoter-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    # SQS takes only XML characters: the escapes travel as JSON spells them, in ASCII; the event id
    # and detail-type are whatever the message says (a lone surrogate included).
    body = json.dumps({"id": "evil\x1b[2J\u202e", "detail-type": "x\ud800\x07", "source": "s", "detail": {}})
    assert body.isascii()
    sqs.send_message(QueueUrl=dead, MessageBody=body)

    redrive = _cli(
        "redrive", "--dry-run", "--queue", "processing", "--queue-url", queue, "--processing-dlq-url", dead
    )

    # Listed (exit 0), or refused as not sent by EventBridge (exit 1): either way shown, not obeyed.
    assert redrive.returncode in (0, 1) and "Traceback" not in redrive.stderr, redrive.stderr
    assert "event evil\\x1b[2J\\u202e x\\ud800\\x07" in redrive.stdout, redrive.stdout
    _assert_escaped(redrive.stdout + redrive.stderr)


# A command line is bytes: Python reads an undecodable byte of it as a lone surrogate ("\udcff").
UNDECODABLE_REASON = b"hotfix \xff"


def _cli_bytes(*args: str | bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_break_glass_promotion_whose_reason_no_record_can_hold_writes_nothing(released, ecr):  # noqa: F811
    source = f"{released.source}:v3"

    promoted = _cli_bytes(
        "promote", source, "--to", f"{released.target}:hotfix", "--reason", UNDECODABLE_REASON
    )

    assert promoted.returncode == 1 and "Traceback" not in promoted.stderr, promoted.stderr
    assert "not Unicode text" in promoted.stdout + promoted.stderr
    assert tag_digest(ecr, released.target, "hotfix") is None
    assert DynamoDbHistory().for_target(released.target, "hotfix") == []


def test_a_rollback_whose_reason_no_record_can_hold_moves_nothing(released, ecr):  # noqa: F811
    before = DynamoDbHistory().for_target(released.target, "current")

    rolled = _cli_bytes(
        "rollback", "--repository", released.target, "--tag", "current", "--reason", UNDECODABLE_REASON
    )

    assert rolled.returncode == 1 and "Traceback" not in rolled.stderr, rolled.stderr
    assert "not Unicode text" in rolled.stderr
    assert tag_digest(ecr, released.target, "current") == released.digests["v3"]
    assert DynamoDbHistory().for_target(released.target, "current") == before


def test_promoter_request_refuses_free_text_no_record_could_hold_as_bad_input(aws_env):
    requested = _cli_bytes(
        "request",
        "--repository",
        "app-staging",
        "--tag",
        "v1",
        "--bus",
        "default",
        "--reason",
        UNDECODABLE_REASON,
    )

    assert requested.returncode == 2, requested.stderr
    assert "--reason is not Unicode text" in requested.stderr and "Traceback" not in requested.stderr
