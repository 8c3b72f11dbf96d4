"""The stack's event path on the local AWS: rule (the stack's own pattern) -> SQS queue with a DLQ.

Also stages a promotion config as the stack does (parsed, as JSON) and makes the environment the
stack gives the Lambda, so the handler runs here as it runs there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.world import World
from local_aws.stack_route import route_pushes
from promoter import settings
from promoter.model.config import parse_config

# The stack's values (infra/construct.py): visibility = 6 x the function timeout (5 min), and its
# receives before the dead-letter queue.
VISIBILITY_TIMEOUT_SECONDS = 6 * 300
MAX_RECEIVE_COUNT = settings.MAX_RECEIVE_COUNT


@dataclass(frozen=True)
class Wiring:
    queue_url: str
    dlq_url: str
    config_file: Path


def wire(world: World, name: str, source: str, target: str, tags: str = "sha-*") -> Wiring:
    """A rule `source:<tags>` -> `target:{tag}`, its config staged, its pushes routed to a queue."""
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
    route = route_pushes(
        world.client("sqs"),
        world.client("events"),
        config,
        f"{name}-{uuid.uuid4().hex[:8]}",
        visibility_timeout_seconds=VISIBILITY_TIMEOUT_SECONDS,
        max_receive_count=MAX_RECEIVE_COUNT,
    )
    return Wiring(route.queue_url, route.dlq_url, config_file)


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
