"""The local ECR's JSON API pages and reports as ECR's does (botocore's service model and the ECR
user guide), checked with boto3 and, where it exercises the behaviour, the AWS CLI: pages of 100
(1-1000 with maxResults, never beside imageIds), ListImageReferrers pages of 20 (at most 50),
nextToken wherever the model has it, media-type conversion by tag only, a list's size as its
largest child's, and the account settings ECR names with their validation.
"""

from __future__ import annotations

import hashlib
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


def aws_cli(local_aws, *args: str) -> dict:
    """The AWS CLI against the local AWS, JSON out."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": local_aws.region,
        "AWS_PAGER": "",
    }
    done = subprocess.run(
        ["aws", "--endpoint-url", local_aws.endpoint, "--output", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout or "{}")


needs_aws_cli = pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")


@pytest.fixture
def images_105(ecr, repo, pusher) -> list[str]:
    """105 tagged images in `repo` that share one config and one layer (cheap to make)."""
    base = im.image((64,))
    pusher.push(repo, base)
    digests = []
    for i, manifest in enumerate(im.variants(base, 105)):
        ecr.put_image(
            repositoryName=repo,
            imageManifest=manifest.text,
            imageManifestMediaType=manifest.media_type,
            imageTag=f"v{i:03d}",
        )
        digests.append(manifest.digest)
    return digests


# ---------------------------------------------------------------------------- pages
def test_describe_images_answers_100_and_a_next_token_without_max_results(ecr, repo, images_105):
    first = ecr.describe_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})
    assert len(first["imageDetails"]) == 100
    rest = ecr.describe_images(
        repositoryName=repo, filter={"tagStatus": "TAGGED"}, nextToken=first["nextToken"]
    )
    assert len(rest["imageDetails"]) == 5 and "nextToken" not in rest
    seen = {d["imageDigest"] for d in first["imageDetails"] + rest["imageDetails"]}
    assert seen == set(images_105)


def test_list_images_answers_100_and_a_next_token_without_max_results(ecr, repo, images_105):
    first = ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})
    assert len(first["imageIds"]) == 100 and first["nextToken"]
    whole = ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"}, maxResults=1000)
    assert len(whole["imageIds"]) == 105 and "nextToken" not in whole


def test_max_results_over_1000_or_beside_image_ids_is_refused(ecr, repo, images_105):
    with pytest.raises(ClientError) as exc:
        ecr.describe_images(repositoryName=repo, maxResults=1001)
    assert code(exc) == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        ecr.list_images(repositoryName=repo, maxResults=1001)
    assert code(exc) == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": images_105[0]}], maxResults=10)
    assert code(exc) == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        ecr.describe_repositories(repositoryNames=[repo], maxResults=10)
    assert code(exc) == "InvalidParameterException"


@needs_aws_cli
def test_aws_cli_follows_next_token_to_all_105_images_and_stops_at_100_without_paging(
    local_aws, repo, images_105
):
    every = aws_cli(
        local_aws, "ecr", "describe-images", "--repository-name", repo, "--filter", "tagStatus=TAGGED"
    )
    assert {d["imageDigest"] for d in every["imageDetails"]} == set(images_105)
    one = aws_cli(local_aws, "ecr", "list-images", "--repository-name", repo, "--no-paginate")
    assert len(one["imageIds"]) == 100 and one["nextToken"]


def test_list_image_referrers_pages_20_by_default_and_at_most_50(ecr, repo, pusher):
    subject = im.image((64,))
    pusher.push(repo, subject, "v1")
    first_referrer = im.referrer(subject)
    pusher.push(repo, first_referrer)
    for manifest in im.variants(first_referrer, 54):
        ecr.put_image(
            repositoryName=repo, imageManifest=manifest.text, imageManifestMediaType=im.OCI_MANIFEST
        )
    subject_id = {"imageDigest": subject.digest}
    page = ecr.list_image_referrers(repositoryName=repo, subjectId=subject_id)
    assert len(page["referrers"]) == 20 and page["nextToken"]
    page = ecr.list_image_referrers(repositoryName=repo, subjectId=subject_id, maxResults=50)
    rest = ecr.list_image_referrers(
        repositoryName=repo, subjectId=subject_id, maxResults=50, nextToken=page["nextToken"]
    )
    assert len(page["referrers"]) == 50 and len(rest["referrers"]) == 5 and "nextToken" not in rest
    with pytest.raises(ClientError) as exc:
        ecr.list_image_referrers(repositoryName=repo, subjectId=subject_id, maxResults=51)
    assert code(exc) == "InvalidParameterException"


def test_describe_image_scan_findings_pages_findings_and_counts_them_all(ecr, repo, pusher, local_aws):
    manifest = im.image((64,))
    pusher.push(repo, manifest, "v1")
    findings = [{"name": f"CVE-2026-{i:04d}", "severity": "LOW"} for i in range(150)]
    local_aws.control.set_scan_findings(repo, manifest.digest, findings)
    image_id = {"imageDigest": manifest.digest}
    first = ecr.describe_image_scan_findings(repositoryName=repo, imageId=image_id)
    assert len(first["imageScanFindings"]["findings"]) == 100
    assert first["imageScanFindings"]["findingSeverityCounts"] == {"LOW": 150}
    rest = ecr.describe_image_scan_findings(
        repositoryName=repo, imageId=image_id, nextToken=first["nextToken"]
    )
    assert len(rest["imageScanFindings"]["findings"]) == 50 and "nextToken" not in rest


# ---------------------------------------------------------------------------- conversion
def test_oci_image_asked_for_by_tag_as_docker_v2_is_converted_naming_the_same_blobs(ecr, repo, pusher):
    manifest = im.image((64,))  # OCI
    pusher.push(repo, manifest, "v1")
    got = ecr.batch_get_image(
        repositoryName=repo, imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[im.DOCKER_MANIFEST]
    )["images"][0]
    assert got["imageManifestMediaType"] == im.DOCKER_MANIFEST
    converted = json.loads(got["imageManifest"])
    original = json.loads(manifest.raw)
    assert converted["mediaType"] == im.DOCKER_MANIFEST
    assert converted["config"]["mediaType"] == im.DOCKER_CONFIG
    assert [d["digest"] for d in converted["layers"]] == [d["digest"] for d in original["layers"]]
    assert {d["mediaType"] for d in converted["layers"]} == {im.DOCKER_LAYER}
    # New bytes, so a new digest: the one reported is the digest of what was returned.
    expected = "sha256:" + hashlib.sha256(got["imageManifest"].encode()).hexdigest()
    assert got["imageId"]["imageDigest"] == expected != manifest.digest


def test_docker_v2_image_asked_for_by_tag_as_oci_is_converted(ecr, repo, pusher):
    manifest = im.image((64,), media_type=im.DOCKER_MANIFEST)
    pusher.push(repo, manifest, "v1")
    got = ecr.batch_get_image(
        repositoryName=repo, imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[im.OCI_MANIFEST]
    )["images"][0]
    assert got["imageManifestMediaType"] == im.OCI_MANIFEST
    assert json.loads(got["imageManifest"])["config"]["mediaType"] == im.OCI_CONFIG


def test_no_conversion_by_digest_nor_of_an_index_nor_of_an_artifact(ecr, repo, pusher):
    index = im.multi_arch()
    pusher.push(repo, index, "multi")
    sbom = im.referrer(index.children[0])
    pusher.push(repo, sbom, "sbom")
    resp = ecr.batch_get_image(
        repositoryName=repo,
        imageIds=[{"imageTag": "multi"}, {"imageTag": "sbom"}, {"imageDigest": index.children[0].digest}],
        acceptedMediaTypes=[im.DOCKER_MANIFEST],
    )
    assert resp["images"] == []
    assert [f["failureCode"] for f in resp["failures"]] == ["ImageNotFound"] * 3
    assert "but client accepts" in resp["failures"][0]["failureReason"]


def test_registry_get_by_tag_with_an_accept_of_docker_v2_only_gets_the_converted_manifest(
    local_aws, repo, pusher
):
    import base64
    import http.client

    manifest = im.image((64,))
    pusher.push(repo, manifest, "v1")
    auth = "Basic " + base64.b64encode(f"AWS:{local_aws.password}".encode()).decode()

    def get(ref: str) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", local_aws.port, timeout=30)
        conn.request(
            "GET",
            f"/v2/{repo}/manifests/{ref}",
            headers={"Authorization": auth, "Accept": im.DOCKER_MANIFEST},
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()

    status, headers, body = get("v1")
    assert status == 200 and headers["content-type"] == im.DOCKER_MANIFEST
    assert headers["docker-content-digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    status, _, body = get(manifest.digest)
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"


# ---------------------------------------------------------------------------- sizes, settings
def test_a_manifest_lists_size_is_its_largest_childs(ecr, repo, pusher):
    small, large = im.image((100,)), im.image((5000,), architecture="arm64")
    index = im.index([(small, {"platform": {"os": "linux", "architecture": "amd64"}}),
                      (large, {"platform": {"os": "linux", "architecture": "arm64"}})])  # fmt: skip
    pusher.push(repo, index, "v1")
    sizes = {
        d["imageDigest"]: d["imageSizeInBytes"]
        for d in ecr.describe_images(repositoryName=repo, filter={"tagStatus": "ANY"})["imageDetails"]
    }
    assert sizes[large.digest] > sizes[small.digest]
    assert sizes[index.digest] == sizes[large.digest]


def test_account_settings_ecr_names_have_their_defaults_and_validation(ecr):
    assert ecr.get_account_setting(name="BASIC_SCAN_TYPE_VERSION")["value"] == "AWS_NATIVE"
    assert ecr.get_account_setting(name="REGISTRY_POLICY_SCOPE")["value"] == "V2"
    assert ecr.get_account_setting(name="BLOB_MOUNTING")["value"] in ("ENABLED", "DISABLED")
    put = ecr.put_account_setting(name="REGISTRY_POLICY_SCOPE", value="V2")
    assert (put["name"], put["value"]) == ("REGISTRY_POLICY_SCOPE", "V2")
    for name, value in (
        ("BASIC_SCAN_TYPE_VERSION", "CLAIR"),
        ("REGISTRY_POLICY_SCOPE", "V3"),
        ("NO_SUCH", "X"),
    ):
        with pytest.raises(ClientError) as exc:
            ecr.put_account_setting(name=name, value=value)
        assert code(exc) == "InvalidParameterException"


@needs_aws_cli
def test_aws_cli_reads_an_account_setting(local_aws):
    got = aws_cli(local_aws, "ecr", "get-account-setting", "--name", "BASIC_SCAN_TYPE_VERSION")
    assert got == {"name": "BASIC_SCAN_TYPE_VERSION", "value": "AWS_NATIVE"}
