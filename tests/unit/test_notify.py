"""The approval notification: what one SNS message tells the approvers, as a subscriber receives it,
and a publish that fails is logged and counted, never raised (the session's local AWS: SNS and SQS)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Metrics

from local_aws import LocalAws
from promoter import settings
from promoter.aws.notify import (
    APPROVAL_NOTIFICATION_FAILURES_METRIC,
    approval_message,
    notify_approval_wait,
)
from promoter.model.verdicts import PASSED, Evidence, Verdict

REGION = "us-east-1"
DIGEST = "sha256:" + "ab" * 32
EXPIRES_AT = 1_796_000_400.0  # 2026-11-30T01:00:00Z
EXPIRES_TEXT = "2026-11-30T01:00:00Z"


@dataclass(frozen=True)
class Wait:
    repository: str = "app/api"
    digest: str = DIGEST
    rule: str = "prod"
    wait_id: str = "6f453dfcf396"


VERDICTS = {
    "signature": Verdict(
        PASSED, "signed by https://github.com/org/app/.github/workflows/release.yml@refs/heads/main"
    ),
    # A passed scan gives no reason: its evidence's summary says what it found.
    "scan": Verdict(PASSED, evidence=Evidence("scan", "no finding above HIGH (LOW 1)")),
}


@pytest.fixture
def sns_and_queue(aws_env: LocalAws) -> Iterator[tuple[Any, str, Any, str]]:
    """(sns, topic ARN, sqs, queue URL): a topic of this test's own with an SQS subscriber, on the
    session's local AWS. Not moto's `mock_aws()`: starting it resets every moto backend in the
    process, and the local AWS's moto runs in the test process, so the session's tables, queues
    and buses were wiped for every later test in the worker (the fault tier's idempotency table)."""
    kw: dict[str, Any] = {"endpoint_url": aws_env.endpoint, "region_name": aws_env.region}
    sns, sqs = boto3.client("sns", **kw), boto3.client("sqs", **kw)
    name = f"approvals-{uuid.uuid4().hex[:10]}"
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    yield sns, topic, sqs, queue
    sns.delete_topic(TopicArn=topic)
    sqs.delete_queue(QueueUrl=queue)


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    """The process's Powertools metric set (shared by every Metrics), emptied around the test."""
    shared = Metrics(namespace=settings.METRICS_NAMESPACE, service=settings.SERVICE_NAME)
    shared.clear_metrics()
    yield shared
    shared.clear_metrics()


def received(sqs: Any, queue: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_the_message_is_a_chatbot_notification_naming_image_rule_requester_gates_expiry_and_commands(
    sns_and_queue, metrics
):
    sns, topic, sqs, queue = sns_and_queue

    published = notify_approval_wait(
        topic,
        Wait(),
        "prod",
        VERDICTS,
        EXPIRES_AT,
        "arn:aws:sts::111122223333:assumed-role/ci/run-42",
        min_approvals=2,
        targets=["app/prod:1.4.2"],
        client=sns,
    )

    assert published is True
    [envelope] = received(sqs, queue)
    assert envelope["Subject"].startswith("Approval needed: app/api@sha256:abababababab")
    message = json.loads(envelope["Message"])
    assert (message["version"], message["source"]) == ("1.0", "custom")
    content = message["content"]
    assert content["textType"] == "client-markdown"
    description = content["description"]
    assert DIGEST in description and "app/api" in description
    assert "`prod`" in description and "`app/prod:1.4.2`" in description
    assert "arn:aws:sts::111122223333:assumed-role/ci/run-42" in description
    assert "`signature` `passed`: `signed by https://github.com/org/app" in description
    assert "`scan` `passed`: `no finding above HIGH (LOW 1)`" in description
    assert EXPIRES_TEXT in description and "2 distinct approvers" in description
    assert 'promoter approve 6f453dfcf396 --reason "..."' in description
    assert 'promoter reject 6f453dfcf396 --reason "..."' in description
    assert content["nextSteps"] == [
        '`promoter approve 6f453dfcf396 --reason "..."`',
        '`promoter reject 6f453dfcf396 --reason "..."`',
    ]
    assert message["metadata"]["threadId"] == "6f453dfcf396"
    assert message["metadata"]["additionalContext"]["digest"] == DIGEST
    assert APPROVAL_NOTIFICATION_FAILURES_METRIC not in metrics.metric_set


def test_an_unknown_requester_is_said_so_and_free_text_cannot_break_out_of_its_code_span():
    _, message = approval_message(
        Wait(), "prod", {"scan": Verdict(PASSED, "ok `<!channel>`\x1b[2J")}, EXPIRES_AT, None
    )
    description = message["content"]["description"]
    assert "*Requested by:* unknown" in description
    assert "<!channel>" in description  # shown inside a code span: no mention, no formatting
    assert "`ok '<!channel>''[2J`" in description
    assert "\x1b" not in json.dumps(message, ensure_ascii=False)


def test_a_publish_that_fails_is_logged_at_error_and_counted_never_raised(sns_and_queue, metrics, caplog):
    sns, topic, sqs, queue = sns_and_queue
    missing = topic.rsplit(":", 1)[0] + ":deleted-topic"

    with caplog.at_level(logging.ERROR, logger="promoter.aws.notify"):
        published = notify_approval_wait(missing, Wait(), "prod", VERDICTS, EXPIRES_AT, None, client=sns)

    assert published is False
    assert metrics.metric_set[APPROVAL_NOTIFICATION_FAILURES_METRIC]["Value"] == [1.0]
    [record] = [r for r in caplog.records if r.name == "promoter.aws.notify"]
    assert record.levelno == logging.ERROR
    assert "6f453dfcf396" in record.getMessage() and "deleted-topic" in record.getMessage()
    assert received(sqs, queue) == []
