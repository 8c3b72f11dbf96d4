"""The same event delivered many times, to several workers at once: one promotion, the rest wait
for it (idempotency INPROGRESS -> redelivery) and are answered from its record."""

from __future__ import annotations

import json
import time

import pytest

from local_aws import images as im

pytestmark = pytest.mark.integration

COPIES = 8
# How long the winner's tagged put may wait for a copy to meet its INPROGRESS record: a bound for
# a hung test, well inside the suite's function timeout (it is not a measure of anything).
HOLD_GUARD_SECONDS = 10


def test_concurrent_duplicates_promote_once_and_every_copy_ends_as_a_result(pipeline, repos, aws_env):
    source, target = repos("dev"), repos("staging")
    config = {
        "rules": [
            {
                "name": "dev-to-staging",
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": target, "tags": ["{tag}"]}],
            }
        ]
    }
    # The suite's function timeout is above the winner's run (past it, the local event source
    # mapping ends the invocation as Lambda does and Powertools rightly lets a copy take over).
    flow = pipeline(config, max_concurrency=4, batch_size=1)
    image = im.multi_arch(platforms=("linux/amd64", "linux/arm64"), layer_size=256, attestations=False)
    flow.pusher.push(source, image, "v1")
    [pushed] = flow.sqs.receive_message(QueueUrl=flow.queue_url, MaxNumberOfMessages=10)["Messages"]
    flow.sqs.delete_message(QueueUrl=flow.queue_url, ReceiptHandle=pushed["ReceiptHandle"])
    assert json.loads(pushed["Body"])["detail"]["image-tag"] == "v1"  # the real ECR push event
    # The winner holds its INPROGRESS record before the tagged put until a copy has met that
    # record and gone back to the queue (however slowly a loaded machine delivers the copies).
    def hold_until_a_copy_waits() -> None:
        end = time.monotonic() + HOLD_GUARD_SECONDS
        while time.monotonic() < end and not any(d.status == "retry" for d in flow.ledger.deliveries):
            time.sleep(0.05)

    aws_env.faults.before(
        "PutImage", hold_until_a_copy_waits, match={"repositoryName": target, "imageTag": "v1"}
    )
    aws_env.control.reset_calls()
    sent = {flow.send(pushed["Body"]) for _ in range(COPIES)}

    flow.run()

    ends = flow.assert_every_event_accounted()
    assert ends == dict.fromkeys(sent, "handled")
    assert len(flow.ledger.promoted(target, "v1")) == 1
    # Two children and the index, each put once: no copy wrote anything again.
    assert aws_env.control.calls_by_repository()["PutImage"] == {target: 3}
    busy = [d for d in flow.ledger.deliveries if d.status == "retry"]
    assert busy, "no copy met the winner's INPROGRESS record: the deliveries were not concurrent"
    replayed = [a for a in flow.ledger.actions() if a.get("replayed")]
    # Each copy answered once from the record: none was received again while still in flight.
    assert len(replayed) == COPIES - 1
    assert (
        flow.ecr.batch_get_image(repositoryName=target, imageIds=[{"imageTag": "v1"}])["images"][0][
            "imageId"
        ]["imageDigest"]
        == image.digest
    )
