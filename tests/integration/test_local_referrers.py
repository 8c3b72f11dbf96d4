"""The registry's OCI 1.1 referrers API on the local ECR: what a client without ListImageReferrers reads."""

from __future__ import annotations

import base64
import json
import re
import shutil
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest

from local_aws import images as im
from local_aws.proxy import REFERRERS_PAGE_SIZE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed"),
]

SBOM = "application/vnd.example.sbom.v1+json"
SIGNATURE = "application/vnd.cncf.notary.signature"


def request(
    local_aws, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One call to the registry endpoint with the GetAuthorizationToken password, as a client makes it."""
    auth = base64.b64encode(f"AWS:{local_aws.password}".encode()).decode()
    req = urllib.request.Request(
        local_aws.endpoint + path,
        data=body,
        method=method,
        headers={**(headers or {}), "Authorization": f"Basic {auth}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_referrers_api_answers_an_oci_index_of_the_same_descriptors_as_list_image_referrers(
    local_aws, ecr, repo, pusher
):
    subject = im.image()
    pusher.push(repo, subject, "v1")
    sbom, signature = im.referrer(subject, SBOM), im.referrer(subject, SIGNATURE)
    pusher.push(repo, sbom)
    pusher.push(repo, signature)
    status, headers, body = request(local_aws, "GET", f"/v2/{repo}/referrers/{subject.digest}")
    assert status == 200
    assert headers["Content-Type"] == im.OCI_INDEX
    index = json.loads(body)
    assert index["schemaVersion"] == 2 and index["mediaType"] == im.OCI_INDEX
    assert [(d["digest"], d["artifactType"], d["mediaType"], d["size"]) for d in index["manifests"]] == [
        (sbom.digest, SBOM, im.OCI_MANIFEST, len(sbom.raw)),
        (signature.digest, SIGNATURE, im.OCI_MANIFEST, len(signature.raw)),
    ]
    assert index["manifests"][0]["annotations"] == {"org.example.kind": "sbom"}
    listed = ecr.list_image_referrers(repositoryName=repo, subjectId={"imageDigest": subject.digest})
    assert [r["digest"] for r in listed["referrers"]] == [d["digest"] for d in index["manifests"]]
    assert "OCI-Filters-Applied" not in headers


def test_referrers_api_filters_by_artifact_type_and_says_so_in_a_header(local_aws, repo, pusher):
    subject = im.image()
    pusher.push(repo, subject, "v1")
    sbom, signature = im.referrer(subject, SBOM), im.referrer(subject, SIGNATURE)
    pusher.push(repo, sbom)
    pusher.push(repo, signature)
    status, headers, body = request(
        local_aws, "GET", f"/v2/{repo}/referrers/{subject.digest}?artifactType={SIGNATURE}"
    )
    assert status == 200
    assert headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in json.loads(body)["manifests"]] == [signature.digest]


def test_referrers_api_of_a_subject_without_referrers_is_an_empty_index_not_a_404(local_aws, repo, pusher):
    subject = im.image()
    pusher.push(repo, subject, "v1")
    for digest in (subject.digest, "sha256:" + "0" * 64):
        status, _, body = request(local_aws, "GET", f"/v2/{repo}/referrers/{digest}")
        assert status == 200
        assert json.loads(body)["manifests"] == []


def test_referrers_api_rejects_a_reference_that_is_not_a_digest(local_aws, repo):
    status, _, body = request(local_aws, "GET", f"/v2/{repo}/referrers/v1")
    assert status == 400
    assert json.loads(body)["errors"][0]["code"] == "DIGEST_INVALID"


def test_referrers_api_pages_with_a_link_header_that_leads_to_every_referrer(local_aws, repo, pusher):
    subject = im.image()
    pusher.push(repo, subject, "v1")
    pushed = []
    for _ in range(REFERRERS_PAGE_SIZE + 2):
        sbom = im.referrer(subject, SBOM)
        pusher.push(repo, sbom)
        pushed.append(sbom.digest)
    path: str | None = f"/v2/{repo}/referrers/{subject.digest}?{urlencode({'artifactType': SBOM})}"
    pages: list[list[str]] = []
    while path:
        status, headers, body = request(local_aws, "GET", path)
        assert status == 200
        assert headers["OCI-Filters-Applied"] == "artifactType"
        pages.append([d["digest"] for d in json.loads(body)["manifests"]])
        link = re.match(r'<([^>]+)>;\s*rel="next"', headers.get("Link", ""))
        path = link[1] if link else None
    assert [len(p) for p in pages] == [REFERRERS_PAGE_SIZE, 2]
    assert [d for page in pages for d in page] == pushed


def test_manifest_put_with_a_subject_answers_the_oci_subject_header(local_aws, repo, pusher):
    subject = im.image()
    pusher.push(repo, subject, "v1")
    sbom = im.referrer(subject)
    for blob in sbom.blobs:
        pusher.push_blob(repo, blob)
    status, headers, _ = request(
        local_aws,
        "PUT",
        f"/v2/{repo}/manifests/{sbom.digest}",
        body=sbom.raw,
        headers={"Content-Type": sbom.media_type},
    )
    assert status == 201
    assert headers["OCI-Subject"] == subject.digest
    status, headers, _ = request(
        local_aws,
        "PUT",
        f"/v2/{repo}/manifests/v2",
        body=subject.raw,
        headers={"Content-Type": subject.media_type},
    )
    assert status == 201
    assert "OCI-Subject" not in headers
