"""The stack's push route, built on the local AWS: a default-bus rule with the stack's own pattern
feeding an SQS queue that redrives to a dead-letter queue. The demo and the benchmarks drive the
Lambda handler through it, so what they exercise is what `infra` deploys."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infra.event_patterns import push_event_pattern
from promoter.model.config import PromotionConfig


@dataclass(frozen=True)
class PushRoute:
    """Where the push events of a configuration arrive (the rule is named like the queue)."""

    queue_url: str
    dlq_url: str
    rule_name: str


def route_pushes(
    sqs: Any,
    events: Any,
    config: PromotionConfig,
    queue_name: str,
    *,
    visibility_timeout_seconds: int,
    max_receive_count: int,
) -> PushRoute:
    """Creates `<queue_name>-dlq`, the queue (redrive after `max_receive_count` receives) and the
    rule for the push rules' source repositories."""
    dlq_url = str(sqs.create_queue(QueueName=f"{queue_name}-dlq")["QueueUrl"])
    dead_letters = queue_arn(sqs, dlq_url)
    redrive = json.dumps({"deadLetterTargetArn": dead_letters, "maxReceiveCount": max_receive_count})
    queue_url = str(
        sqs.create_queue(
            QueueName=queue_name,
            Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(visibility_timeout_seconds)},
        )["QueueUrl"]
    )
    pattern = push_event_pattern(r.source.repository_glob for r in config.rules_for("push"))
    events.put_rule(Name=queue_name, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=queue_name, Targets=[{"Id": "queue", "Arn": queue_arn(sqs, queue_url)}])
    return PushRoute(queue_url, dlq_url, queue_name)


def queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
