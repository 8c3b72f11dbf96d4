"""`promoter local --config` tells approvers as the stack does (issue 20): the function gets
ALARM_TOPIC_ARN for `notify: alarm-topic` and the topics the gates name exist on the local AWS, so a
request that waits for approval publishes its notification, with the approve command, on each."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from local_aws import images
from local_aws.images import EcrPusher
from local_aws.stack_route import ALARM_TOPIC_NAME
from tests.integration.test_local_promoter import (
    PROMOTER,
    PROMOTION_TIMEOUT_SECONDS,
    START_TIMEOUT_SECONDS,
    Terminal,
    cli,
    pasted_environment,
    stop,
)

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"  # the local AWS's account
REGION = "us-east-1"
APPROVER = f"arn:aws:iam::{ACCOUNT}:user/alice"
RELEASES = f"arn:aws:sns:{REGION}:{ACCOUNT}:releases"
ELSEWHERE = "arn:aws:sns:eu-west-1:111122223333:releases"
CONFIG = f"""\
rules:
  - name: to-prod
    trigger: request
    source: {{repository: app-staging, tags: ["v*"]}}
    require: {{approval: {{approvers: ["{APPROVER}"], notify: alarm-topic}}}}
    targets: [{{repository: app-prod}}]
  - name: to-qa
    trigger: request
    source: {{repository: app-staging, tags: ["v*"]}}
    require: {{approval: {{approvers: ["{APPROVER}"], notify: "{RELEASES}"}}}}
    targets: [{{repository: app-qa}}]
  - name: to-dr
    trigger: request
    source: {{repository: app-staging, tags: ["v*"]}}
    require: {{approval: {{approvers: ["{APPROVER}"], notify: "{ELSEWHERE}"}}}}
    targets: [{{repository: app-dr}}]
"""


def _clients(env: dict[str, str]) -> dict[str, Any]:
    kw = {
        "endpoint_url": env["AWS_ENDPOINT_URL"],
        "region_name": env["AWS_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }
    return {name: boto3.client(name, **kw) for name in ("ecr", "sns", "sqs")}


def _subscriber(clients: dict[str, Any], topic: str, name: str) -> str:
    """A queue subscribed to `topic` (raw delivery): what a Chatbot relay or a person would read."""
    sqs = clients["sqs"]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients["sns"].subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    return url


def _notification(sqs: Any, url: str) -> dict[str, Any]:
    """The one message on the queue, waited for with a bound (the condition ends the wait)."""
    deadline = time.monotonic() + PROMOTION_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if messages:
            assert len(messages) == 1, messages
            return json.loads(messages[0]["Body"])
    raise AssertionError(f"no notification reached {url} in {PROMOTION_TIMEOUT_SECONDS} s")


def test_a_local_approval_wait_notifies_the_alarm_topic_and_the_rules_own_topic(tmp_path: Path):
    config = tmp_path / "promotion.yaml"
    config.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [*PROMOTER, "local", "--port", "0", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    terminal = Terminal(proc)
    try:
        terminal.until(r"^# Ctrl-C", START_TIMEOUT_SECONDS)
        ready = list(terminal.seen)
        env.update(pasted_environment(ready))
        alarm_topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:{ALARM_TOPIC_NAME}"
        assert (
            f"#   approval waits are told on SNS {alarm_topic}, {RELEASES} (subscribe a queue to read them)"
            in ready
        )
        assert f"#   {ELSEWHERE}: not this local AWS's account and region, nobody is told there" in ready
        clients = _clients(env)
        inboxes = {
            topic: _subscriber(clients, topic, f"inbox-{i}")
            for i, topic in enumerate((alarm_topic, RELEASES))
        }
        # promoter local made the rules' repositories
        image = images.image((41,))
        EcrPusher(clients["ecr"]).push("app-staging", image, "v1.0.0")

        requested = cli(
            env, "request", "--repository", "app-staging", "--tag", "v1.0.0", "--requested-by", "ci"
        )

        assert requested.returncode == 0, requested.stderr
        told = {topic: _notification(clients["sqs"], url) for topic, url in inboxes.items()}
        for topic, rule in ((alarm_topic, "to-prod"), (RELEASES, "to-qa")):
            description = told[topic]["content"]["description"]
            assert rule in description and image.digest in description
            assert re.search(r"promoter approve [0-9a-f]{12} --reason", description), description
    finally:
        assert stop(proc) == 0, proc.stderr.read() if proc.stderr else ""
