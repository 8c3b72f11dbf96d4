"""The `/v2/` registry endpoint: skopeo pushes and pulls, ECR's auth, mounts and tag rules."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from local_aws import images as im

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed"),
]


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)


def creds(local_aws) -> str:
    return f"AWS:{local_aws.password}"


def request(
    local_aws,
    method: str,
    path: str,
    auth: bool = True,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    hdrs = dict(headers or {})
    if auth:
        hdrs["Authorization"] = "Basic " + base64.b64encode(creds(local_aws).encode()).decode()
    req = urllib.request.Request(local_aws.endpoint + path, data=body, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_skopeo_push_of_a_multi_arch_oci_layout_is_seen_by_the_ecr_api_with_the_same_digest(
    local_aws, ecr, repo, tmp_path: Path, capture_events
):
    index = im.multi_arch()
    layout = im.write_oci_layout(tmp_path / "layout", index, "v1")
    capture = capture_events(repo)
    out = skopeo(
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds(local_aws),
        f"oci:{layout}:v1",
        f"docker://{local_aws.registry_host}/{repo}:v1",
    )
    assert out.returncode == 0, out.stderr
    got = ecr.batch_get_image(
        repositoryName=repo, imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[im.OCI_INDEX, im.OCI_MANIFEST]
    )["images"][0]
    assert got["imageId"]["imageDigest"] == index.digest
    assert got["imageManifest"].encode() == index.raw
    digests = {d["imageDigest"] for d in ecr.describe_images(repositoryName=repo)["imageDetails"]}
    assert digests == {index.digest, *(c.digest for c in index.children)}
    events = capture.wait(5)
    assert {e["detail"]["image-digest"] for e in events} == digests  # /v2 pushes emit PUSH too


def test_image_pushed_with_the_ecr_api_pulls_back_with_skopeo_byte_for_byte(
    local_aws, repo, pusher, tmp_path: Path
):
    manifest = im.image((4096, 100))
    pusher.push(repo, manifest, "v1")
    out = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        creds(local_aws),
        f"docker://{local_aws.registry_host}/{repo}:v1",
        f"oci:{tmp_path / 'pulled'}:v1",
    )
    assert out.returncode == 0, out.stderr
    pulled_index = json.loads((tmp_path / "pulled" / "index.json").read_text())
    assert pulled_index["manifests"][0]["digest"] == manifest.digest
    for blob in manifest.blobs:
        assert (tmp_path / "pulled" / "blobs" / "sha256" / blob.digest[7:]).read_bytes() == blob.data


def test_registry_without_credentials_answers_401_with_a_basic_challenge(local_aws, repo):
    status, headers, _ = request(local_aws, "GET", "/v2/", auth=False)
    assert status == 401
    assert headers["WWW-Authenticate"] == (
        f'Basic realm="https://{local_aws.account}.dkr.ecr.{local_aws.region}.amazonaws.com/",'
        'service="ecr.amazonaws.com"'
    )
    status, _, _ = request(local_aws, "GET", f"/v2/{repo}/tags/list", auth=False)
    assert status == 401


def test_registry_with_a_wrong_password_answers_401(local_aws):
    req = urllib.request.Request(
        local_aws.endpoint + "/v2/",
        headers={"Authorization": "Basic " + base64.b64encode(b"AWS:wrong").decode()},
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 401


def test_authorization_token_password_opens_the_registry(local_aws, ecr):
    token = ecr.get_authorization_token()["authorizationData"][0]
    assert token["proxyEndpoint"] == local_aws.endpoint
    user, _, password = base64.b64decode(token["authorizationToken"]).decode().partition(":")
    assert user == "AWS" and password == local_aws.password
    status, _, _ = request(local_aws, "GET", "/v2/")
    assert status == 200


def test_unknown_repository_on_v2_answers_404_name_unknown(local_aws, unique_name):
    status, _, body = request(local_aws, "GET", f"/v2/{unique_name('nope')}/tags/list")
    assert status == 404
    assert json.loads(body)["errors"][0]["code"] == "NAME_UNKNOWN"


def _mount(local_aws, dst: str, src: str, digest: str) -> int:
    status, _, _ = request(local_aws, "POST", f"/v2/{dst}/blobs/uploads/?mount={digest}&from={src}", body=b"")
    return status


@pytest.fixture
def blob_mounting(ecr):
    """Run with BLOB_MOUNTING set as the test asks; restore DISABLED (ECR's default) afterwards."""
    yield lambda value: ecr.put_account_setting(name="BLOB_MOUNTING", value=value)
    ecr.put_account_setting(name="BLOB_MOUNTING", value="DISABLED")


def test_blob_mount_succeeds_with_201_when_blob_mounting_is_enabled(
    local_aws, ecr, repo, unique_name, pusher, blob_mounting
):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    dst = unique_name("dst")
    ecr.create_repository(repositoryName=dst)
    blob_mounting("ENABLED")
    assert ecr.get_account_setting(name="BLOB_MOUNTING")["value"] == "ENABLED"
    assert _mount(local_aws, dst, repo, manifest.blobs[1].digest) == 201
    layers = ecr.batch_check_layer_availability(repositoryName=dst, layerDigests=[manifest.blobs[1].digest])
    assert layers["layers"][0]["layerAvailability"] == "AVAILABLE"


def test_blob_mount_falls_back_to_an_upload_with_202_when_disabled(
    local_aws, ecr, repo, unique_name, pusher, blob_mounting
):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    dst = unique_name("dst")
    ecr.create_repository(repositoryName=dst)
    blob_mounting("DISABLED")
    assert _mount(local_aws, dst, repo, manifest.blobs[1].digest) == 202
    layers = ecr.batch_check_layer_availability(repositoryName=dst, layerDigests=[manifest.blobs[1].digest])
    assert layers["layers"][0]["layerAvailability"] == "UNAVAILABLE"


def test_blob_mount_of_a_blob_no_manifest_references_falls_back_to_202(
    local_aws, ecr, repo, unique_name, pusher, blob_mounting
):
    layer = im.random_layer(100)
    pusher.push_blob(repo, layer)  # uploaded, but no image references it
    dst = unique_name("dst")
    ecr.create_repository(repositoryName=dst)
    blob_mounting("ENABLED")
    assert _mount(local_aws, dst, repo, layer.digest) == 202


def test_manifest_put_over_v2_obeys_tag_immutability(local_aws, ecr, unique_name, pusher):
    repo = unique_name("imm")
    ecr.create_repository(repositoryName=repo, imageTagMutability="IMMUTABLE")
    first, second = im.image(), im.image()
    pusher.push(repo, first, "v1")
    for blob in second.blobs:
        pusher.push_blob(repo, blob)
    status, _, body = request(
        local_aws,
        "PUT",
        f"/v2/{repo}/manifests/v1",
        body=second.raw,
        headers={"Content-Type": second.media_type},
    )
    assert status == 400
    assert json.loads(body)["errors"][0]["code"] == "TAG_INVALID"
    tagged = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["images"][0]
    assert tagged["imageId"]["imageDigest"] == first.digest


def test_manifest_put_over_v2_with_missing_blobs_is_rejected(local_aws, repo):
    manifest = im.image()
    status, _, body = request(
        local_aws,
        "PUT",
        f"/v2/{repo}/manifests/v1",
        body=manifest.raw,
        headers={"Content-Type": manifest.media_type},
    )
    assert status == 400
    assert json.loads(body)["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"


def test_tag_removed_through_the_ecr_api_is_gone_from_v2(local_aws, ecr, repo, pusher):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    pusher.push(repo, manifest, "v2")
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    status, _, body = request(local_aws, "GET", f"/v2/{repo}/tags/list")
    assert status == 200 and json.loads(body)["tags"] == ["v2"]
    status, _, _ = request(
        local_aws, "GET", f"/v2/{repo}/manifests/v1", headers={"Accept": manifest.media_type}
    )
    assert status == 404
    status, headers, raw = request(
        local_aws, "GET", f"/v2/{repo}/manifests/v2", headers={"Accept": manifest.media_type}
    )
    assert status == 200 and raw == manifest.raw
    assert headers["Docker-Content-Digest"] == manifest.digest


def test_manifest_put_over_v2_beyond_the_put_image_rate_answers_429(local_aws, repo, pusher):
    manifest = im.image()
    for blob in manifest.blobs:
        pusher.push_blob(repo, blob)
    local_aws.control.fail_next("PutImage", "ThrottlingException", count=1, message="Rate exceeded")
    status, _, body = request(
        local_aws,
        "PUT",
        f"/v2/{repo}/manifests/v1",
        body=manifest.raw,
        headers={"Content-Type": manifest.media_type},
    )
    assert status == 429
    assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"
    status, headers, _ = request(
        local_aws,
        "PUT",
        f"/v2/{repo}/manifests/v1",
        body=manifest.raw,
        headers={"Content-Type": manifest.media_type},
    )
    assert status == 201 and headers["Docker-Content-Digest"] == manifest.digest


def test_registry_starts_with_registry_variables_in_the_callers_environment(tmp_path, monkeypatch):
    """podman/skopeo users export REGISTRY_AUTH_FILE; docker-registry took it as its own setting and
    exited at start, so `promoter local` failed for them."""
    from local_aws.registry import RegistryProcess

    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.setenv("REGISTRY_HTTP_ADDR", "not-an-address")
    registry = RegistryProcess(tmp_path)
    registry.start()
    try:
        assert registry.request("GET", "/v2/").status == 200
    finally:
        registry.stop()
