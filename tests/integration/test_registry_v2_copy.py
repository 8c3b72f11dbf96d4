"""Blob copies through the registry's /v2 upload API (POST, then PUT ?digest= with the body; PATCH
chunks first above V2_CHUNK_BYTES), on the local AWS's ECR endpoint, and the fall back to the
layer-upload API when /v2 is not ours to use."""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from typing import Any

import boto3
import pytest

from local_aws import images as im
from promoter.aws import registry as registry_module
from promoter.aws.registry import EcrRegistry, make_ecr_client

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
JSON_LAYER_CALLS = ("InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload")
# What moving one blob costs on ECR without a mount: its pre-signed URL, the download, and a
# monolithic /v2 upload (POST, PUT with the body). BENCHMARKS.md figure 2.
REQUESTS_PER_COPIED_BLOB = 4


class RecordingOpener:
    """urllib's own urlopen, noting each registry request (method, path); `refuse` answers the
    first `times` requests of one method with an HTTP status instead, as a registry would."""

    def __init__(self, refuse: tuple[str, int, int] | None = None) -> None:
        self.requests: list[tuple[str, str]] = []
        self._refuse = refuse

    def __call__(self, request: Any, timeout: float | None = None) -> Any:
        if isinstance(request, urllib.request.Request):
            method = request.get_method()
            self.requests.append((method, urllib.parse.urlsplit(request.full_url).path))
            if self._refuse and self._refuse[0] == method and self._refuse[2] > 0:
                verb, status, times = self._refuse
                self._refuse = (verb, status, times - 1)
                raise urllib.error.HTTPError(request.full_url, status, "refused", Message(), None)
        return urllib.request.urlopen(request, timeout=timeout)

    def count(self, method: str) -> int:
        return sum(1 for m, path in self.requests if m == method and "/blobs/uploads/" in path)


def copy_requests(served: dict[str, int]) -> dict[str, int]:
    """The local AWS's request counts of ECR (API operations, `Registry.*`, `BlobHost.*`): what a
    blob copy can send, without any other service's traffic."""
    return {
        name: n
        for name, n in served.items()
        if "." not in name or name.startswith(("Registry.", "BlobHost."))
    }


def image_with_layer(layer: im.Blob) -> im.Manifest:
    """An OCI image around one given layer (random bytes: the registry stores blobs as given)."""
    config = im.config_blob([layer])
    doc = {
        "schemaVersion": 2,
        "mediaType": im.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    }
    return im.Manifest(json.dumps(doc).encode(), im.OCI_MANIFEST, blobs=(config, layer))


def held(ecr, repository: str, digest: str, registry_id: str | None = None) -> bytes:
    """The blob as the target repository's /v2 endpoint serves it (no manifest names it yet, so
    GetDownloadUrlForLayer would refuse it)."""
    ids = {"registryIds": [registry_id]} if registry_id else {}
    data = ecr.get_authorization_token(**ids)["authorizationData"][0]
    request = urllib.request.Request(f"{data['proxyEndpoint']}/v2/{repository}/blobs/{digest}")
    # Not a header of the Request: urllib would carry it across the 307 to the blob host (S3 on
    # AWS), which refuses a request with a signature and an Authorization header alike.
    request.add_unredirected_header("Authorization", f"Basic {data['authorizationToken']}")
    with urllib.request.urlopen(request) as response:
        return response.read()


@pytest.fixture
def layer_repos(ecr, pusher, unique_name):
    """`layer_repos(size)` -> (source, target, layer): a source image around one random layer."""

    def make(size: int) -> tuple[str, str, im.Blob]:
        source, target = unique_name("src"), unique_name("dst")
        ecr.create_repository(repositoryName=source)
        ecr.create_repository(repositoryName=target)
        layer = im.Blob(os.urandom(size), im.OCI_LAYER)
        pusher.push(source, image_with_layer(layer), "v1")
        return source, target, layer

    return make


def test_a_blob_in_one_chunk_goes_up_in_the_put_after_the_post_byte_for_byte(ecr, aws_env, layer_repos):
    source, target, layer = layer_repos(3 * MIB + 17)
    opener = RecordingOpener()
    aws_env.control.reset_calls()

    copied = EcrRegistry(make_ecr_client(), opener=opener).copy_blob(source, target, layer.digest)
    calls = aws_env.control.calls()

    assert copied == layer.size
    assert held(ecr, target, layer.digest) == layer.data
    assert (opener.count("POST"), opener.count("PATCH"), opener.count("PUT")) == (1, 0, 1)
    # No base64 in JSON: the layer-upload API is not called at all.
    assert calls == {"GetDownloadUrlForLayer": 1, "GetAuthorizationToken": 1}


def test_a_blob_larger_than_a_chunk_goes_in_patches_and_its_last_chunk_in_the_put(
    ecr, aws_env, layer_repos, monkeypatch
):
    monkeypatch.setattr(registry_module, "V2_CHUNK_BYTES", 1 * MIB)
    source, target, layer = layer_repos(3 * MIB + 5)
    opener = RecordingOpener()
    aws_env.control.reset_calls()

    copied = EcrRegistry(make_ecr_client(), opener=opener).copy_blob(source, target, layer.digest)
    calls = aws_env.control.calls()

    assert copied == layer.size
    assert held(ecr, target, layer.digest) == layer.data
    assert (opener.count("POST"), opener.count("PATCH"), opener.count("PUT")) == (1, 3, 1)
    assert not set(JSON_LAYER_CALLS) & set(calls)


def test_without_a_registry_token_the_copy_falls_back_to_the_layer_api_with_a_warning(
    ecr, aws_env, layer_repos, caplog
):
    source, target, layer = layer_repos(2 * MIB)
    aws_env.control.reset_calls()
    aws_env.control.fail_next("GetAuthorizationToken", "AccessDeniedException", message="denied")

    with caplog.at_level(logging.WARNING, logger="promoter.aws.registry"):
        copied = EcrRegistry(make_ecr_client()).copy_blob(source, target, layer.digest)
    calls = aws_env.control.calls()

    assert copied == layer.size
    assert held(ecr, target, layer.digest) == layer.data
    assert [calls.get(op) for op in JSON_LAYER_CALLS] == [1, 1, 1]
    assert calls["GetDownloadUrlForLayer"] == 1  # the same pre-signed URL serves the fall back
    assert "using the layer-upload API" in caplog.text


def test_a_registry_refusing_v2_uploads_falls_back_to_the_layer_api(ecr, aws_env, layer_repos, caplog):
    source, target, layer = layer_repos(1 * MIB)
    opener = RecordingOpener(refuse=("POST", 405, 1))  # a registry without OCI pushes
    aws_env.control.reset_calls()

    with caplog.at_level(logging.WARNING, logger="promoter.aws.registry"):
        copied = EcrRegistry(make_ecr_client(), opener=opener).copy_blob(source, target, layer.digest)
    calls = aws_env.control.calls()

    assert copied == layer.size
    assert held(ecr, target, layer.digest) == layer.data
    assert opener.count("PATCH") == 0
    assert [calls.get(op) for op in JSON_LAYER_CALLS] == [1, 1, 1]
    assert "POST 405" in caplog.text


def test_a_throttled_v2_upload_is_tried_again_through_v2(ecr, aws_env, layer_repos):
    source, target, layer = layer_repos(1 * MIB)
    opener = RecordingOpener(refuse=("POST", 429, 1))  # ECR's TOOMANYREQUESTS
    aws_env.control.reset_calls()

    copied = EcrRegistry(make_ecr_client(), opener=opener).copy_blob(source, target, layer.digest)
    calls = aws_env.control.calls()

    assert copied == layer.size
    assert held(ecr, target, layer.digest) == layer.data
    assert (opener.count("POST"), opener.count("PATCH"), opener.count("PUT")) == (2, 0, 1)
    assert not set(JSON_LAYER_CALLS) & set(calls)


def test_a_copy_into_another_accounts_registry_goes_to_that_registrys_endpoint(
    ecr, aws_env, layer_repos, unique_name
):
    other_account = "210987654321"
    source, _, layer = layer_repos(2 * MIB)
    target = unique_name("remote")
    arn = ecr.create_repository(repositoryName=target, registryId=other_account)["repository"][
        "repositoryArn"
    ]
    # The other account lets this one push (the local AWS enforces repository policies across accounts).
    pushes = ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"]
    allow = {"Effect": "Allow", "Principal": {"AWS": aws_env.account}, "Action": pushes, "Resource": arn}
    boto3.client(
        "ecr", endpoint_url=aws_env.endpoint, aws_access_key_id=other_account, aws_secret_access_key="x"
    ).set_repository_policy(
        repositoryName=target, policyText=json.dumps({"Version": "2012-10-17", "Statement": [allow]})
    )
    home = EcrRegistry(make_ecr_client())
    remote = EcrRegistry(make_ecr_client(registry_id=other_account))  # its repository policy, no role
    aws_env.control.reset_calls()

    copied = remote.copy_blob(source, target, layer.digest, from_registry=home)
    calls = aws_env.control.calls()

    assert copied == layer.size
    assert held(ecr, target, layer.digest, registry_id=other_account) == layer.data
    assert not set(JSON_LAYER_CALLS) & set(calls)
    available = ecr.batch_check_layer_availability(
        registryId=other_account, repositoryName=target, layerDigests=[layer.digest]
    )["layers"]
    assert available[0]["layerAvailability"] == "AVAILABLE"


def test_each_copied_blob_costs_four_requests_on_the_local_ecr(ecr, aws_env, layer_repos):
    """Counted by the local AWS's own request counter: a download URL, the download, POST, PUT."""
    warm, *copies = [layer_repos(2 * MIB + n) for n in (0, 1, 2)]
    registry = EcrRegistry(make_ecr_client())
    registry.copy_blob(warm[0], warm[1], warm[2].digest)  # GetAuthorizationToken: once per container
    aws_env.control.reset_requests()

    for source, target, layer in copies:
        assert registry.copy_blob(source, target, layer.digest) == layer.size
    served = copy_requests(aws_env.control.requests())

    assert sum(served.values()) / len(copies) <= REQUESTS_PER_COPIED_BLOB
    assert served == {
        "GetDownloadUrlForLayer": 2,
        "BlobHost.GET": 2,
        "Registry.POST": 2,
        "Registry.PUT": 2,
    }
    for _, target, layer in copies:
        assert held(ecr, target, layer.digest) == layer.data


def test_a_blob_above_the_chunk_size_keeps_its_digest_and_patches_only_whole_chunks(
    ecr, aws_env, layer_repos, monkeypatch
):
    """ECR's smallest PATCH is 5 MiB (S3 multipart): chunks of exactly that, the rest in the PUT."""
    monkeypatch.setattr(registry_module, "V2_CHUNK_BYTES", 5 * MIB)
    source, target, layer = layer_repos(12 * MIB + 3)
    aws_env.control.reset_requests()

    copied = EcrRegistry(make_ecr_client()).copy_blob(source, target, layer.digest)
    served = aws_env.control.requests()

    assert copied == layer.size
    assert held(ecr, target, layer.digest) == layer.data
    assert [served.get(f"Registry.{method}") for method in ("POST", "PATCH", "PUT")] == [1, 2, 1]
    available = ecr.batch_check_layer_availability(repositoryName=target, layerDigests=[layer.digest])
    assert available["layers"][0]["layerAvailability"] == "AVAILABLE"
