"""A signature stored at the cosign tag by someone else cannot hide a valid signature stored as a
referrer (issue 18.7), on the local AWS with real signatures: the image and its Notation signature
are notaryproject/notation's own e2e OCI layout (tests/fixtures/signatures/notation/jws-oci-layout),
the rule trusts that layout's certificate and cosign's real test key (cosign-simple/key-p256), and
whoever may push to the source repository has filled the cosign tag with 33 signatures of their own."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from local_aws import images as im
from promoter.gates.signature import MAX_SIGNATURES_CHECKED
from promoter.model.outcomes import PROMOTED, UNVERIFIED
from tests.fixtures import SIGNATURES_DIR
from tests.integration.test_signature_gate import (  # noqa: F401 - lambda_with is a fixture
    SIGNATURE_ANNOTATION,
    KeyPair,
    digest_at,
    history_of,
    lambda_with,
    signature_tag,
    simple_signing_payload,
)

pytestmark = pytest.mark.integration

LAYOUT = SIGNATURES_DIR / "notation" / "jws-oci-layout"
NOTATION_SIGNATURE_MANIFEST = "sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f"
# One more than the 32 candidates the gate used to try in all, cosign's tag first.
FOREIGN_TAG_LAYERS = 33


def _blob(digest: str) -> bytes:
    return (LAYOUT / "oci-layout" / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def _layout_manifest(digest: str) -> im.Manifest:
    """A manifest of the real layout, byte for byte, with the blobs it names."""
    raw = _blob(digest)
    document = json.loads(raw)
    descriptors = [document["config"], *document["layers"]]
    blobs = tuple(im.Blob(_blob(d["digest"]), d["mediaType"]) for d in descriptors)
    manifest = im.Manifest(raw, document["mediaType"], blobs=blobs)
    assert manifest.digest == digest
    return manifest


def _signed_image() -> tuple[im.Manifest, im.Manifest]:
    """The layout's image (tag v1) and its real Notation JWS signature, a referrer of it."""
    signature = _layout_manifest(NOTATION_SIGNATURE_MANIFEST)
    subject = json.loads(signature.raw)["subject"]["digest"]
    return _layout_manifest(subject), signature


def _foreign_cosign_tag(subject: im.Manifest, layers: int) -> im.Manifest:
    """A `.sig` manifest of `layers` simple-signing layers, each signed by a key of its own (none
    the rule lists): distinct candidates that each cost a read and a verification."""
    payload = im.Blob(simple_signing_payload(subject.digest), im.COSIGN_SIGNATURE)
    signed = [
        dict(
            payload.descriptor(),
            annotations={SIGNATURE_ANNOTATION: base64.b64encode(KeyPair().sign(payload.data)).decode()},
        )
        for _ in range(layers)
    ]
    config = im.Blob(
        json.dumps({"architecture": "", "os": "", "rootfs": {"type": "layers"}}).encode(), im.OCI_CONFIG
    )
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": im.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": signed,
    }
    return im.Manifest(json.dumps(document).encode(), im.OCI_MANIFEST, blobs=(config, payload))


def _config(source: str, target: str) -> dict[str, Any]:
    cosign_key = (SIGNATURES_DIR / "cosign-simple" / "key-p256" / "cosign.pub").read_text()
    root = (LAYOUT / "trust" / "e2e.crt").read_text()
    return {
        "rules": [
            {
                "name": "release",
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": target}],
                "require": {
                    "signature": {"cosign": {"keys": [cosign_key]}, "notation": {"trust_roots": [root]}}
                },
            }
        ]
    }


@pytest.fixture
def repos(ecr, unique_name) -> tuple[str, str]:
    source, target = unique_name("signed"), unique_name("prod")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    return source, target


def test_a_33_layer_cosign_tag_beside_a_valid_referrer_signature_does_not_stop_the_promotion(
    ecr,
    pusher,
    repos,
    lambda_with,  # noqa: F811
):
    source, target = repos
    image, notation_signature = _signed_image()
    pusher.push(source, image, "v1")
    pusher.push(source, notation_signature)
    pusher.push(source, _foreign_cosign_tag(image, FOREIGN_TAG_LAYERS), signature_tag(image.digest))

    assert lambda_with(_config(source, target))(source, image.digest, "v1") == {"batchItemFailures": []}

    assert digest_at(ecr, target, "v1") == image.digest
    (record,) = history_of(target, "v1")
    assert record["outcome"] == PROMOTED
    assert record["signature"]["verifier"] == "notation"
    assert record["signature"]["identity"] == "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"


def test_past_the_stated_bound_the_verdict_says_how_many_were_not_tried(ecr, pusher, repos, lambda_with):  # noqa: F811
    source, target = repos
    image, _notation_signature = _signed_image()  # its signature is not pushed: nothing verifies
    pusher.push(source, image, "v1")
    pusher.push(source, _foreign_cosign_tag(image, MAX_SIGNATURES_CHECKED + 3), signature_tag(image.digest))

    assert lambda_with(_config(source, target))(source, image.digest, "v1") == {"batchItemFailures": []}

    assert digest_at(ecr, target, "v1") is None
    (record,) = history_of(target, "v1")
    assert record["outcome"] == UNVERIFIED
    assert "3 more not tried" in record["reason"]


def test_the_fixture_layout_is_read_as_copied() -> None:
    assert Path(LAYOUT / "oci-layout" / "index.json").exists()
    image, signature = _signed_image()
    assert json.loads(signature.raw)["subject"]["digest"] == image.digest
