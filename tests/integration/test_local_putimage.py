"""PutImage on the local ECR behaves as ECR.md's table says (boto3 as the client)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from local_aws import images as im

pytestmark = pytest.mark.integration


def code(exc_info: pytest.ExceptionInfo[ClientError]) -> str:
    return exc_info.value.response["Error"]["Code"]


def put(ecr, repo: str, manifest: im.Manifest, tag: str | None = None, **extra):
    kwargs = {
        "repositoryName": repo,
        "imageManifest": manifest.text,
        "imageManifestMediaType": manifest.media_type,
        **extra,
    }
    if tag:
        kwargs["imageTag"] = tag
    return ecr.put_image(**kwargs)


def test_put_image_digest_is_sha256_of_exact_manifest_bytes(ecr, repo, pusher):
    manifest = im.image()
    for blob in manifest.blobs:
        pusher.push_blob(repo, blob)
    resp = put(ecr, repo, manifest, "v1", imageDigest=manifest.digest)
    assert resp["image"]["imageId"] == {"imageDigest": manifest.digest, "imageTag": "v1"}
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["images"][0]
    assert got["imageManifest"].encode() == manifest.raw


def test_same_manifest_and_same_tag_raises_image_already_exists(ecr, repo, pusher):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    with pytest.raises(ClientError) as exc:
        put(ecr, repo, manifest, "v1")
    assert code(exc) == "ImageAlreadyExistsException"


def test_untagged_put_of_existing_digest_raises_image_already_exists(ecr, repo, pusher):
    manifest = im.image()
    pusher.push(repo, manifest)
    with pytest.raises(ClientError) as exc:
        put(ecr, repo, manifest)
    assert code(exc) == "ImageAlreadyExistsException"


def test_same_manifest_under_a_new_tag_adds_the_tag(ecr, repo, pusher):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    put(ecr, repo, manifest, "v2")
    detail = ecr.describe_images(repositoryName=repo)["imageDetails"]
    assert [sorted(d["imageTags"]) for d in detail] == [["v1", "v2"]]


def test_wrong_image_digest_raises_digest_does_not_match_and_stores_nothing(ecr, repo, pusher):
    manifest = im.image()
    for blob in manifest.blobs:
        pusher.push_blob(repo, blob)
    with pytest.raises(ClientError) as exc:
        put(ecr, repo, manifest, "v1", imageDigest="sha256:" + "0" * 64)
    assert code(exc) == "ImageDigestDoesNotMatchException"
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []


def test_missing_layers_raise_layers_not_found(ecr, repo):
    with pytest.raises(ClientError) as exc:
        put(ecr, repo, im.image(), "v1")
    assert code(exc) == "LayersNotFoundException"


def test_layers_only_in_another_repository_raise_layers_not_found(ecr, repo, unique_name, pusher):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    other = unique_name("other")
    ecr.create_repository(repositoryName=other)
    with pytest.raises(ClientError) as exc:
        put(ecr, other, manifest, "v1")
    assert code(exc) == "LayersNotFoundException"


def test_index_with_missing_child_raises_referenced_images_not_found(ecr, repo, pusher):
    index = im.multi_arch(attestations=False)
    pusher.push(repo, index.children[0])  # the second child is never pushed
    with pytest.raises(ClientError) as exc:
        put(ecr, repo, index, "v1")
    assert code(exc) == "ReferencedImagesNotFoundException"


def test_index_after_its_children_is_stored_with_the_index_media_type(ecr, repo, pusher):
    index = im.multi_arch()
    pushed = pusher.push(repo, index, "v1")
    assert len(pushed.child_digests) == 4  # two platforms + two attestation manifests
    got = ecr.batch_get_image(
        repositoryName=repo, imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[im.OCI_INDEX]
    )["images"][0]
    assert got["imageManifestMediaType"] == im.OCI_INDEX
    assert got["imageId"]["imageDigest"] == index.digest


def test_invalid_json_manifest_raises_invalid_parameter(ecr, repo):
    with pytest.raises(ClientError) as exc:
        ecr.put_image(repositoryName=repo, imageManifest="{not json", imageTag="v1")
    assert code(exc) == "InvalidParameterException"


def test_manifest_without_media_type_and_none_given_raises_invalid_parameter(ecr, repo, pusher):
    manifest = im.image(include_media_type=False)
    for blob in manifest.blobs:
        pusher.push_blob(repo, blob)
    with pytest.raises(ClientError) as exc:
        ecr.put_image(repositoryName=repo, imageManifest=manifest.text, imageTag="v1")
    assert code(exc) == "InvalidParameterException"
    # ...and the same bytes with the media type given are accepted, digest unchanged.
    resp = ecr.put_image(
        repositoryName=repo,
        imageManifest=manifest.text,
        imageTag="v1",
        imageManifestMediaType=im.OCI_MANIFEST,
    )
    assert resp["image"]["imageId"]["imageDigest"] == manifest.digest


def test_given_media_type_that_contradicts_the_manifest_raises_invalid_parameter(ecr, repo, pusher):
    manifest = im.image()
    for blob in manifest.blobs:
        pusher.push_blob(repo, blob)
    with pytest.raises(ClientError) as exc:
        ecr.put_image(
            repositoryName=repo,
            imageManifest=manifest.text,
            imageTag="v1",
            imageManifestMediaType=im.DOCKER_MANIFEST,
        )
    assert code(exc) == "InvalidParameterException"


def test_unsupported_media_type_raises_invalid_parameter(ecr, repo):
    doc = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.example+json"})
    with pytest.raises(ClientError) as exc:
        ecr.put_image(repositoryName=repo, imageManifest=doc, imageTag="v1")
    assert code(exc) == "InvalidParameterException"


def test_missing_repository_raises_repository_not_found(ecr, unique_name):
    with pytest.raises(ClientError) as exc:
        put(ecr, unique_name("missing"), im.image(), "v1")
    assert code(exc) == "RepositoryNotFoundException"


def test_moving_a_mutable_tag_leaves_the_old_image_untagged_but_present(ecr, repo, pusher):
    first, second = im.image(), im.image()
    pusher.push(repo, first, "latest")
    pusher.push(repo, second, "latest")
    ids = ecr.list_images(repositoryName=repo)["imageIds"]
    assert {"imageDigest": first.digest} in ids
    assert {"imageDigest": second.digest, "imageTag": "latest"} in ids
    untagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageIds"]
    assert untagged == [{"imageDigest": first.digest}]
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": first.digest}])
    assert got["images"][0]["imageManifest"].encode() == first.raw


def test_docker_v2_manifest_is_stored_as_docker_v2(ecr, repo, pusher):
    manifest = im.image(media_type=im.DOCKER_MANIFEST)
    pusher.push(repo, manifest, "v1")
    detail = ecr.describe_images(repositoryName=repo)["imageDetails"][0]
    assert detail["imageManifestMediaType"] == im.DOCKER_MANIFEST
    assert detail["imageDigest"] == manifest.digest


# --------------------------------------------------------------------------- tag immutability
def _repo_with(ecr, unique_name, mutability: str, filters: list[str] | None = None) -> str:
    name = unique_name("imm")
    kwargs = {"repositoryName": name, "imageTagMutability": mutability}
    if filters:
        kwargs["imageTagMutabilityExclusionFilters"] = [
            {"filterType": "WILDCARD", "filter": f} for f in filters
        ]
    ecr.create_repository(**kwargs)
    return name


def _move(ecr, pusher, repo: str, tag: str) -> str:
    """Push two images under `tag`; the error code of the second, or "moved"."""
    pusher.push(repo, im.image(), tag)
    second = im.image()
    for blob in second.blobs:
        pusher.push_blob(repo, blob)
    try:
        put(ecr, repo, second, tag)
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return "moved"


def test_immutable_tag_on_another_digest_raises_tag_already_exists(ecr, unique_name, pusher):
    repo = _repo_with(ecr, unique_name, "IMMUTABLE")
    assert _move(ecr, pusher, repo, "v1") == "ImageTagAlreadyExistsException"


def test_immutable_repo_still_answers_image_already_exists_for_the_same_digest(ecr, unique_name, pusher):
    repo = _repo_with(ecr, unique_name, "IMMUTABLE")
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    with pytest.raises(ClientError) as exc:
        put(ecr, repo, manifest, "v1")
    assert code(exc) == "ImageAlreadyExistsException"


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("latest", "moved"),  # matches the exclusion: mutable
        ("dev-123", "moved"),  # matches dev-*
        ("v1.0.0", "ImageTagAlreadyExistsException"),
        ("xdev-1", "ImageTagAlreadyExistsException"),  # wildcard anchored at both ends
    ],
)
def test_immutable_with_exclusion_lets_only_matching_tags_move(ecr, unique_name, pusher, tag, expected):
    repo = _repo_with(ecr, unique_name, "IMMUTABLE_WITH_EXCLUSION", ["latest", "dev-*"])
    assert _move(ecr, pusher, repo, tag) == expected


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("release-1", "ImageTagAlreadyExistsException"),
        ("latest", "moved"),
        ("release.1", "moved"),  # '.' is literal, not a regex wildcard
    ],
)
def test_mutable_with_exclusion_pins_only_matching_tags(ecr, unique_name, pusher, tag, expected):
    repo = _repo_with(ecr, unique_name, "MUTABLE_WITH_EXCLUSION", ["release-*"])
    assert _move(ecr, pusher, repo, tag) == expected


def test_exclusion_filter_is_a_wildcard_not_a_regex(ecr, unique_name, pusher):
    repo = _repo_with(ecr, unique_name, "IMMUTABLE_WITH_EXCLUSION", ["v1.*"])
    assert _move(ecr, pusher, repo, "v1x2") == "ImageTagAlreadyExistsException"  # a regex would match


def test_put_image_tag_mutability_switches_the_rule(ecr, repo, pusher):
    ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
    assert _move(ecr, pusher, repo, "v1") == "ImageTagAlreadyExistsException"
    ecr.put_image_tag_mutability(
        repositoryName=repo,
        imageTagMutability="MUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "v*"}],
    )
    desc = ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]
    assert desc["imageTagMutability"] == "MUTABLE_WITH_EXCLUSION"
    assert desc["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "v*"}]
    assert _move(ecr, pusher, repo, "latest") == "moved"


def test_exclusion_mode_without_filters_is_rejected(ecr, unique_name):
    with pytest.raises(ClientError) as exc:
        ecr.create_repository(repositoryName=unique_name("x"), imageTagMutability="IMMUTABLE_WITH_EXCLUSION")
    assert code(exc) == "InvalidParameterException"


def test_concurrent_puts_of_one_immutable_tag_let_exactly_one_digest_win(ecr, unique_name, pusher):
    from concurrent.futures import ThreadPoolExecutor

    repo = _repo_with(ecr, unique_name, "IMMUTABLE")
    candidates = [im.image() for _ in range(6)]
    for manifest in candidates:
        for blob in manifest.blobs:
            pusher.push_blob(repo, blob)

    def attempt(manifest: im.Manifest) -> str:
        try:
            put(ecr, repo, manifest, "release")
            return "ok"
        except ClientError as exc:
            return exc.response["Error"]["Code"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(attempt, candidates))
    assert sorted(outcomes) == ["ImageTagAlreadyExistsException"] * 5 + ["ok"]
    winner = candidates[outcomes.index("ok")]
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "release"}])["images"][0]
    assert got["imageId"]["imageDigest"] == winner.digest
