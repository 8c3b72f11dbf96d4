"""The local SQS event source mapping behaves as Lambda's does for the promoter's queue."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from local_aws.event_source_mapping import EventSourceMapping


@pytest.fixture
def queues(aws_env, unique_name):
    sqs = boto3.client("sqs", endpoint_url=aws_env.endpoint, region_name="us-east-1")
    base = unique_name("esm").replace("/", "-")
    dlq = sqs.create_queue(QueueName=f"{base}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName=base,
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    return sqs, queue, dlq


def _bodies(sqs, url):
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    return sorted(m["Body"] for m in got)


def test_reported_failures_are_redelivered_then_dead_lettered_and_successes_deleted(queues):
    sqs, queue, dlq = queues
    for body in ("ok-1", "bad", "ok-2"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    seen: list[str] = []

    def handler(event, context):
        assert context.get_remaining_time_in_millis() > 0
        seen.extend(r["body"] for r in event["Records"])
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                                      if r["body"] == "bad"]}

    esm = EventSourceMapping(sqs, queue, handler, batch_size=10, max_concurrency=1)
    deadline = time.monotonic() + 20
    while seen.count("bad") < 2 and time.monotonic() < deadline:
        esm.poll_once()
        esm.wait_idle()
    time.sleep(1.2)  # the second failed receive's visibility timeout; then redrive moves it
    esm.poll_once()
    esm.close()
    assert seen.count("ok-1") == 1 and seen.count("ok-2") == 1
    assert seen.count("bad") == 2
    assert _bodies(sqs, queue) == []
    assert _bodies(sqs, dlq) == ["bad"]


def test_a_handler_error_fails_the_whole_batch_and_nothing_is_deleted(queues):
    sqs, queue, _ = queues
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    def handler(event, context):
        raise RuntimeError("function crashed")

    esm = EventSourceMapping(sqs, queue, handler, batch_size=10, max_concurrency=1)
    while esm.poll_once() == 0:
        pass
    esm.close()
    assert esm.invocations[0].error is not None
    time.sleep(1.2)
    assert _bodies(sqs, queue) == ["a", "b"]
