"""The local ECR's `/v2/` answers as ECR's does, checked with clients nobody here wrote: curl
against the OCI distribution spec, skopeo, and urllib where its redirect behaviour is the point.

Blob downloads leave the registry (a 307 to a pre-signed URL on another host that refuses the
registry's credentials), tags and repositories are listed a page at a time with a `Link` header,
a DELETE by tag removes the tag only, blobs and index children cannot be deleted, and an upload
chunk that is out of order or sent to a cancelled upload gets a clean error.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from local_aws import images as im

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("skopeo") is None or shutil.which("curl") is None, reason="skopeo and curl needed"
    ),
]
MIB = 1024 * 1024


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, timeout=120)


def basic(local_aws) -> str:
    return "Basic " + base64.b64encode(f"AWS:{local_aws.password}".encode()).decode()


def v2(local_aws, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """One request to the registry endpoint with its credentials, no redirect followed."""
    conn = http.client.HTTPConnection("127.0.0.1", local_aws.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"Authorization": basic(local_aws), **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def error_codes(body: bytes) -> list[str]:
    return [e["code"] for e in json.loads(body)["errors"]]


@pytest.fixture
def pushed(repo, pusher):
    manifest = im.image((4096,))
    pusher.push(repo, manifest, "v1")
    return manifest


# ---------------------------------------------------------------------------- blob downloads
def test_blob_get_answers_307_to_another_host(local_aws, repo, pushed):
    layer = pushed.blobs[1]
    status, headers, _ = v2(local_aws, "GET", f"/v2/{repo}/blobs/{layer.digest}")
    assert status == 307
    target = urllib.parse.urlsplit(headers["location"])
    assert (target.hostname, target.port) != ("127.0.0.1", local_aws.port)
    assert "X-Amz-Signature=" in target.query


def test_curl_following_the_redirect_gets_the_blob_and_sends_no_credentials_to_the_other_host(
    local_aws, repo, pushed, tmp_path: Path
):
    layer = pushed.blobs[1]
    local_aws.control.reset_blob_host_requests()
    out = tmp_path / "blob"
    done = curl(
        "-L", "-u", f"AWS:{local_aws.password}", "-o", str(out), "-w", "%{http_code}",
        f"{local_aws.endpoint}/v2/{repo}/blobs/{layer.digest}",
    )  # fmt: skip
    assert done.stdout == "200", done.stderr
    assert out.read_bytes() == layer.data
    received = local_aws.control.blob_host_requests()
    assert [(r["method"], r["status"]) for r in received] == [("GET", 200)]
    assert "authorization" not in received[0]["headers"]


def test_the_other_host_refuses_a_request_carrying_the_registry_credentials_with_400(local_aws, repo, pushed):
    # curl --location-trusted sends the credentials on to the redirect's host, as S3 must not see.
    done = curl(
        "-L", "--location-trusted", "-u", f"AWS:{local_aws.password}", "-w", "\n%{http_code}",
        f"{local_aws.endpoint}/v2/{repo}/blobs/{pushed.blobs[1].digest}",
    )  # fmt: skip
    body, _, status = done.stdout.rpartition("\n")
    assert status == "400"
    assert "<Code>InvalidArgument</Code>" in body


def test_urllib_forwards_a_request_header_across_the_redirect_and_is_refused(local_aws, repo, pushed):
    """The classic bug the redirect exists to catch: a header set on a urllib Request follows it."""
    request = urllib.request.Request(
        f"{local_aws.endpoint}/v2/{repo}/blobs/{pushed.blobs[1].digest}",
        headers={"Authorization": basic(local_aws)},
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=30)
    assert exc.value.code == 400
    # Sent as an unredirected header, the credentials stay with the registry and the blob arrives.
    request = urllib.request.Request(f"{local_aws.endpoint}/v2/{repo}/blobs/{pushed.blobs[1].digest}")
    request.add_unredirected_header("Authorization", basic(local_aws))
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.read() == pushed.blobs[1].data


def test_download_url_is_a_presigned_url_on_the_blob_host_not_the_registry(local_aws, ecr, repo, pushed):
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=pushed.blobs[1].digest)[
        "downloadUrl"
    ]
    _, headers, _ = v2(local_aws, "GET", f"/v2/{repo}/blobs/{pushed.blobs[1].digest}")
    assert urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(headers["location"]).netloc
    assert urllib.parse.urlsplit(url).netloc != f"127.0.0.1:{local_aws.port}"
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert curl("-o", "/dev/null", "-w", "%{http_code}", tampered).stdout == "403"
    assert (
        curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Basic eA==", url).stdout == "400"
    )


def test_blob_head_is_answered_by_the_registry_itself(local_aws, repo, pushed):
    status, headers, _ = v2(local_aws, "HEAD", f"/v2/{repo}/blobs/{pushed.blobs[1].digest}")
    assert status == 200
    assert int(headers["content-length"]) == pushed.blobs[1].size


def test_unknown_blob_get_answers_404_blob_unknown_without_a_redirect(local_aws, repo):
    status, _, body = v2(local_aws, "GET", f"/v2/{repo}/blobs/sha256:{'0' * 64}")
    assert status == 404
    assert error_codes(body) == ["BLOB_UNKNOWN"]


def test_skopeo_pull_downloads_blobs_through_the_redirect_without_credentials(
    local_aws, repo, pushed, tmp_path: Path
):
    local_aws.control.reset_blob_host_requests()
    out = subprocess.run(
        [
            "skopeo", "copy", "--src-tls-verify=false", "--src-creds", f"AWS:{local_aws.password}",
            f"docker://{local_aws.registry_host}/{repo}:v1", f"oci:{tmp_path / 'pulled'}:v1",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    received = [
        r
        for r in local_aws.control.blob_host_requests()
        if r["path"].endswith(tuple(b.digest for b in pushed.blobs))
    ]
    assert {r["path"].rsplit("/", 1)[1] for r in received} == {b.digest for b in pushed.blobs}
    assert all(r["status"] == 200 and "authorization" not in r["headers"] for r in received)


# ---------------------------------------------------------------------------- pages
@pytest.fixture
def many_tags(ecr, repo, pusher):
    """105 tags on one image: a tag is one PutImage of the same manifest."""
    manifest = im.image((64,))
    pusher.push(repo, manifest, "t000")
    for i in range(1, 105):
        ecr.put_image(repositoryName=repo, imageManifest=manifest.text, imageTag=f"t{i:03d}")
    return [f"t{i:03d}" for i in range(105)]


def test_tags_list_pages_by_100_with_a_link_to_the_next_page(local_aws, repo, many_tags):
    status, headers, body = v2(local_aws, "GET", f"/v2/{repo}/tags/list")
    assert status == 200
    assert json.loads(body)["tags"] == many_tags[:100]
    link = headers["link"]
    assert link.endswith('>; rel="next"')
    status, headers, body = v2(local_aws, "GET", link[1 : link.index(">")])
    assert json.loads(body)["tags"] == many_tags[100:]
    assert "link" not in headers


def test_tags_list_honours_n_and_last_and_refuses_n_over_1000(local_aws, repo, many_tags):
    _, headers, body = v2(local_aws, "GET", f"/v2/{repo}/tags/list?n=3&last=t010")
    assert json.loads(body)["tags"] == ["t011", "t012", "t013"]
    assert "last=t013" in headers["link"] and "n=3" in headers["link"]
    status, _, body = v2(local_aws, "GET", f"/v2/{repo}/tags/list?n=1001")
    assert status == 400
    assert error_codes(body) == ["PAGINATION_NUMBER_INVALID"]


def test_skopeo_list_tags_follows_the_link_header_to_every_tag(local_aws, repo, many_tags):
    out = subprocess.run(
        ["skopeo", "list-tags", "--tls-verify=false", "--creds", f"AWS:{local_aws.password}",
         f"docker://{local_aws.registry_host}/{repo}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert sorted(json.loads(out.stdout)["Tags"]) == many_tags


def test_catalog_pages_with_n_and_last(local_aws, ecr, unique_name):
    names = sorted(unique_name("cat") for _ in range(3))
    for name in names:
        ecr.create_repository(repositoryName=name)
    _, headers, body = v2(local_aws, "GET", f"/v2/_catalog?n=2&last={names[0][:-1]}")
    page = json.loads(body)["repositories"]
    assert len(page) == 2 and page == sorted(page)
    assert headers["link"].startswith("</v2/_catalog?") and 'rel="next"' in headers["link"]
    _, _, body = v2(local_aws, "GET", f"/v2/_catalog?n=2&last={names[0]}")
    assert json.loads(body)["repositories"][:2] == names[1:]
    status, _, body = v2(local_aws, "GET", "/v2/_catalog?n=1001")
    assert status == 400 and error_codes(body) == ["PAGINATION_NUMBER_INVALID"]


# ---------------------------------------------------------------------------- deletes
def test_delete_of_a_manifest_by_tag_removes_the_tag_only(local_aws, ecr, repo, pusher):
    manifest = im.image((64,))
    pusher.push(repo, manifest, "v1")
    ecr.put_image(repositoryName=repo, imageManifest=manifest.text, imageTag="v2")
    done = curl("-X", "DELETE", "-u", f"AWS:{local_aws.password}", "-o", "/dev/null", "-w", "%{http_code}",
                f"{local_aws.endpoint}/v2/{repo}/manifests/v1")  # fmt: skip
    assert done.stdout == "202"
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": manifest.digest}])[
        "imageDetails"
    ]
    assert detail[0]["imageTags"] == ["v2"]
    v2(local_aws, "DELETE", f"/v2/{repo}/manifests/v2")
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": manifest.digest}])[
        "imageDetails"
    ]
    assert "imageTags" not in detail[0]  # the last tag went; the image stays, untagged


def test_delete_of_an_index_child_is_refused_and_the_child_stays(local_aws, ecr, repo, pusher):
    index = im.multi_arch()
    pusher.push(repo, index, "v1")
    child = index.children[0].digest
    status, _, body = v2(local_aws, "DELETE", f"/v2/{repo}/manifests/{child}")
    assert status == 409
    assert error_codes(body) == ["DENIED"]
    assert ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": child}])["imageDetails"]


def test_delete_of_a_blob_is_unsupported_with_405(local_aws, repo, pushed):
    status, _, body = v2(local_aws, "DELETE", f"/v2/{repo}/blobs/{pushed.blobs[1].digest}")
    assert status == 405
    assert error_codes(body) == ["UNSUPPORTED"]
    assert v2(local_aws, "HEAD", f"/v2/{repo}/blobs/{pushed.blobs[1].digest}")[0] == 200


# ---------------------------------------------------------------------------- uploads
def open_upload(local_aws, repo: str) -> str:
    status, headers, _ = v2(local_aws, "POST", f"/v2/{repo}/blobs/uploads/", b"")
    assert status == 202
    return headers["location"]


def test_patch_with_an_out_of_order_content_range_answers_416_and_the_upload_goes_on(local_aws, repo):
    data = b"a" * 1000
    location = open_upload(local_aws, repo)
    chunk = {"Content-Type": "application/octet-stream"}
    status, headers, _ = v2(local_aws, "PATCH", location, data[:500], {**chunk, "Content-Range": "0-499"})
    assert status == 202
    location = headers["location"]
    status, headers, _ = v2(local_aws, "PATCH", location, data[600:], {**chunk, "Content-Range": "600-999"})
    assert status == 416
    assert headers["range"] == "0-499"
    status, headers, _ = v2(local_aws, "PATCH", location, data[500:], {**chunk, "Content-Range": "500-999"})
    assert status == 202
    digest = im.Blob(data, im.OCI_LAYER).digest
    separator = "&" if "?" in headers["location"] else "?"
    assert v2(local_aws, "PUT", f"{headers['location']}{separator}digest={digest}", b"")[0] == 201


def test_large_patch_to_a_cancelled_upload_gets_a_clean_404_blob_upload_unknown(
    local_aws, repo, tmp_path: Path
):
    location = open_upload(local_aws, repo)
    assert v2(local_aws, "DELETE", location)[0] == 204
    body = tmp_path / "chunk"
    body.write_bytes(b"\0" * (16 * MIB))
    done = curl(
        "-X", "PATCH", "-u", f"AWS:{local_aws.password}", "-H", "Content-Type: application/octet-stream",
        "--data-binary", f"@{body}", "-w", "\n%{http_code}", f"{local_aws.endpoint}{location}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # the connection held to the end of the body
    answer, _, status = done.stdout.rpartition("\n")
    assert status == "404"
    assert error_codes(answer.encode()) == ["BLOB_UPLOAD_UNKNOWN"]
