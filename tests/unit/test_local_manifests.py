"""The local ECR's manifest rules: exact-byte digests, media types, wildcard exclusion filters."""

from __future__ import annotations

import hashlib
import json

import pytest

from local_aws import images as im
from local_aws.manifests import ManifestError, convert_manifest, parse_manifest, wildcard_match


@pytest.mark.parametrize(
    ("pattern", "tag", "matches"),
    [
        ("latest", "latest", True),
        ("latest", "latest2", False),
        ("dev-*", "dev-1", True),
        ("dev-*", "dev-", True),
        ("dev-*", "xdev-1", False),
        ("*-rc", "1.0-rc", True),
        ("v1.*", "v1x2", False),  # '.' is literal
        ("v1.*", "v1.2", True),
        ("*", "anything", True),
        ("a*b*c", "a-b-c", True),
        ("a*b*c", "a-c", False),
    ],
)
def test_exclusion_filters_match_as_anchored_wildcards(pattern, tag, matches):
    assert wildcard_match(pattern, tag) is matches


def test_digest_is_taken_over_the_exact_bytes_not_a_reserialisation():
    manifest = im.image()
    parsed = parse_manifest(manifest.raw, None)
    assert parsed.digest == "sha256:" + hashlib.sha256(manifest.raw).hexdigest()
    compact = json.dumps(json.loads(manifest.raw), separators=(",", ":")).encode()
    assert parse_manifest(compact, None).digest != parsed.digest


def test_index_children_and_image_blobs_are_listed():
    index = im.multi_arch(attestations=False)
    parsed = parse_manifest(index.raw, None)
    assert parsed.children == tuple(c.digest for c in index.children)
    child = parse_manifest(index.children[0].raw, None)
    assert child.blobs == tuple(b.digest for b in index.children[0].blobs)


def test_referrer_subject_and_artifact_type_are_read():
    subject = im.image()
    parsed = parse_manifest(im.referrer(subject).raw, None)
    assert parsed.subject == subject.digest
    assert parsed.artifact_type == "application/vnd.example.sbom.v1+json"


@pytest.mark.parametrize(
    ("raw", "given"),
    [
        (b"{nope", None),
        (b"[]", None),
        (json.dumps({"schemaVersion": 2, "config": {}, "layers": []}).encode(), None),  # no media type at all
        (json.dumps({"schemaVersion": 2, "mediaType": "text/plain"}).encode(), None),
        (json.dumps({"schemaVersion": 2, "mediaType": im.OCI_MANIFEST, "layers": []}).encode(), None),
        (json.dumps({"schemaVersion": 2, "mediaType": im.OCI_INDEX}).encode(), None),
        (
            json.dumps(
                {"schemaVersion": 1, "mediaType": im.OCI_MANIFEST, "config": {}, "layers": []}
            ).encode(),
            None,
        ),
    ],
)
def test_malformed_manifests_are_refused_with_a_reason(raw, given):
    with pytest.raises(ManifestError) as exc:
        parse_manifest(raw, given)
    assert "Invalid parameter" in str(exc.value)


def test_given_media_type_must_agree_with_the_manifest():
    with pytest.raises(ManifestError):
        parse_manifest(im.image().raw, im.DOCKER_MANIFEST)


def test_given_media_type_is_used_when_the_manifest_has_none():
    manifest = im.image(include_media_type=False)
    assert parse_manifest(manifest.raw, im.OCI_MANIFEST).media_type == im.OCI_MANIFEST


# ---------------------------------------------------------------------------- conversion (ECR's, by tag)
def test_docker_v2_converts_to_oci_keeping_every_digest_and_size():
    docker = im.image((64, 128), media_type=im.DOCKER_MANIFEST)
    raw, media_type = convert_manifest(docker.raw, [im.OCI_MANIFEST])
    doc, original = json.loads(raw), json.loads(docker.raw)
    assert media_type == im.OCI_MANIFEST == doc["mediaType"]
    assert doc["config"] == {**original["config"], "mediaType": im.OCI_CONFIG}
    assert [(d["digest"], d["size"], d["mediaType"]) for d in doc["layers"]] == [
        (d["digest"], d["size"], im.OCI_LAYER) for d in original["layers"]
    ]
    back, _ = convert_manifest(raw, [im.DOCKER_MANIFEST])
    assert json.loads(back) == original


def test_no_conversion_for_an_artifact_an_index_an_unknown_layer_type_or_an_unaccepted_target():
    subject = im.image()
    assert convert_manifest(im.referrer(subject).raw, [im.DOCKER_MANIFEST]) is None
    assert convert_manifest(im.multi_arch().raw, [im.DOCKER_MANIFEST, im.DOCKER_MANIFEST_LIST]) is None
    zstd = json.loads(subject.raw)
    zstd["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
    assert convert_manifest(json.dumps(zstd).encode(), [im.DOCKER_MANIFEST]) is None
    assert convert_manifest(subject.raw, [im.OCI_INDEX]) is None
