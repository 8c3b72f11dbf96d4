"""DynamoDB unavailable for a while: events wait (redelivery) instead of promoting unguarded, and
a promotion whose success could not be recorded is not done again when the store comes back."""

from __future__ import annotations

import pytest

from local_aws import images as im

pytestmark = pytest.mark.integration

# Attempts botocore makes for one DynamoDB write in the suite (AWS_MAX_ATTEMPTS, tests/faults/conftest.py).
# The outages are counted in calls, not seconds: on a loaded machine a few seconds can pass before
# the handler's first write, and a timed outage would be over before it began.
WRITE_ATTEMPTS = 2


def config_for(source: str, target: str) -> dict:
    return {
        "rules": [
            {
                "name": "dev-to-staging",
                "source": {"repository": source, "tags": ["sha-*"]},
                "targets": [{"repository": target, "tags": ["{tag}"]}],
            }
        ]
    }


def digest_of(ecr, repository: str, tag: str) -> str | None:
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return images[0]["imageId"]["imageDigest"] if images else None


def test_idempotency_store_outage_delays_promotions_and_loses_none(pipeline, repos, aws_env):
    source, target = repos("dev"), repos("staging")
    flow = pipeline(config_for(source, target))
    pushed = {f"sha-{i}": im.image((256,)) for i in range(3)}
    for tag, image in pushed.items():
        flow.pusher.push(source, image, tag)
    aws_env.control.reset_calls()
    # Every attempt of the first idempotency write fails: that record goes back to the queue.
    aws_env.control.fail_next("DynamoDB.PutItem", "InternalServerError", count=WRITE_ATTEMPTS)

    flow.run()

    ends = flow.assert_every_event_accounted()
    assert list(ends.values()) == ["handled"] * 3
    retried = [d for d in flow.ledger.deliveries if d.status == "retry"]
    assert retried, "the outage did not reach the handler"
    assert all("idempotency" in (flow.reason(d.message_id) or "").lower() for d in retried)
    for tag, image in pushed.items():
        assert digest_of(flow.ecr, target, tag) == image.digest
        assert len(flow.ledger.promoted(target, tag)) == 1
    # No promotion ran while its guard could not be written: one PutImage per image.
    assert aws_env.control.calls_by_repository()["PutImage"] == {target: 3}


def test_success_not_recorded_is_not_promoted_again(pipeline, repos, aws_env):
    source, target = repos("dev"), repos("staging")
    flow = pipeline(config_for(source, target))
    image = im.image((256,))
    flow.pusher.push(source, image, "sha-1")
    aws_env.control.reset_calls()
    # The promotion runs, then its COMPLETED record cannot be written: the INPROGRESS record
    # stays until the invocation's time is up, and the redelivery after it finds the tag in place.
    aws_env.faults.before(
        "PutImage",
        lambda: aws_env.faults.fail_next(
            "DynamoDB.UpdateItem", "ProvisionedThroughputExceededException", count=WRITE_ATTEMPTS
        ),
        match={"repositoryName": target},
    )

    flow.run()

    ends = flow.assert_every_event_accounted()
    assert list(ends.values()) == ["handled"]
    outcomes = [(a["outcome"], bool(a.get("replayed"))) for a in flow.ledger.actions()]
    assert outcomes[-1] == ("already-present", False)
    # The run that wrote the tag reports `failed` (its record was not saved), never `promoted` twice.
    assert outcomes[0] == ("failed", False)
    assert aws_env.control.calls_by_repository()["PutImage"] == {target: 1}
    assert digest_of(flow.ecr, target, "sha-1") == image.digest
