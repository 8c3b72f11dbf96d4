"""Fidelity edges real clients still met on the local ECR (issue 21, item 8), each checked by a
client nobody here wrote where one exists (skopeo, the aws CLI) and by raw HTTP otherwise:

- a method a `/v2/` route does not define answers 405 UNSUPPORTED with `Allow`, never a GET's answer;
- the `Location` of a 416 answer resumes the upload (it carries the upload's state);
- the `/v2/` tag grammar (1-128 characters) is enforced on `/v2/`, while PutImage keeps ECR's 300;
- an OCI manifest stored without a top-level `mediaType` converts by tag like the rest;
- a manifest over 4 MiB is refused with ECR's words on both APIs, the registry's text never echoed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from botocore.exceptions import ClientError

from local_aws import images as im
from local_aws.manifests import DOCKER_MANIFEST, OCI_MANIFEST, sha256_digest
from tests.integration.test_local_registry_api import error_codes, open_upload, v2

pytestmark = pytest.mark.integration
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
TOO_LARGE = "failed to satisfy constraint: 'Member must have length less than or equal to 4194304'"


# ---------------------------------------------------------------------------- 405
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/{repo}/manifests/v1"),
        ("PATCH", "/v2/{repo}/manifests/{digest}"),
        ("POST", "/v2/{repo}/tags/list"),
        ("PUT", "/v2/{repo}/blobs/{layer}"),
        ("DELETE", "/v2/_catalog"),
        ("POST", "/v2/"),
    ],
)
def test_a_method_a_route_does_not_define_answers_405_not_a_get(local_aws, repo, pusher, method, path):
    image = im.image((64,))
    pusher.push(repo, image, "v1")
    url = path.format(repo=repo, digest=image.digest, layer=image.blobs[1].digest)

    status, headers, body = v2(local_aws, method, url, b"{}", {"Content-Type": "application/json"})

    assert status == 405, body
    assert error_codes(body) == ["UNSUPPORTED"]
    assert method not in headers["allow"] and "GET" in headers["allow"]
    assert image.raw not in body


def test_skopeo_still_reads_the_image_through_the_routes_it_uses(local_aws, repo, pusher, tmp_path):
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo needed")
    image = im.image((64,))
    pusher.push(repo, image, "v1")
    host = local_aws.endpoint.split("//", 1)[1]
    done = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", f"AWS:{local_aws.password}",
         f"docker://{host}/{repo}:v1"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == image.raw


# ---------------------------------------------------------------------------- 416
def test_the_location_of_a_416_answer_resumes_the_upload(local_aws, repo):
    data = bytes(range(256)) * 8
    chunk = {"Content-Type": "application/octet-stream"}
    location = open_upload(local_aws, repo)
    status, headers, _ = v2(local_aws, "PATCH", location, data[:1024], {**chunk, "Content-Range": "0-1023"})
    assert status == 202
    # A client that lost track of what was received resends from 0: 416, and where to go on.
    status, refused, _ = v2(
        local_aws, "PATCH", headers["location"], data, {**chunk, "Content-Range": f"0-{len(data) - 1}"}
    )
    assert status == 416 and refused["range"] == "0-1023"

    status, headers, body = v2(
        local_aws,
        "PATCH",
        refused["location"],
        data[1024:],
        {**chunk, "Content-Range": f"1024-{len(data) - 1}"},
    )
    assert status == 202, body
    separator = "&" if "?" in headers["location"] else "?"
    digest = sha256_digest(data)
    status, _, body = v2(local_aws, "PUT", f"{headers['location']}{separator}digest={digest}", b"")
    assert status == 201, body
    assert v2(local_aws, "HEAD", f"/v2/{repo}/blobs/{digest}")[0] == 200


# ---------------------------------------------------------------------------- tag grammar
def test_the_v2_tag_grammar_allows_128_characters_and_refuses_129(local_aws, ecr, repo, pusher):
    image = im.image((64,))
    pusher.push(repo, image)
    longest, too_long = "t" * 128, "t" * 129
    put = {"Content-Type": image.media_type}

    assert v2(local_aws, "PUT", f"/v2/{repo}/manifests/{longest}", image.raw, put)[0] == 201
    status, _, body = v2(local_aws, "PUT", f"/v2/{repo}/manifests/{too_long}", image.raw, put)
    assert (status, error_codes(body)) == (400, ["TAG_INVALID"])
    for bad in ("-leading-dash", ".dot"):
        assert v2(local_aws, "PUT", f"/v2/{repo}/manifests/{bad}", image.raw, put)[0] == 400
    assert v2(local_aws, "GET", f"/v2/{repo}/manifests/{too_long}")[0] == 400
    # The JSON API takes ECR's own limit (imageTag: 1-300 characters).
    ecr.put_image(repositoryName=repo, imageManifest=image.raw.decode(), imageTag=too_long)
    tags = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": image.digest}])["imageDetails"][
        0
    ]
    assert sorted(tags["imageTags"]) == [longest, too_long]


# ---------------------------------------------------------------------------- conversion
def test_an_oci_manifest_stored_without_media_type_converts_by_tag(local_aws, ecr, repo, pusher):
    image = im.image((64,), include_media_type=False)
    assert b'"mediaType": "application/vnd.oci.image.manifest' not in image.raw[:40]
    pusher.push(repo, image, "v1")

    status, headers, body = v2(
        local_aws, "GET", f"/v2/{repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST}
    )
    (got,) = ecr.batch_get_image(
        repositoryName=repo, imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[DOCKER_MANIFEST]
    )["images"]

    assert status == 200 and headers["content-type"] == DOCKER_MANIFEST
    doc = json.loads(body)
    assert doc["mediaType"] == DOCKER_MANIFEST
    assert [d["digest"] for d in (doc["config"], *doc["layers"])] == [b.digest for b in image.blobs]
    assert got["imageManifestMediaType"] == DOCKER_MANIFEST and got["imageManifest"].encode() == body
    # By digest ECR never converts: the stored bytes or nothing.
    by_digest = v2(local_aws, "GET", f"/v2/{repo}/manifests/{image.digest}", headers={"Accept": OCI_MANIFEST})
    assert by_digest[0] == 200 and by_digest[2] == image.raw


# ---------------------------------------------------------------------------- 4 MiB
def _oversized_manifest() -> bytes:
    image = im.image((64,))
    doc = json.loads(image.raw)
    doc["annotations"] = {"padding": "x" * MAX_MANIFEST_BYTES}
    return json.dumps(doc).encode()


def test_a_manifest_over_4_mib_is_refused_on_v2_with_ecrs_words_also_when_chunked(local_aws, ecr, repo):
    raw = _oversized_manifest()
    put = {"Content-Type": OCI_MANIFEST}

    sized = v2(local_aws, "PUT", f"/v2/{repo}/manifests/big", raw, put)
    chunked = _chunked_put(local_aws, f"/v2/{repo}/manifests/big", raw, put)

    for status, body in ((sized[0], sized[2]), chunked):
        assert status == 400, body
        (error,) = json.loads(body)["errors"]
        assert error["code"] == "MANIFEST_INVALID" and TOO_LARGE in error["message"]
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []


def test_a_manifest_over_4_mib_is_refused_by_put_image_through_the_aws_cli(local_aws, repo, tmp_path):
    if shutil.which("aws") is None:
        pytest.skip("the aws CLI needed")
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(_oversized_manifest())
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": local_aws.endpoint,
        "AWS_DEFAULT_REGION": local_aws.region,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    done = subprocess.run(
        ["aws", "ecr", "put-image", "--repository-name", repo, "--image-tag", "big",
         "--image-manifest", f"file://{manifest}"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    assert "InvalidParameterException" in done.stderr and TOO_LARGE in done.stderr, done.stderr


def test_the_registrys_own_words_are_never_echoed_on_a_refused_manifest(local_aws, ecr, repo):
    image = im.image((64,))  # its blobs were never uploaded
    with pytest.raises(ClientError) as exc:
        ecr.put_image(repositoryName=repo, imageManifest=image.raw.decode(), imageTag="v1")
    status, _, body = v2(
        local_aws, "PUT", f"/v2/{repo}/manifests/v1", image.raw, {"Content-Type": OCI_MANIFEST}
    )

    message = exc.value.response["Error"]["Message"]
    assert exc.value.response["Error"]["Code"] == "LayersNotFoundException"
    assert image.blobs[0].digest in message or image.blobs[1].digest in message
    for text in (message, json.loads(body)["errors"][0]["message"]):
        assert "blob unknown to registry" not in text and '"errors"' not in text
    assert status == 400


def _chunked_put(local_aws, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """A PUT with `Transfer-Encoding: chunked` (no Content-Length), as some clients stream."""
    import http.client

    from tests.integration.test_local_registry_api import basic

    conn = http.client.HTTPConnection("127.0.0.1", local_aws.port, timeout=120)
    try:
        conn.putrequest("PUT", path)
        for key, value in {
            "Authorization": basic(local_aws),
            **headers,
            "Transfer-Encoding": "chunked",
        }.items():
            conn.putheader(key, value)
        conn.endheaders()
        for start in range(0, len(raw), 1 << 20):
            piece = raw[start : start + (1 << 20)]
            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
