"""Reading and deleting images, referrers and scan findings on the local ECR."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from local_aws import images as im

pytestmark = pytest.mark.integration
ALL_TYPES = [im.OCI_MANIFEST, im.DOCKER_MANIFEST, im.OCI_INDEX, im.DOCKER_MANIFEST_LIST]


def test_batch_get_image_never_returns_a_media_type_that_was_not_accepted(ecr, repo, pusher):
    manifest = im.image()  # OCI
    pusher.push(repo, manifest, "v1")
    # By digest ECR never converts (by tag it would: test_local_json_api.py).
    resp = ecr.batch_get_image(
        repositoryName=repo,
        imageIds=[{"imageDigest": manifest.digest}],
        acceptedMediaTypes=[im.DOCKER_MANIFEST],
    )
    assert resp["images"] == []
    assert resp["failures"][0]["imageId"] == {"imageDigest": manifest.digest}
    assert resp["failures"][0]["failureCode"] == "ImageNotFound"
    ok = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=ALL_TYPES)
    assert ok["images"][0]["imageManifestMediaType"] == im.OCI_MANIFEST


def test_batch_get_image_echoes_the_requested_image_id(ecr, repo, pusher):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    pusher.push(repo, manifest, "v2")
    by_tag = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v2"}])["images"][0]
    assert by_tag["imageId"] == {"imageDigest": manifest.digest, "imageTag": "v2"}
    by_digest = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": manifest.digest}])
    assert by_digest["images"][0]["imageId"] == {"imageDigest": manifest.digest}


def test_batch_get_image_reports_missing_and_mismatched_ids_as_failures(ecr, repo, pusher):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    resp = ecr.batch_get_image(
        repositoryName=repo,
        imageIds=[
            {"imageTag": "nope"},
            {"imageDigest": "sha256:" + "1" * 64},
            {"imageTag": "v1", "imageDigest": "sha256:" + "2" * 64},
        ],
    )
    assert resp["images"] == []
    assert [f["failureCode"] for f in resp["failures"]] == [
        "ImageNotFound",
        "ImageNotFound",
        "ImageTagDoesNotMatchDigest",
    ]


def test_describe_images_reports_media_types_sizes_and_tags(ecr, repo, pusher):
    manifest = im.image((2000, 3000))
    pusher.push(repo, manifest, "v1")
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["imageDetails"][0]
    assert detail["imageDigest"] == manifest.digest
    assert detail["imageTags"] == ["v1"]
    assert detail["imageManifestMediaType"] == im.OCI_MANIFEST
    assert detail["artifactMediaType"] == im.OCI_CONFIG
    assert detail["imageSizeInBytes"] == sum(b.size for b in manifest.blobs)


def test_describe_images_of_a_missing_image_raises_image_not_found(ecr, repo):
    with pytest.raises(ClientError) as exc:
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "nope"}])
    assert exc.value.response["Error"]["Code"] == "ImageNotFoundException"


def test_list_images_includes_untagged_children_and_filters_by_tag_status(ecr, repo, pusher):
    index = im.multi_arch(attestations=False)
    pusher.push(repo, index, "v1")
    ids = ecr.list_images(repositoryName=repo)["imageIds"]
    assert len(ids) == 3
    tagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})["imageIds"]
    assert tagged == [{"imageDigest": index.digest, "imageTag": "v1"}]
    untagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageIds"]
    assert {i["imageDigest"] for i in untagged} == {c.digest for c in index.children}


def test_list_images_paginates(ecr, repo, pusher):
    manifest = im.image()
    for n in range(5):
        pusher.push(repo, manifest, f"t{n}")
    pages = ecr.get_paginator("list_images").paginate(repositoryName=repo, PaginationConfig={"PageSize": 2})
    assert sorted(i["imageTag"] for page in pages for i in page["imageIds"]) == [f"t{n}" for n in range(5)]


def test_batch_delete_by_tag_removes_only_that_tag(ecr, repo, pusher):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    pusher.push(repo, manifest, "v2")
    resp = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert resp["imageIds"] == [{"imageDigest": manifest.digest, "imageTag": "v1"}]
    assert ecr.list_images(repositoryName=repo)["imageIds"] == [
        {"imageDigest": manifest.digest, "imageTag": "v2"}
    ]


def test_batch_delete_of_the_last_tag_deletes_the_image(ecr, repo, pusher):
    # ECR API reference, BatchDeleteImage: "When you remove the last tag from an image, the image is deleted".
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []


def test_batch_delete_by_digest_removes_the_image_and_all_its_tags(ecr, repo, pusher):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    pusher.push(repo, manifest, "v2")
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": manifest.digest}])
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []
    again = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": manifest.digest}])
    assert again["failures"][0]["failureCode"] == "ImageNotFound"


def test_batch_delete_of_a_child_still_listed_by_an_index_fails(ecr, repo, pusher):
    index = im.multi_arch(attestations=False)
    pusher.push(repo, index, "v1")
    resp = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": index.children[0].digest}])
    assert resp["failures"][0]["failureCode"] == "ImageReferencedByManifestList"


def test_delete_repository_refuses_a_non_empty_repository_unless_forced(ecr, repo, pusher):
    pusher.push(repo, im.image(), "v1")
    with pytest.raises(ClientError) as exc:
        ecr.delete_repository(repositoryName=repo)
    assert exc.value.response["Error"]["Code"] == "RepositoryNotEmptyException"
    ecr.delete_repository(repositoryName=repo, force=True)
    with pytest.raises(ClientError) as exc:
        ecr.describe_repositories(repositoryNames=[repo])
    assert exc.value.response["Error"]["Code"] == "RepositoryNotFoundException"


def test_list_image_referrers_finds_oci_referrers_by_subject(ecr, repo, pusher):
    subject = im.image()
    pusher.push(repo, subject, "v1")
    sbom = im.referrer(subject)
    pusher.push(repo, sbom)
    signature, sig_tag = im.cosign_signature(subject)
    pusher.push(repo, signature, sig_tag)
    refs = ecr.list_image_referrers(repositoryName=repo, subjectId={"imageDigest": subject.digest})[
        "referrers"
    ]
    assert [(r["digest"], r["artifactType"], r["mediaType"]) for r in refs] == [
        (sbom.digest, "application/vnd.example.sbom.v1+json", im.OCI_MANIFEST)
    ]
    assert refs[0]["annotations"] == {"org.example.kind": "sbom"}
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": sbom.digest}])[
        "imageDetails"
    ][0]
    assert detail["subjectManifestDigest"] == subject.digest
    assert sig_tag == "sha256-" + subject.digest[7:] + ".sig"
    assert ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": sig_tag}])["imageDetails"]


def test_scan_findings_set_through_the_control_api_are_described(ecr, repo, pusher, local_aws):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    with pytest.raises(ClientError) as exc:
        ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v1"})
    assert exc.value.response["Error"]["Code"] == "ScanNotFoundException"
    local_aws.control.set_scan_findings(
        repo,
        manifest.digest,
        [{"name": "CVE-2026-0001", "severity": "CRITICAL"}, {"name": "CVE-2026-0002", "severity": "LOW"}],
    )
    found = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v1"})
    assert found["imageScanFindings"]["findingSeverityCounts"] == {"CRITICAL": 1, "LOW": 1}
    assert [f["name"] for f in found["imageScanFindings"]["findings"]] == ["CVE-2026-0001", "CVE-2026-0002"]


def test_start_image_scan_completes_with_no_findings(ecr, repo, pusher):
    pusher.push(repo, im.image(), "v1")
    assert (
        ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": "v1"})["imageScanStatus"]["status"]
        == "COMPLETE"
    )
    found = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v1"})
    assert found["imageScanFindings"]["findings"] == []
