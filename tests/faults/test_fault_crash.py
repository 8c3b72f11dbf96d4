"""A crash between the children and the index: the runtime dies right before the tagged PutImage.

Nothing of the function's own cleanup runs (no idempotency record deleted), so the batch comes
back after the visibility timeout, the record blocks its key until the invocation's time is up,
and the redelivery finishes the job: the index put once, the children not put again, and no tag
ever on an image whose children are missing.
"""

from __future__ import annotations

import pytest

from local_aws import images as im
from promoter import handler

pytestmark = pytest.mark.integration


class RuntimeCrashed(BaseException):
    """The Lambda runtime dies mid-invocation (out of memory, killed): no except clause sees it."""


def digest_of(ecr, repository: str, tag: str) -> str | None:
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return images[0]["imageId"]["imageDigest"] if images else None


def test_crash_before_the_index_is_finished_by_the_redelivery_without_repeating_work(
    pipeline, repos, aws_env
):
    source, target = repos("dev"), repos("prod")
    config = {
        "rules": [
            {
                "name": "dev-to-prod",
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": target, "tags": ["{tag}"]}],
            }
        ]
    }
    flow = pipeline(config)
    before_crash, crashing = (
        im.multi_arch(platforms=("linux/amd64", "linux/arm64"), layer_size=256, attestations=False)
        for _ in range(2)
    )
    flow.pusher.push(source, before_crash, "v0")
    flow.pusher.push(source, crashing, "v1")
    seen_at_crash: list[dict] = []

    def crash_before_the_tagged_put(params, **_kwargs):
        if params.get("imageTag") == "v1" and not seen_at_crash:
            listed = flow.ecr.list_images(repositoryName=target)["imageIds"]
            seen_at_crash.append(
                {"tags": {i.get("imageTag") for i in listed}, "digests": {i["imageDigest"] for i in listed}}
            )
            raise RuntimeCrashed("the runtime died before PutImage v1")

    handler.runtime().ecr.meta.events.register(
        "before-parameter-build.ecr.PutImage", crash_before_the_tagged_put
    )
    aws_env.control.reset_calls()

    flow.run()

    ends = flow.assert_every_event_accounted()
    assert set(ends.values()) == {"handled"} and len(ends) == 2
    assert [d.status for d in flow.ledger.deliveries].count("crash") >= 1
    [at_crash] = seen_at_crash
    assert {c.digest for c in crashing.children} <= at_crash["digests"]
    assert "v1" not in at_crash["tags"]  # no tag on a half-copied image
    assert digest_of(flow.ecr, target, "v0") == before_crash.digest
    assert digest_of(flow.ecr, target, "v1") == crashing.digest
    assert len(flow.ledger.promoted(target, "v0")) == len(flow.ledger.promoted(target, "v1")) == 1
    # Each image: two children and the index, each put once, the crash and redeliveries included.
    assert aws_env.control.calls_by_repository()["PutImage"] == {target: 6}
