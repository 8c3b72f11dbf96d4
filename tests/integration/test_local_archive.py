"""The archive storage class on the local ECR, as ECR documents it: UpdateImageStorageClass moves
an image to ARCHIVE and back (ACTIVATING for a while), archived images are listed only when asked
for by status and cannot be pulled (404 on /v2, a failure from BatchGetImage), their layers are
ARCHIVED, a re-push restores at once, and every move is an UPDATE_STORAGE_CLASS event.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from botocore.exceptions import ClientError

from local_aws import images as im

pytestmark = pytest.mark.integration


def code(exc_info: pytest.ExceptionInfo[ClientError]) -> str:
    return exc_info.value.response["Error"]["Code"]


@pytest.fixture
def archived(ecr, repo, pusher) -> im.Manifest:
    manifest = im.image((128,))
    pusher.push(repo, manifest, "v1")
    moved = ecr.update_image_storage_class(
        repositoryName=repo, imageId={"imageTag": "v1"}, targetStorageClass="ARCHIVE"
    )
    assert moved["imageStatus"] == "ARCHIVED"
    assert moved["imageId"] == {"imageDigest": manifest.digest, "imageTag": "v1"}
    return manifest


def status_of(ecr, repo: str, digest: str) -> dict:
    return ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": digest}])["imageDetails"][0]


def test_archived_image_is_listed_only_when_asked_for_by_status(ecr, repo, archived):
    assert ecr.describe_images(repositoryName=repo)["imageDetails"] == []
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []
    listed = ecr.describe_images(repositoryName=repo, filter={"imageStatus": "ARCHIVED"})["imageDetails"]
    assert [d["imageDigest"] for d in listed] == [archived.digest]
    assert listed[0]["imageStatus"] == "ARCHIVED" and listed[0]["lastArchivedAt"]
    anything = ecr.list_images(repositoryName=repo, filter={"imageStatus": "ANY"})["imageIds"]
    assert anything == [{"imageDigest": archived.digest, "imageTag": "v1"}]


def test_archived_image_cannot_be_pulled_with_batch_get_image(ecr, repo, archived):
    resp = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert resp["images"] == []
    assert resp["failures"][0]["failureCode"] == "ImageNotFound"
    assert "archived" in resp["failures"][0]["failureReason"]


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_archived_image_is_a_404_on_the_registry_api_for_skopeo(local_aws, repo, archived, tmp_path):
    out = subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", "--src-creds", f"AWS:{local_aws.password}",
         f"docker://{local_aws.registry_host}/{repo}:v1", f"oci:{tmp_path / 'x'}:v1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0
    assert "manifest unknown" in out.stderr


def test_layers_of_archived_images_only_are_reported_archived(ecr, repo, pusher, archived):
    layers = [b.digest for b in archived.blobs]
    check = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=layers)["layers"]
    assert {layer["layerAvailability"] for layer in check} == {"ARCHIVED"}
    with pytest.raises(ClientError) as exc:
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=layers[1])
    assert code(exc) == "LayerInaccessibleException"


def test_restore_is_activating_until_it_completes_then_pullable(ecr, repo, archived, local_aws):
    local_aws.control.set_restore_seconds(3600)
    moved = ecr.update_image_storage_class(
        repositoryName=repo, imageId={"imageDigest": archived.digest}, targetStorageClass="STANDARD"
    )
    assert moved["imageStatus"] == "ACTIVATING"
    listed = ecr.describe_images(repositoryName=repo, filter={"imageStatus": "ACTIVATING"})["imageDetails"]
    assert [d["imageDigest"] for d in listed] == [archived.digest]
    assert ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["images"] == []
    assert local_aws.control.finish_restores() >= 1
    detail = status_of(ecr, repo, archived.digest)
    assert detail["imageStatus"] == "ACTIVE" and detail["lastActivatedAt"]
    assert ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["images"]


def test_restore_with_no_restore_period_is_active_at_once(ecr, repo, archived, local_aws):
    local_aws.control.set_restore_seconds(0)
    moved = ecr.update_image_storage_class(
        repositoryName=repo, imageId={"imageTag": "v1"}, targetStorageClass="STANDARD"
    )
    assert moved["imageStatus"] == "ACTIVE"


def test_re_push_of_an_archived_image_restores_it_at_once(ecr, repo, archived):
    ecr.put_image(
        repositoryName=repo,
        imageManifest=archived.text,
        imageManifestMediaType=archived.media_type,
        imageTag="v1",
    )
    assert status_of(ecr, repo, archived.digest)["imageStatus"] == "ACTIVE"


def test_moves_to_where_the_image_already_is_or_to_an_unknown_class_are_refused(ecr, repo, archived):
    with pytest.raises(ClientError) as exc:
        ecr.update_image_storage_class(
            repositoryName=repo, imageId={"imageTag": "v1"}, targetStorageClass="ARCHIVE"
        )
    assert code(exc) == "ImageStorageClassUpdateNotSupportedException"
    with pytest.raises(ClientError) as exc:
        ecr.update_image_storage_class(
            repositoryName=repo, imageId={"imageTag": "v1"}, targetStorageClass="GLACIER"
        )
    assert code(exc) == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        ecr.update_image_storage_class(
            repositoryName=repo, imageId={"imageTag": "nope"}, targetStorageClass="STANDARD"
        )
    assert code(exc) == "ImageNotFoundException"


def test_archived_referrer_is_listed_only_when_asked_for_by_status(ecr, repo, pusher):
    subject = im.image((64,))
    pusher.push(repo, subject, "v1")
    sbom = im.referrer(subject)
    pusher.push(repo, sbom)
    ecr.update_image_storage_class(
        repositoryName=repo, imageId={"imageDigest": sbom.digest}, targetStorageClass="ARCHIVE"
    )
    subject_id = {"imageDigest": subject.digest}
    assert ecr.list_image_referrers(repositoryName=repo, subjectId=subject_id)["referrers"] == []
    every = ecr.list_image_referrers(
        repositoryName=repo, subjectId=subject_id, filter={"artifactStatus": "ANY"}
    )
    assert [(r["digest"], r["artifactStatus"]) for r in every["referrers"]] == [(sbom.digest, "ARCHIVED")]


def test_each_move_emits_an_update_storage_class_event_shaped_like_ecrs(
    ecr, repo, pusher, capture_events, events_dir, local_aws
):
    sample = json.loads((events_dir / "ecr-archive.json").read_text())
    manifest = im.image((64,))
    pusher.push(repo, manifest, "v1")
    capture = capture_events(repo)
    local_aws.control.set_restore_seconds(0)
    for target in ("ARCHIVE", "STANDARD"):
        ecr.update_image_storage_class(
            repositoryName=repo, imageId={"imageTag": "v1"}, targetStorageClass=target
        )
    events = [e for e in capture.wait(2) if e["detail"]["action-type"] == "UPDATE_STORAGE_CLASS"]
    assert [e["detail"]["target-storage-class"] for e in events] == ["ARCHIVE", "STANDARD"]
    for event in events:
        assert event["detail-type"] == sample["detail-type"] and event["source"] == sample["source"]
        assert set(event["detail"]) == set(sample["detail"])
        assert event["detail"]["image-digest"] == manifest.digest


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_aws_cli_archives_and_lists_by_image_status(local_aws, repo, pusher):
    manifest = im.image((64,))
    pusher.push(repo, manifest, "v1")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    def cli(*args: str) -> dict:
        done = subprocess.run(["aws", "--endpoint-url", local_aws.endpoint, "--output", "json", "ecr", *args],
                              capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    moved = cli("update-image-storage-class", "--repository-name", repo, "--image-id", "imageTag=v1",
                "--target-storage-class", "ARCHIVE")  # fmt: skip
    assert moved["imageStatus"] == "ARCHIVED"
    listed = cli("describe-images", "--repository-name", repo, "--filter", "imageStatus=ARCHIVED")
    assert [d["imageDigest"] for d in listed["imageDetails"]] == [manifest.digest]
