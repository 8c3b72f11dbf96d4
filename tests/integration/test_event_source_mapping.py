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


def test_an_invocation_past_its_timeout_is_abandoned_its_late_answer_deletes_nothing(queues):
    """Lambda ends an invocation at its timeout: the batch comes back after the visibility timeout
    whatever the handler answers later. Here the handler answers "all done" after the timeout."""
    import threading

    sqs, queue, _ = queues
    sqs.send_message(QueueUrl=queue, MessageBody="slow")
    release, answered = threading.Event(), threading.Event()

    def handler(event, context):
        assert release.wait(60)  # held until the test has seen the timeout
        answered.set()
        return {"batchItemFailures": []}  # would delete the message, were it still listened to

    verdicts = []
    esm = EventSourceMapping(
        sqs, queue, handler, batch_size=10, max_concurrency=1, timeout_seconds=1,
        observer=lambda event, invocation: verdicts.append(invocation),
    )
    while esm.poll_once() == 0:
        pass
    esm.wait_idle()  # returns once the invocation timed out, with the handler still running
    assert not answered.is_set()
    [invocation] = esm.invocations
    assert invocation.timed_out and invocation.error == "Task timed out after 1 seconds"
    assert verdicts == [invocation] and len(invocation.failed_ids) == 1
    release.set()
    assert answered.wait(60)
    esm.close()
    deadline = time.monotonic() + 30
    bodies: list[str] = []
    while not bodies and time.monotonic() < deadline:  # visible again after its visibility timeout
        bodies = _bodies(sqs, queue)
    assert bodies == ["slow"]
