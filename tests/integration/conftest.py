"""Integration helpers on the local AWS: image pushing, event capture through an SQS queue."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from local_aws import LocalAws
from local_aws.images import EcrPusher


@pytest.fixture
def pusher(ecr) -> EcrPusher:
    """Pushes built images through the ECR layer-upload API and PutImage."""
    return EcrPusher(ecr)


@pytest.fixture
def repo(ecr, unique_name) -> str:
    """A fresh MUTABLE repository."""
    name = unique_name("it")
    ecr.create_repository(repositoryName=name)
    return name


class EventCapture:
    """An EventBridge rule on the default bus -> an SQS queue, filtered to one repository."""

    def __init__(self, endpoint: str, repository: str) -> None:
        kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        self.sqs = boto3.client("sqs", **kw)
        self.events = boto3.client("events", **kw)
        name = f"cap-{uuid.uuid4().hex[:12]}"
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        pattern = {
            "source": ["aws.ecr"],
            "detail-type": ["ECR Image Action"],
            "detail": {"repository-name": [repository]},
        }
        self.events.put_rule(Name=name, EventPattern=json.dumps(pattern))
        self.events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])

    def wait(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """At least `count` events (their full envelopes), or what arrived before the timeout."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            resp = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            for msg in resp.get("Messages", []):
                got.append(json.loads(msg["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"])
            if len(got) < count:
                time.sleep(0.05)
        return got


@pytest.fixture
def capture_events(aws_env: LocalAws) -> Callable[[str], EventCapture]:
    """`capture_events(repo)` starts capturing ECR Image Action events for `repo`."""
    return lambda repository: EventCapture(aws_env.endpoint, repository)
