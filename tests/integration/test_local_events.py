"""Manifest puts and deletes emit ECR's `ECR Image Action` events to the default bus (moto)."""

from __future__ import annotations

import json
import re

import pytest

from local_aws import images as im

pytestmark = pytest.mark.integration


def test_tagged_put_image_delivers_a_push_event_to_an_sqs_target(repo, pusher, capture_events, events_dir):
    capture = capture_events(repo)
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    (event,) = capture.wait(1)
    sample = json.loads((events_dir / "ecr-push.json").read_text())
    assert set(sample) <= set(event)
    assert event["source"] == "aws.ecr"
    assert event["detail-type"] == "ECR Image Action"
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert event["detail"] == {
        "result": "SUCCESS",
        "repository-name": repo,
        "image-digest": manifest.digest,
        "action-type": "PUSH",
        "artifact-media-type": im.OCI_CONFIG,
        "image-tag": "v1",
        "manifest-media-type": im.OCI_MANIFEST,
    }


def test_untagged_put_image_emits_push_with_empty_image_tag(repo, pusher, capture_events):
    capture = capture_events(repo)
    index = im.multi_arch(attestations=False)
    pusher.push(repo, index, "v1")
    events = capture.wait(3)
    by_digest = {e["detail"]["image-digest"]: e["detail"] for e in events}
    assert by_digest[index.children[0].digest]["image-tag"] == ""
    assert by_digest[index.children[1].digest]["image-tag"] == ""
    assert by_digest[index.digest]["image-tag"] == "v1"
    assert by_digest[index.digest]["manifest-media-type"] == im.OCI_INDEX


def test_batch_delete_image_emits_delete(ecr, repo, pusher, capture_events):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    capture = capture_events(repo)
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    (event,) = capture.wait(1)
    assert event["detail"]["action-type"] == "DELETE"
    assert event["detail"]["image-tag"] == "v1"
    assert event["detail"]["image-digest"] == manifest.digest


def test_a_rejected_put_emits_no_event(ecr, repo, capture_events):
    capture = capture_events(repo)
    manifest = im.image()  # blobs never uploaded: LayersNotFoundException
    with pytest.raises(ecr.exceptions.LayersNotFoundException):
        ecr.put_image(repositoryName=repo, imageManifest=manifest.text, imageTag="v1")
    assert capture.wait(1, timeout=0.5) == []
