"""ECR's EventBridge events, delivered through moto's default bus in this process.

The public PutEvents API rejects the `aws.ecr` source, so events go straight to the rules of the
bus in moto's events backend, which routes them to their targets (SQS etc.).
"""

from __future__ import annotations

import copy
import logging
import time
import uuid

from local_aws.store import Scope

LOG = logging.getLogger(__name__)
DETAIL_TYPE_IMAGE_ACTION = "ECR Image Action"


def image_action_detail(
    repo: str,
    digest: str,
    action: str,
    tag: str | None,
    media_type: str | None,
    artifact_media_type: str | None,
) -> dict[str, str]:
    """The `detail` of an `ECR Image Action` event, shaped like events/ecr-push.json."""
    detail = {"result": "SUCCESS", "repository-name": repo, "image-digest": digest, "action-type": action}
    if artifact_media_type:
        detail["artifact-media-type"] = artifact_media_type
    detail["image-tag"] = tag or ""
    if media_type:
        detail["manifest-media-type"] = media_type
    return detail


class EventSink:
    """Puts events on the default bus of the scope's account and region (moto, in-process).

    moto's own `put_events` renders targets through a template that drops `account` and turns
    `time` into epoch seconds; ECR's events carry both as AWS sends them, so the envelope is built
    here and handed to each matching rule as is (rules with an InputTransformer still get theirs).
    """

    def __init__(self) -> None:
        self.emitted = 0

    def emit(self, scope: Scope, detail_type: str, detail: dict[str, str]) -> None:
        from moto.events.models import events_backends

        envelope = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.ecr",
            "account": scope.account,
            # Epoch seconds: moto's SQS delivery renders it as ECR's ISO-8601 `time`.
            "time": float(int(time.time())),
            "region": scope.region,
            "resources": [],
            "detail": detail,
        }
        try:
            bus = events_backends[scope.account][scope.region].describe_event_bus("default")
            for rule in list(bus.rules.values()):
                if rule.state != "ENABLED":
                    continue
                transform = any("InputTransformer" in t for t in rule.targets)
                rule.send_to_targets(copy.deepcopy(envelope), transform_input=transform)
            self.emitted += 1
        except Exception:  # best effort, like EventBridge itself; never fail the ECR call
            LOG.exception("could not deliver %s event", detail_type)
