"""The ECR adapter's boundary: ECR's answers become our outcomes and exceptions, once."""

from __future__ import annotations

import json

import pytest

from local_aws import images as im
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.exceptions import (
    DigestMismatchError,
    InvalidManifestError,
    RepositoryNotFoundError,
    TagConflictError,
)
from promoter.model.manifests import Manifest

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(aws_env) -> EcrRegistry:
    return EcrRegistry(make_ecr_client())


def test_put_of_the_same_manifest_and_tag_again_reports_already_there(registry, pusher, repo):
    image = im.image((256,))
    pusher.push(repo, image, "v1")
    manifest = registry.get_manifests(repo, ["v1"])["v1"]

    assert registry.put_manifest(repo, manifest, "v1") is False  # ImageAlreadyExistsException
    assert registry.put_manifest(repo, manifest, "v2") is True


def test_get_manifests_maps_tags_and_digests_and_leaves_out_what_is_missing(registry, pusher, repo):
    image = im.image((256,))
    pusher.push(repo, image, "v1")

    found = registry.get_manifests(repo, ["v1", image.digest, "nope", "sha256:" + "0" * 64])

    assert set(found) == {"v1", image.digest}
    assert found["v1"].body.encode() == image.raw
    assert found["v1"].digest == found["v1"].body_digest == image.digest


def test_ecr_errors_become_our_exceptions(registry, pusher, repo, unique_name, ecr):
    image = im.image((256,))
    manifest = Manifest(image.digest, im.OCI_MANIFEST, image.text)
    with pytest.raises(RepositoryNotFoundError):
        registry.get_manifests("no-such-repo", ["v1"])
    with pytest.raises(InvalidManifestError, match="LayersNotFoundException"):
        registry.put_manifest(repo, manifest, "v1")
    pusher.push(repo, image, "v1")
    with pytest.raises(DigestMismatchError):
        registry.put_manifest(repo, Manifest("sha256:" + "1" * 64, im.OCI_MANIFEST, image.text), "v2")
    locked = unique_name("locked")
    ecr.create_repository(repositoryName=locked, imageTagMutability="IMMUTABLE")
    other = im.image((256,))
    pusher.push(locked, other, "v1")
    pusher.push(locked, image)
    with pytest.raises(TagConflictError):
        registry.put_manifest(locked, manifest, "v1")


def test_a_manifest_ecr_cannot_parse_is_an_invalid_manifest(registry, repo):
    body = json.dumps({"schemaVersion": 2})
    bad = Manifest(Manifest("x", "", body).body_digest, im.OCI_MANIFEST, body)
    with pytest.raises(InvalidManifestError):
        registry.put_manifest(repo, bad, "v1")
