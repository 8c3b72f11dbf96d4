"""ECR's EventBridge events, put on moto's default bus in this process.

moto's `put_events` in the events backend routes to rule targets (SQS etc.) and accepts the
`aws.ecr` source that the public PutEvents API would reject, so emitting is a direct call.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

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
    """Puts events on the default bus of the scope's account and region (moto, in-process)."""

    def __init__(self) -> None:
        self.emitted = 0

    def emit(self, scope: Scope, detail_type: str, detail: dict[str, str]) -> None:
        from moto.events.models import events_backends

        entry = {
            "Source": "aws.ecr",
            "DetailType": detail_type,
            "Detail": json.dumps(detail),
            "Time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Resources": [],
        }
        try:
            events_backends[scope.account][scope.region].put_events([entry])
            self.emitted += 1
        except Exception:  # best effort, like EventBridge itself; never fail the ECR call
            LOG.exception("could not deliver %s event", detail_type)
