"""The operator's path on the local AWS, through the `promoter` command as a user runs it:
`--stack NAME` finds a deployed stack's resources from its CloudFormation outputs (moto serves
DescribeStacks), `request` posts to the promoter's bus and never silently to `default`, and
`redrive` moves both dead-letter queues back into the queue without losing a message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from local_aws import images as im
from local_aws.enforcement import deliver_as_eventbridge
from local_aws.event_source_mapping import EventSourceMapping
from local_aws.principals import EVENTBRIDGE_SENDER_ID
from local_aws.stack_route import queue_arn, route_pushes
from promoter import settings
from promoter.model.config import parse_config
from promoter.model.senders import REDRIVEN_SENDER_ATTRIBUTE
from promoter_cli.resources import QUEUE_URL_ENV

pytestmark = pytest.mark.integration

# EventBridge's attributes on an event it dead-letters (EventBridge user guide, "Using dead-letter
# queues to process undelivered events"); the body is the event itself.
DELIVERY_FAILURE_ATTRIBUTES = {
    "ERROR_CODE": "SDK_CLIENT_ERROR",
    "ERROR_MESSAGE": "Failed to send message to the target queue",
    "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
    "RETRY_ATTEMPTS": "8",
    "RULE_ARN": "arn:aws:events:us-east-1:123456789012:rule/ImagePromoter-PushRule",
    "TARGET_ARN": "arn:aws:sqs:us-east-1:123456789012:ImagePromoter-Queue",
}


def promoter_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`promoter ...` in a child process, on the test's AWS environment (the local AWS)."""
    return subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def deploy_outputs(endpoint: str, outputs: dict[str, str]) -> str:
    """A CloudFormation stack on the local AWS whose outputs are `outputs` (what `cdk deploy` leaves
    behind, minus the resources, which the test creates itself); returns its name."""
    name = f"ImagePromoter-{uuid.uuid4().hex[:8]}"
    template = {
        # A stack needs one resource; a topic is one moto's CloudFormation creates.
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", endpoint_url=endpoint).create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )
    return name


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def bodies(sqs: Any, url: str) -> list[str]:
    """Every body in the queue, each received once and deleted."""
    got: list[str] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not batch:
            return got
        for message in batch:
            got.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@dataclass
class Deployed:
    """The stack's queue route on the local AWS: the push rule -> queue (-> processing DLQ after one
    failed receive), the delivery DLQ beside it, and a stack whose outputs name them."""

    sqs: Any
    stack: str
    queue_url: str
    processing_dlq_url: str
    delivery_dlq_url: str
    source: str
    target: str
    config_file: Path

    def event_from_a_push(self, pusher: im.EcrPusher, tag: str) -> tuple[str, str]:
        """Pushes source:tag; returns (digest, the event body the push rule put into the queue),
        taken out of the queue again."""
        image = im.image((256 + len(tag),))
        pusher.push(self.source, image, tag)
        (body,) = wait_for_bodies(self.sqs, self.queue_url, 1)
        return image.digest, body

    def dead_letter_after_processing_failed(self, body: str) -> None:
        """EventBridge puts the body into the queue and it fails its one allowed receive: SQS moves
        it to the DLQ (EventBridge's SenderId and all)."""
        deliver_as_eventbridge(self.queue_url, body)
        first = self.sqs.receive_message(QueueUrl=self.queue_url, VisibilityTimeout=0)["Messages"]
        assert len(first) == 1
        again = self.sqs.receive_message(QueueUrl=self.queue_url, WaitTimeSeconds=0).get("Messages", [])
        assert again == []  # over maxReceiveCount: moved, not delivered
        assert depth(self.sqs, self.processing_dlq_url) >= 1

    def dead_letter_as_eventbridge_does(self, body: str) -> None:
        """What EventBridge puts in a rule target's DLQ when delivery to the queue fails for good."""
        deliver_as_eventbridge(self.delivery_dlq_url, body, DELIVERY_FAILURE_ATTRIBUTES)


def wait_for_bodies(sqs: Any, url: str, count: int) -> list[str]:
    got: list[str] = []
    for _ in range(20):
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            got.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if len(got) >= count:
            break
    return got


@pytest.fixture
def deployed(aws_env, ecr, unique_name, tmp_path) -> Deployed:
    source, target = unique_name("ops-src"), unique_name("ops-prod")
    for name in (source, target):
        ecr.create_repository(repositoryName=name)
    config = {
        "rules": [{"name": "ops", "source": {"repository": source}, "targets": [{"repository": target}]}]
    }
    config_file = tmp_path / settings.STAGED_CONFIG_FILE
    config_file.write_text(json.dumps(config))
    kw: dict[str, Any] = {"endpoint_url": aws_env.endpoint, "region_name": aws_env.region}
    sqs, events = boto3.client("sqs", **kw), boto3.client("events", **kw)
    route = route_pushes(
        sqs,
        events,
        parse_config(config),
        f"ops-{uuid.uuid4().hex[:10]}",
        visibility_timeout_seconds=30,
        max_receive_count=1,
    )
    delivery_dlq = sqs.create_queue(QueueName=f"{route.rule_name}-delivery-dlq")["QueueUrl"]
    stack = deploy_outputs(
        aws_env.endpoint,
        {
            settings.OUTPUT_QUEUE_URL: route.queue_url,
            settings.OUTPUT_DEAD_LETTER_QUEUE_URL: route.dlq_url,
            settings.OUTPUT_DELIVERY_DEAD_LETTER_QUEUE_URL: delivery_dlq,
            settings.OUTPUT_IDEMPOTENCY_TABLE: settings.DEFAULT_IDEMPOTENCY_TABLE,
            settings.OUTPUT_HISTORY_TABLE: settings.DEFAULT_HISTORY_TABLE,
        },
    )
    return Deployed(sqs, stack, route.queue_url, route.dlq_url, delivery_dlq, source, target, config_file)


@pytest.fixture
def handler_env(aws_env, monkeypatch) -> Iterator[None]:
    """The promoter's Lambda handler in this process, with the environment the stack gives it."""
    from promoter import handler

    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    handler.runtime.cache_clear()
    yield
    handler.runtime.cache_clear()


def promote_what_is_queued(deployed: Deployed, monkeypatch) -> list[Any]:
    """Lambda's event source mapping on the queue, running the promoter's handler."""
    from promoter import handler

    for key, value in settings.function_environment(config_path=str(deployed.config_file)).items():
        monkeypatch.setenv(key, value)
    handler.runtime.cache_clear()
    esm = EventSourceMapping(deployed.sqs, deployed.queue_url, handler.handle_queue, max_concurrency=1)
    try:
        return esm.drain(idle_polls=1, deadline_seconds=60)
    finally:
        esm.close()


def target_digest(ecr: Any, repository: str, tag: str) -> str | None:
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ImageNotFoundException:
        return None
    return found["imageDetails"][0]["imageDigest"]


# --- redrive ----------------------------------------------------------------------------------


def test_redrive_moves_both_dead_letter_queues_into_the_queue_and_the_events_get_promoted(
    deployed, pusher, ecr, handler_env, monkeypatch
):
    failed_digest, failed_body = deployed.event_from_a_push(pusher, "v1")
    undelivered_digest, undelivered_body = deployed.event_from_a_push(pusher, "v2")
    deployed.dead_letter_after_processing_failed(failed_body)
    deployed.dead_letter_as_eventbridge_does(undelivered_body)

    result = promoter_cli("redrive", "--stack", deployed.stack, "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is False
    by_queue = {q["queue"]: q for q in report["queues"]}
    assert [q["queue"] for q in report["queues"]] == [settings.REDRIVE_DELIVERY, settings.REDRIVE_PROCESSING]
    delivery, processing = by_queue[settings.REDRIVE_DELIVERY], by_queue[settings.REDRIVE_PROCESSING]
    assert (delivery["from"], delivery["to"]) == (deployed.delivery_dlq_url, deployed.queue_url)
    assert (processing["from"], processing["to"]) == (deployed.processing_dlq_url, deployed.queue_url)
    assert (delivery["moved"], processing["moved"]) == (1, 1)
    (undelivered,) = delivery["messages"]
    assert undelivered["event_id"] == json.loads(undelivered_body)["id"]
    assert undelivered["errors"]["ERROR_CODE"] == "SDK_CLIENT_ERROR"
    assert processing["messages"][0]["event_id"] == json.loads(failed_body)["id"]
    assert (
        depth(deployed.sqs, deployed.delivery_dlq_url)
        == depth(deployed.sqs, deployed.processing_dlq_url)
        == 0
    )

    invocations = promote_what_is_queued(deployed, monkeypatch)

    assert sum(i.records for i in invocations) == 2
    assert all(not i.failed_ids and i.error is None for i in invocations)
    assert target_digest(ecr, deployed.target, "v1") == failed_digest
    assert target_digest(ecr, deployed.target, "v2") == undelivered_digest


def test_redrive_sends_the_dead_lettered_bodies_byte_for_byte_without_eventbridge_attributes(
    deployed, pusher
):
    _, body = deployed.event_from_a_push(pusher, "v1")
    deployed.dead_letter_as_eventbridge_does(body)

    result = promoter_cli("redrive", "--stack", deployed.stack, "--queue", settings.REDRIVE_DELIVERY)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{settings.REDRIVE_DELIVERY}: moved 1 message(s)")
    (message,) = deployed.sqs.receive_message(QueueUrl=deployed.queue_url, MessageAttributeNames=["All"])[
        "Messages"
    ]
    assert message["Body"] == body
    # Only the SenderId it had in the dead-letter queue (EventBridge's), none of its error attributes.
    assert message["MessageAttributes"] == {
        REDRIVEN_SENDER_ATTRIBUTE: {"DataType": "String", "StringValue": EVENTBRIDGE_SENDER_ID}
    }


def test_a_dry_run_lists_the_dead_letters_and_moves_none(deployed, pusher):
    _, first = deployed.event_from_a_push(pusher, "v1")
    _, second = deployed.event_from_a_push(pusher, "v2")
    deployed.dead_letter_as_eventbridge_does(first)
    deployed.dead_letter_as_eventbridge_does(second)

    result = promoter_cli("redrive", "--stack", deployed.stack, "--dry-run", "--json")

    assert result.returncode == 0, result.stderr
    (delivery, processing) = json.loads(result.stdout)["queues"]
    assert (delivery["found"], delivery["moved"], processing["found"]) == (2, 0, 0)
    assert sorted(m["event_id"] for m in delivery["messages"]) == sorted(
        json.loads(b)["id"] for b in (first, second)
    )
    assert depth(deployed.sqs, deployed.queue_url) == 0
    # handed back at once, not held until a visibility timeout ends
    assert sorted(bodies(deployed.sqs, deployed.delivery_dlq_url)) == sorted([first, second])


def test_limit_bounds_how_many_messages_move_in_all(deployed, pusher):
    events = [deployed.event_from_a_push(pusher, f"v{i}")[1] for i in range(3)]
    for body in events:
        deployed.dead_letter_as_eventbridge_does(body)
    deployed.dead_letter_after_processing_failed(events[0])

    result = promoter_cli("redrive", "--stack", deployed.stack, "--limit", "2", "--json")

    assert result.returncode == 0, result.stderr
    moved = sum(q["moved"] for q in json.loads(result.stdout)["queues"])
    assert moved == 2
    assert depth(deployed.sqs, deployed.queue_url) == 2
    assert (
        depth(deployed.sqs, deployed.delivery_dlq_url) + depth(deployed.sqs, deployed.processing_dlq_url) == 2
    )


def test_a_failed_send_leaves_the_message_in_the_dead_letter_queue_and_a_later_redrive_moves_it(
    aws_env, deployed, pusher
):
    _, body = deployed.event_from_a_push(pusher, "v1")
    deployed.dead_letter_as_eventbridge_does(body)
    # Not retryable, so botocore's retries do not hide it (each attempt would fail anyway).
    aws_env.control.fail_next("SQS.SendMessage", "AccessDenied", count=10, message="queue policy denies")

    failed = promoter_cli(
        "redrive", "--stack", deployed.stack, "--queue", settings.REDRIVE_DELIVERY, "--json"
    )
    aws_env.control.clear_faults()

    assert failed.returncode == 1
    (report,) = json.loads(failed.stdout)["queues"]
    assert report["moved"] == 0 and "queue policy denies" in report["error"]
    assert depth(deployed.sqs, deployed.queue_url) == 0
    # still in the dead-letter queue, and visible at once for the next run
    again = promoter_cli("redrive", "--stack", deployed.stack, "--queue", settings.REDRIVE_DELIVERY, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["queues"][0]["moved"] == 1
    assert bodies(deployed.sqs, deployed.queue_url) == [body]


def test_a_failed_delete_after_the_send_duplicates_at_worst_and_idempotency_absorbs_it(
    aws_env, deployed, pusher, ecr, handler_env, monkeypatch
):
    digest, body = deployed.event_from_a_push(pusher, "v1")
    deployed.dead_letter_after_processing_failed(body)
    aws_env.control.fail_next("SQS.DeleteMessage", "AccessDenied", count=10, message="no delete for you")

    first = promoter_cli(
        "redrive", "--stack", deployed.stack, "--queue", settings.REDRIVE_PROCESSING, "--json"
    )
    aws_env.control.clear_faults()

    assert first.returncode == 1
    (report,) = json.loads(first.stdout)["queues"]
    (message,) = report["messages"]
    assert (message["moved"], message["deleted"]) == (True, False)
    assert "was sent, but deleting it" in report["error"]
    # the event is now in both queues: a copy, never a loss
    assert depth(deployed.sqs, deployed.queue_url) == depth(deployed.sqs, deployed.processing_dlq_url) == 1
    aws_env.control.reset_calls()
    promote_what_is_queued(deployed, monkeypatch)
    second = promoter_cli("redrive", "--stack", deployed.stack, "--queue", settings.REDRIVE_PROCESSING)
    assert second.returncode == 0, second.stderr
    invocations = promote_what_is_queued(deployed, monkeypatch)

    assert all(not i.failed_ids and i.error is None for i in invocations)
    assert target_digest(ecr, deployed.target, "v1") == digest
    # the copy was answered from the idempotency record: the target was written once
    assert aws_env.control.calls_by_repository()["PutImage"] == {deployed.target: 1}
    assert depth(deployed.sqs, deployed.processing_dlq_url) == depth(deployed.sqs, deployed.queue_url) == 0


def test_a_send_to_a_missing_queue_moves_nothing_and_loses_nothing(deployed, pusher):
    _, body = deployed.event_from_a_push(pusher, "v1")
    deployed.dead_letter_as_eventbridge_does(body)
    missing = deployed.queue_url.rsplit("/", 1)[0] + "/no-such-queue"

    result = promoter_cli("redrive", "--stack", deployed.stack, "--queue-url", missing)

    assert result.returncode == 1
    assert "not moved" in result.stdout and "no-such-queue" in result.stderr
    assert bodies(deployed.sqs, deployed.delivery_dlq_url) == [body]


def test_redrive_with_no_queue_known_says_how_to_name_one(aws_env):
    result = promoter_cli("redrive", env={QUEUE_URL_ENV: ""})
    assert result.returncode == 2
    assert "--stack NAME" in result.stderr and QUEUE_URL_ENV in result.stderr


def test_an_unknown_stack_is_bad_input_with_cloudformations_reason(aws_env):
    result = promoter_cli("redrive", "--stack", "NoSuchStack")
    assert result.returncode == 2
    assert "NoSuchStack" in result.stderr and "does not exist" in result.stderr


# --- request and the resolution order ---------------------------------------------------------


class BusInbox:
    """A rule on `bus` matching promotion requests -> a queue: what the request rule would see."""

    def __init__(self, endpoint: str, bus: str, source: str) -> None:
        kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        self.sqs = boto3.client("sqs", **kw)
        events = boto3.client("events", **kw)
        name = f"inbox-{uuid.uuid4().hex[:10]}"
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        events.put_rule(
            Name=name,
            EventBusName=bus,
            EventPattern=json.dumps({"source": [source], "detail-type": [settings.REQUEST_DETAIL_TYPE]}),
        )
        events.put_targets(
            Rule=name, EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn(self.sqs, self.url)}]
        )

    def events(self, count: int) -> list[dict[str, Any]]:
        return [json.loads(b) for b in wait_for_bodies(self.sqs, self.url, count)]


@pytest.fixture
def promotion_bus(aws_env) -> str:
    name = f"promotion-{uuid.uuid4().hex[:8]}"
    boto3.client("events", endpoint_url=aws_env.endpoint).create_event_bus(Name=name)
    return name


def test_request_refuses_to_post_to_the_default_bus_unless_named(aws_env, unique_name):
    default_inbox = BusInbox(aws_env.endpoint, "default", settings.DEFAULT_REQUEST_EVENT_SOURCE)
    repository = unique_name("req")

    refused = promoter_cli(
        "request", "--repository", repository, "--tag", "v1", env={settings.EVENT_BUS_ENV: ""}
    )
    named = promoter_cli("request", "--repository", repository, "--tag", "v1", "--bus", "default")

    assert refused.returncode == 2
    assert "--bus default" in refused.stderr and "--stack NAME" in refused.stderr
    assert named.returncode == 0, named.stderr
    (event,) = default_inbox.events(1)
    assert event["detail"]["repository-name"] == repository  # exactly one: the refused one never posted


def test_request_with_stack_posts_to_the_stack_bus_with_its_request_source(
    aws_env, promotion_bus, unique_name
):
    inbox = BusInbox(aws_env.endpoint, promotion_bus, "acme.ci")
    stack = deploy_outputs(
        aws_env.endpoint,
        {settings.OUTPUT_EVENT_BUS: promotion_bus, settings.OUTPUT_REQUEST_SOURCE: "acme.ci"},
    )
    repository = unique_name("req")

    # the stack's outputs win over the environment
    result = promoter_cli(
        "request",
        "--stack",
        stack,
        "--repository",
        repository,
        "--tag",
        "v3",
        env={settings.EVENT_BUS_ENV: "elsewhere"},
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["event-bus"] == promotion_bus
    (event,) = inbox.events(1)
    assert (event["source"], event["detail"]["image-tag"]) == ("acme.ci", "v3")


def test_an_explicit_bus_wins_over_the_stack_and_the_environment_over_local_defaults(
    aws_env, promotion_bus, unique_name
):
    inbox = BusInbox(aws_env.endpoint, promotion_bus, settings.DEFAULT_REQUEST_EVENT_SOURCE)
    stack = deploy_outputs(aws_env.endpoint, {settings.OUTPUT_EVENT_BUS: "not-this-one"})
    repository = unique_name("req")

    flagged = promoter_cli(
        "request", "--stack", stack, "--bus", promotion_bus, "--repository", repository, "--tag", "a"
    )
    from_env = promoter_cli(
        "request", "--repository", repository, "--tag", "b", env={settings.EVENT_BUS_ENV: promotion_bus}
    )

    assert flagged.returncode == 0, flagged.stderr
    assert from_env.returncode == 0, from_env.stderr
    assert sorted(e["detail"]["image-tag"] for e in inbox.events(2)) == ["a", "b"]


def test_history_with_stack_reads_the_stack_history_table_not_the_local_default(
    aws_env, ecr, pusher, unique_name
):
    table = f"ImagePromoter-HistoryTable-{uuid.uuid4().hex[:8]}"
    ddb = boto3.client("dynamodb", endpoint_url=aws_env.endpoint)
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
    )
    stack = deploy_outputs(
        aws_env.endpoint, {settings.OUTPUT_HISTORY_TABLE: table, settings.OUTPUT_EVENT_BUS: "default"}
    )
    source, target = unique_name("hist-src"), unique_name("hist-prod")
    for name in (source, target):
        ecr.create_repository(repositoryName=name)
    pusher.push(source, im.image((128,)), "v1")

    promoted = promoter_cli("promote", f"{source}:v1", "--to", target, "--stack", stack)
    in_stack = promoter_cli("history", "--repository", target, "--json", "--stack", stack)
    local_default = promoter_cli("history", "--repository", target, "--json")

    assert promoted.returncode == 0, promoted.stderr
    assert [r["outcome"] for r in json.loads(in_stack.stdout)] == ["promoted"]
    assert json.loads(local_default.stdout) == []
    assert ddb.scan(TableName=table)["Count"] == 1
