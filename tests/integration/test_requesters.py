"""Requests for a rule with `requesters:` on the local AWS: posted on the rule's own source to a real
(moto) EventBridge bus with the stack's request pattern, routed into SQS, handled by the Lambda
handler. (The bus policy that refuses everyone but the requesters is IAM's to enforce and is
checked in tests/infra; moto does not evaluate bus policies.)"""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest

from infra.event_patterns import request_event_pattern
from local_aws import images as im
from promoter import handler, settings
from promoter.aws.history import DynamoDbHistory

pytestmark = pytest.mark.integration

# How long a routed event may take to reach the queue on a loaded machine (polled, not slept).
ROUTING_DEADLINE_SECONDS = 10.0


class _Context:
    """The attributes Powertools reads from a Lambda context."""

    function_name = "image-promoter"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:image-promoter"
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/image-promoter"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


@pytest.fixture
def routed(aws_env, ecr, unique_name, tmp_path, monkeypatch):
    """A staging repository with an image, two request rules (one naming its requesters), the
    stack's request rule on a bus of its own feeding a queue, and the function's environment."""
    source, prod, qa = unique_name("staging"), unique_name("prod"), unique_name("qa")
    for name in (source, prod, qa):
        ecr.create_repository(repositoryName=name)
    image = im.image((2048,))
    im.EcrPusher(ecr).push(source, image, "v1.0.0")
    config = {
        "rules": [
            {
                "name": "to-prod",
                "trigger": "request",
                "requesters": ["arn:aws:iam::210987654321:role/release-*"],
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": prod}],
            },
            {
                "name": "to-qa",
                "trigger": "request",
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": qa}],
            },
        ]
    }
    path = tmp_path / settings.STAGED_CONFIG_FILE
    path.write_text(json.dumps(config))
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    bus = f"promotions-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(settings.EVENT_BUS_ENV, bus)
    handler.runtime.cache_clear()
    kw = {"endpoint_url": aws_env.endpoint, "region_name": "us-east-1"}
    sqs, events = boto3.client("sqs", **kw), boto3.client("events", **kw)
    queue_url = sqs.create_queue(QueueName=bus)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.create_event_bus(Name=bus)
    pattern = request_event_pattern(settings.request_event_source(), ["to-prod"])
    events.put_rule(Name=bus, EventBusName=bus, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=bus, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    yield {
        "source": source,
        "prod": prod,
        "qa": qa,
        "image": image,
        "bus": bus,
        "sqs": sqs,
        "events": events,
        "queue": queue_url,
    }
    handler.runtime.cache_clear()


def _post(routed, source: str, detail: dict) -> None:
    response = routed["events"].put_events(
        Entries=[
            {
                "EventBusName": routed["bus"],
                "Source": source,
                "DetailType": settings.REQUEST_DETAIL_TYPE,
                "Detail": json.dumps(detail),
            }
        ]
    )
    assert response["FailedEntryCount"] == 0, response


def _receive(routed, count: int) -> list[dict]:
    """The SQS records of `count` routed events (polled until they arrive or the deadline)."""
    records: list[dict] = []
    deadline = time.monotonic() + ROUTING_DEADLINE_SECONDS
    while len(records) < count and time.monotonic() < deadline:
        for message in (
            routed["sqs"]
            .receive_message(QueueUrl=routed["queue"], MaxNumberOfMessages=10)
            .get("Messages", [])
        ):
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:promotions",
                    "awsRegion": "us-east-1",
                }
            )
    return records


def _tag_digest(ecr, repository: str, tag: str) -> str | None:
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return images[0]["imageId"]["imageDigest"] if images else None


def test_a_request_on_the_rules_own_source_is_routed_and_recorded_with_who_aws_authenticated(routed, ecr):
    _post(
        routed,
        settings.rule_request_source("to-prod"),
        {"repository-name": routed["source"], "image-tag": "v1.0.0", "requested-by": "ci\x1b[2J"},
    )
    (record,) = _receive(routed, 1)
    assert json.loads(record["body"])["source"] == settings.rule_request_source("to-prod")

    assert handler.handle_queue({"Records": [record]}, _Context()) == {"batchItemFailures": []}

    assert _tag_digest(ecr, routed["prod"], "v1.0.0") == routed["image"].digest
    assert _tag_digest(ecr, routed["qa"], "v1.0.0") is None  # bound to its rule only
    (item,) = DynamoDbHistory().for_target(routed["prod"], "v1.0.0")
    assert item["requested_by"] == "ci\x1b[2J"  # declared, kept as written
    assert item["authenticated_as"].endswith("a requester of rule to-prod")


def test_the_shared_source_reaches_only_the_rules_without_requesters(routed, ecr):
    _post(
        routed, settings.request_event_source(), {"repository-name": routed["source"], "image-tag": "v1.0.0"}
    )
    _post(
        routed,
        settings.request_event_source(),
        {"repository-name": routed["source"], "image-tag": "v1.0.0", "rule": "to-prod"},
    )
    # Another rule's source is not in the stack's pattern: it never reaches the queue.
    _post(
        routed,
        settings.rule_request_source("to-qa"),
        {"repository-name": routed["source"], "image-tag": "v1.0.0"},
    )
    records = _receive(routed, 2)
    assert len(records) == 2

    handler.handle_queue({"Records": records}, _Context())

    assert _tag_digest(ecr, routed["qa"], "v1.0.0") == routed["image"].digest
    assert _tag_digest(ecr, routed["prod"], "v1.0.0") is None
    # moto routes within put_events: a third event would be in the queue already.
    assert routed["sqs"].receive_message(QueueUrl=routed["queue"]).get("Messages", []) == []


def test_promoter_request_with_rule_source_posts_on_the_rules_own_source(routed, ecr):
    import subprocess
    import sys

    command = [sys.executable, "-m", "promoter_cli.main", "request", "--repository", routed["source"]]
    command += ["--tag", "v1.0.0", "--rule", "to-prod", "--rule-source", "--bus", routed["bus"]]
    posted = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert posted.returncode == 0, posted.stderr
    (record,) = _receive(routed, 1)
    assert json.loads(record["body"])["source"] == settings.rule_request_source("to-prod")

    assert handler.handle_queue({"Records": [record]}, _Context()) == {"batchItemFailures": []}
    assert _tag_digest(ecr, routed["prod"], "v1.0.0") == routed["image"].digest

    without_rule = subprocess.run(
        [*command[: command.index("--rule")], "--rule-source", "--bus", routed["bus"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert without_rule.returncode == 2 and "--rule-source needs --rule" in without_rule.stderr
