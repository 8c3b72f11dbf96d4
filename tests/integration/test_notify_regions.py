"""An approval gate's `notify` topic may live in another region than the function (one team's topic
for every region's promoter): SNS Publish must go to the topic's own region, where the topic is. On
the local AWS, which serves several regions (docs/local-aws.md), each topic has an SQS subscriber
in its region; the function runs in us-east-1 (AWS_DEFAULT_REGION) and publishes with no client
given, as the approval gate does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from promoter.aws import notify
from promoter.aws.notify import notify_approval_wait
from promoter.model.verdicts import PASSED, Verdict

pytestmark = pytest.mark.integration

HOME_REGION = "us-east-1"  # the function's (aws_env's AWS_DEFAULT_REGION)
OTHER_REGION = "eu-west-1"
DIGEST = "sha256:" + "cd" * 32
EXPIRES_AT = 1_796_000_400.0


@dataclass(frozen=True)
class Wait:
    repository: str = "app/api"
    digest: str = DIGEST
    rule: str = "to-prod"
    wait_id: str = "a1b2c3d4e5f6"


def _subscribed_topic(endpoint: str, region: str, name: str) -> tuple[str, Any, str]:
    """(topic ARN, sqs client, queue URL): a topic in `region` with a raw-delivery SQS subscriber."""
    kw = {"endpoint_url": endpoint, "region_name": region}
    sns, sqs = boto3.client("sns", **kw), boto3.client("sqs", **kw)
    topic = sns.create_topic(Name=name)["TopicArn"]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue, Attributes={"RawMessageDelivery": "true"})
    return topic, sqs, url


def _received(sqs: Any, url: str) -> list[dict[str, Any]]:
    """What the queue holds (a long poll bounded by the first message: delivery is part of Publish)."""
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2).get(
        "Messages", []
    )
    return [json.loads(m["Body"]) for m in messages]


def test_a_notify_topic_in_another_region_receives_the_approval_request(aws_env, unique_name):
    notify.sns_client.cache_clear()  # clients made by earlier tests may point elsewhere
    name = unique_name("approvals").replace("/", "-")[:80]
    home_topic, home_sqs, home_queue = _subscribed_topic(aws_env.endpoint, HOME_REGION, name)
    other_topic, other_sqs, other_queue = _subscribed_topic(aws_env.endpoint, OTHER_REGION, name)
    assert f":sns:{OTHER_REGION}:" in other_topic
    verdicts = {"signature": Verdict(PASSED, "notation signature by CN=e2e")}

    for topic in (home_topic, other_topic):  # one process, one client per region
        assert notify_approval_wait(topic, Wait(), "to-prod", verdicts, EXPIRES_AT, "alice") is True

    for sqs, queue in ((home_sqs, home_queue), (other_sqs, other_queue)):
        (message,) = _received(sqs, queue)
        assert message["metadata"]["additionalContext"]["wait-id"] == "a1b2c3d4e5f6"
        assert 'promoter approve a1b2c3d4e5f6 --reason "..."' in message["content"]["description"]
    assert notify.sns_client(OTHER_REGION).meta.region_name == OTHER_REGION


def test_the_topic_region_is_read_from_its_arn() -> None:
    assert notify.topic_region("arn:aws:sns:eu-west-1:111122223333:releases") == "eu-west-1"
    assert notify.topic_region("arn:aws-us-gov:sns:us-gov-west-1:111122223333:r.fifo") == "us-gov-west-1"
    assert notify.topic_region("not-an-arn") is None
