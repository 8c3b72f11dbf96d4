"""The stack's event path on the local AWS: rule (the stack's own pattern) -> SQS queue with a DLQ.

Also stages a promotion config as the stack does (parsed, as JSON) and makes the environment the
stack gives the Lambda, so the handler runs here as it runs there.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.world import World
from promoter import settings
from promoter.config import parse_config

# The stack's values (infra/construct.py): visibility = 6 x the function timeout (5 min), 5 receives.
VISIBILITY_TIMEOUT_SECONDS = 6 * 300
MAX_RECEIVE_COUNT = 5


@dataclass(frozen=True)
class Wiring:
    queue_url: str
    dlq_url: str
    config_file: Path


def wire(world: World, name: str, source: str, target: str, tags: str = "sha-*") -> Wiring:
    """A rule `source:<tags>` -> `target:{tag}`, its config staged, its pushes routed to a queue."""
    from infra.event_patterns import push_event_pattern

    config = parse_config(
        {
            "rules": [
                {
                    "name": name,
                    "source": {"repository": source, "tags": [tags]},
                    "targets": [{"repository": target, "tags": ["{tag}"]}],
                }
            ]
        }
    )
    config_file = world.work / f"{name}-{settings.STAGED_CONFIG_FILE}"
    config_file.write_text(config.to_json())
    sqs, events = world.client("sqs"), world.client("events")
    suffix = uuid.uuid4().hex[:8]
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq-{suffix}")["QueueUrl"]
    redrive = json.dumps(
        {"deadLetterTargetArn": queue_arn(sqs, dlq_url), "maxReceiveCount": MAX_RECEIVE_COUNT}
    )
    queue_url = sqs.create_queue(
        QueueName=f"{name}-{suffix}",
        Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS)},
    )["QueueUrl"]
    pattern = push_event_pattern(r.source.repository for r in config.rules_for("push"))
    rule = f"{name}-{suffix}"
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn(sqs, queue_url)}])
    return Wiring(queue_url, dlq_url, config_file)


def queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def queue_depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def lambda_env(config_file: Path) -> dict[str, str]:
    """What the stack sets on the function (tables are the local defaults the local AWS creates)."""
    return settings.function_environment(config_path=str(config_file))


def receive_all(sqs: Any, url: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Takes `count` messages off a queue (deleting them); raises if they do not all arrive."""
    import time

    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in response.get("Messages", []):
            got.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    if len(got) < count:
        raise RuntimeError(f"only {len(got)} of {count} events reached {url}")
    return got
