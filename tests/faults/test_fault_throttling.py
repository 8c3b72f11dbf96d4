"""A throttling storm: PutImage over its quota and a burst of ThrottlingException. Calls that
outlast botocore's retries hand the event back to SQS; every image still lands once."""

from __future__ import annotations

import pytest

from local_aws import images as im

pytestmark = pytest.mark.integration

TAGS = tuple(f"sha-{i}" for i in range(5))


def test_throttling_storm_delays_but_never_loses_or_repeats_a_promotion(
    pipeline, repos, aws_env, monkeypatch
):
    source, staging, qa = repos("dev"), repos("staging"), repos("qa")
    config = {
        "rules": [
            {
                "name": "fan-out",
                "source": {"repository": source, "tags": ["sha-*"]},
                "targets": [{"repository": t, "tags": ["{tag}"]} for t in (staging, qa)],
            }
        ]
    }
    # Two attempts per call (not six), so the storm reaches the SQS retry path within seconds.
    monkeypatch.setattr("promoter.aws.registry.ECR_MAX_ATTEMPTS", 2)
    flow = pipeline(config)
    pushed = {tag: im.image((256,)) for tag in TAGS}
    for tag, image in pushed.items():
        flow.pusher.push(source, image, tag)
    aws_env.control.reset_calls()
    aws_env.control.set_rate("PutImage", 4)
    aws_env.control.fail_next("PutImage", "ThrottlingException", count=8, message="Rate exceeded")

    flow.run()

    ends = flow.assert_every_event_accounted()
    assert list(ends.values()) == ["handled"] * len(TAGS)
    assert any(d.status == "retry" for d in flow.ledger.deliveries), "the storm never reached SQS"
    for target in (staging, qa):
        for tag, image in pushed.items():
            found = flow.ecr.batch_get_image(repositoryName=target, imageIds=[{"imageTag": tag}])
            assert found["images"][0]["imageId"]["imageDigest"] == image.digest
            assert len(flow.ledger.promoted(target, tag)) == 1, (target, tag)
    puts = aws_env.control.calls_by_repository()["PutImage"]
    assert sum(puts.values()) >= 2 * len(TAGS) + 8  # every throttled attempt was a real call
