"""Immutable conflicts: a tag held by another digest is reported as a conflict, once per delivery,
never retried into the DLQ and never moved; two images racing for one immutable tag: one wins."""

from __future__ import annotations

import pytest

from local_aws import images as im

pytestmark = pytest.mark.integration


def config_for(source: str, target: str) -> dict:
    return {
        "rules": [
            {
                "name": "release",
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": target, "tags": ["{tag}"]}],
            }
        ]
    }


def digest_of(ecr, repository: str, tag: str) -> str | None:
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return images[0]["imageId"]["imageDigest"] if images else None


def test_tag_held_by_another_digest_is_a_conflict_result_each_time(pipeline, repos, aws_env):
    source, target = repos("dev"), repos("prod", mutability="IMMUTABLE")
    flow = pipeline(config_for(source, target))
    released, rebuilt = im.image((256,)), im.image((256,))
    flow.pusher.push(target, released, "v1")
    flow.pusher.push(source, rebuilt, "v1")
    [pushed] = flow.sqs.receive_message(QueueUrl=flow.queue_url)["Messages"]
    flow.sqs.delete_message(QueueUrl=flow.queue_url, ReceiptHandle=pushed["ReceiptHandle"])
    sent = [flow.send(pushed["Body"]) for _ in range(3)]  # EventBridge delivers it more than once

    flow.run()

    assert flow.assert_every_event_accounted() == dict.fromkeys(sent, "handled")
    # Copies in flight together wait for each other (INPROGRESS -> retried); a conflict is not
    # stored, so each copy then looks again and gets its own conflict result.
    busy = [a for a in flow.ledger.actions() if a["outcome"] == "failed"]
    assert all("in progress" in a["reason"] for a in busy)
    conflicts = [a for a in flow.ledger.actions() if a["outcome"] != "failed"]
    assert len(conflicts) >= 3 and {a["outcome"] for a in conflicts} == {"conflict"}
    assert all("ImageTagAlreadyExistsException" in a["reason"] for a in conflicts)
    assert all(a["target_digest"] == released.digest for a in conflicts)
    assert not flow.dead_letters()
    assert digest_of(flow.ecr, target, "v1") == released.digest


def test_two_images_racing_for_one_immutable_tag_one_wins_the_other_conflicts(pipeline, repos, aws_env):
    source, target = repos("dev"), repos("prod", mutability="IMMUTABLE")
    flow = pipeline(config_for(source, target), max_concurrency=2, batch_size=1)
    first, second = im.image((256,)), im.image((256,))
    flow.pusher.push(source, first, "v2")
    flow.pusher.push(source, second, "v2")  # the source tag moved: two PUSH events, two digests
    aws_env.control.reset_calls()

    flow.run()

    ends = flow.assert_every_event_accounted()
    assert list(ends.values()) == ["handled", "handled"]
    by_outcome = {a["outcome"]: a for a in flow.ledger.actions()}
    assert sorted(by_outcome) == ["conflict", "promoted"]
    winner = by_outcome["promoted"]["source_digest"]
    assert digest_of(flow.ecr, target, "v2") == winner
    assert by_outcome["conflict"]["target_digest"] in (winner, None)
    assert aws_env.control.calls_by_repository()["PutImage"] == {target: 2}
