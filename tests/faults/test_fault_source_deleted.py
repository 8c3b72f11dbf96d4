"""The source image deleted mid-promotion: a clear `failed` outcome, handled once (a redelivery
cannot bring the image back), and no tag in the target."""

from __future__ import annotations

import boto3
import pytest

from local_aws import images as im

pytestmark = pytest.mark.integration

# Where the deletion lands: just before the promoter reads the source tree (after planning and
# the target check), or after reading it, just before the blobs are copied.
DELETE_POINTS = {
    "before-source-read": ("BatchGetImage", "source"),
    "before-blob-copy": ("BatchCheckLayerAvailability", "target"),
}


@pytest.mark.parametrize("point", sorted(DELETE_POINTS))
def test_source_deleted_mid_promotion_fails_clearly_without_a_partial_tag(point, pipeline, repos, aws_env):
    source, target = repos("dev"), repos("staging")
    config = {
        "rules": [
            {
                "name": "dev-to-staging",
                "source": {"repository": source, "tags": ["sha-*"]},
                "targets": [{"repository": target, "tags": ["{tag}"]}],
            }
        ]
    }
    flow = pipeline(config)
    image = im.image((512, 256))
    flow.pusher.push(source, image, "sha-gone")
    admin = boto3.client("ecr", endpoint_url=aws_env.endpoint, region_name=aws_env.region)
    deleted: list[dict] = []

    def delete_source() -> None:
        deleted.append(
            admin.batch_delete_image(repositoryName=source, imageIds=[{"imageDigest": image.digest}])
        )

    op, where = DELETE_POINTS[point]
    aws_env.faults.before(
        op, delete_source, match={"repositoryName": source if where == "source" else target}
    )
    aws_env.control.reset_calls()

    flow.run()

    assert deleted and deleted[0]["imageIds"], "the hook did not delete the source"
    ends = flow.assert_every_event_accounted()
    assert list(ends.values()) == ["handled"]
    [action] = flow.ledger.actions()
    assert action["outcome"] == "failed"
    # "source image ... no longer exists", or the layer "not associated with an image".
    assert source in action["reason"] and (
        "no longer exists" in action["reason"] or "image" in action["reason"]
    )
    assert [d.status for d in flow.ledger.deliveries] == ["handled"]  # not redelivered in vain
    assert flow.ecr.list_images(repositoryName=target)["imageIds"] == []
    assert "PutImage" not in aws_env.control.calls_by_repository()
