"""Real image content for tests: layers, configs, manifests, indexes, signatures, referrers.

Everything is built as exact bytes with its digest, then pushed the way a client pushes to ECR (the
layer-upload API, then PutImage, children before their index) or written as an OCI layout for
`skopeo copy oci:DIR docker://...`.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_aws.manifests import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, sha256_digest

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
COSIGN_SIGNATURE = "application/vnd.dev.cosign.simplesigning.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
UPLOAD_PART_BYTES = 5 * 1024 * 1024  # ECR's minimum part size (all but the last part)


@dataclass(frozen=True)
class Blob:
    """A config or layer: exact bytes and what describes them."""

    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes with the blobs and child manifests it needs to be pushed."""

    raw: bytes
    media_type: str
    blobs: tuple[Blob, ...] = ()
    children: tuple[Manifest, ...] = ()
    extra: tuple[Manifest, ...] = field(default=())  # referrers/signatures pushed alongside (not needed)

    @property
    def digest(self) -> str:
        return sha256_digest(self.raw)

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8")

    def descriptor(self, **more: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **more}


def _dump(doc: dict[str, Any]) -> bytes:
    # Pretty, key order kept: digests are of these bytes, so nothing downstream may re-serialise.
    return json.dumps(doc, indent=3).encode()


def random_layer(size: int, media_type: str = OCI_LAYER) -> Blob:
    """A gzip'd tar holding one file of `size` random bytes (random data: the blob is ~size bytes)."""
    payload = os.urandom(size)
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as tar:
        info = tarfile.TarInfo("data.bin")
        info.size = size
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    return Blob(gzip.compress(tar_buf.getvalue(), compresslevel=1, mtime=0), media_type)


def config_blob(
    layers: list[Blob], architecture: str = "amd64", os_name: str = "linux", media_type: str = OCI_CONFIG
) -> Blob:
    doc = {
        "architecture": architecture,
        "os": os_name,
        "config": {"Env": ["PATH=/usr/bin"], "Labels": {"nonce": base64.b32encode(os.urandom(10)).decode()}},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
    }
    return Blob(_dump(doc), media_type)


def image(
    layer_sizes: tuple[int, ...] = (1024,),
    media_type: str = OCI_MANIFEST,
    architecture: str = "amd64",
    os_name: str = "linux",
    annotations: dict[str, str] | None = None,
    include_media_type: bool = True,
) -> Manifest:
    """A single-platform image (OCI by default, or Docker v2 with `media_type=DOCKER_MANIFEST`)."""
    docker = media_type == DOCKER_MANIFEST
    layers = [random_layer(s, DOCKER_LAYER if docker else OCI_LAYER) for s in layer_sizes]
    config = config_blob(layers, architecture, os_name, DOCKER_CONFIG if docker else OCI_CONFIG)
    doc: dict[str, Any] = {"schemaVersion": 2}
    if include_media_type:
        doc["mediaType"] = media_type
    doc["config"] = config.descriptor()
    doc["layers"] = [layer.descriptor() for layer in layers]
    if annotations:
        doc["annotations"] = annotations
    return Manifest(_dump(doc), media_type, blobs=(config, *layers))


def index(children: list[tuple[Manifest, dict[str, Any] | None]], media_type: str = OCI_INDEX) -> Manifest:
    """An index (or Docker list) of (manifest, platform-or-annotations) pairs."""
    entries = []
    for child, extra in children:
        entries.append(child.descriptor(**(extra or {})))
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    return Manifest(_dump(doc), media_type, children=tuple(c for c, _ in children))


def multi_arch(
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
    layer_size: int = 512,
    attestations: bool = True,
) -> Manifest:
    """What `docker buildx` pushes: one image per platform, attestation manifests (unknown/unknown)."""
    pairs: list[tuple[Manifest, dict[str, Any] | None]] = []
    for platform in platforms:
        os_name, arch = platform.split("/", 1)
        child = image((layer_size,), architecture=arch, os_name=os_name)
        pairs.append((child, {"platform": {"architecture": arch, "os": os_name}}))
    if attestations:
        for child, _ in list(pairs):
            att = _attestation(child)
            pairs.append(
                (
                    att,
                    {
                        "platform": {"architecture": "unknown", "os": "unknown"},
                        "annotations": {
                            "vnd.docker.reference.digest": child.digest,
                            "vnd.docker.reference.type": "attestation-manifest",
                        },
                    },
                )
            )
    return index(pairs)


def _attestation(subject: Manifest) -> Manifest:
    statement = Blob(
        _dump(
            {
                "_type": "https://in-toto.io/Statement/v0.1",
                "subject": [{"name": "_", "digest": {"sha256": subject.digest.split(":", 1)[1]}}],
            }
        ),
        IN_TOTO,
    )
    config = Blob(
        _dump({"architecture": "unknown", "os": "unknown", "rootfs": {"type": "layers", "diff_ids": []}}),
        OCI_CONFIG,
    )
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [
            dict(
                statement.descriptor(),
                annotations={"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
            )
        ],
    }
    return Manifest(_dump(doc), OCI_MANIFEST, blobs=(config, statement))


def cosign_signature(subject: Manifest) -> tuple[Manifest, str]:
    """A cosign-style signature manifest and its tag `sha256-<hex>.sig`."""
    payload = Blob(
        _dump(
            {
                "critical": {
                    "identity": {"docker-reference": "local"},
                    "image": {"docker-manifest-digest": subject.digest},
                    "type": "cosign container image signature",
                },
                "optional": None,
            }
        ),
        COSIGN_SIGNATURE,
    )
    config = Blob(
        _dump({"architecture": "", "os": "", "rootfs": {"type": "layers", "diff_ids": [payload.digest]}}),
        OCI_CONFIG,
    )
    layer = dict(
        payload.descriptor(),
        annotations={"dev.cosignproject.cosign/signature": base64.b64encode(os.urandom(64)).decode()},
    )
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(), "layers": [layer]}
    tag = "sha256-" + subject.digest.split(":", 1)[1] + ".sig"
    return Manifest(_dump(doc), OCI_MANIFEST, blobs=(config, payload)), tag


def referrer(subject: Manifest, artifact_type: str = "application/vnd.example.sbom.v1+json") -> Manifest:
    """An OCI 1.1 artifact manifest pointing at `subject` (listed by ListImageReferrers)."""
    empty = Blob(b"{}", OCI_EMPTY)
    body = Blob(_dump({"sbom": "example", "nonce": base64.b32encode(os.urandom(5)).decode()}), artifact_type)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.descriptor(),
        "layers": [body.descriptor()],
        "subject": subject.descriptor(),
        "annotations": {"org.example.kind": "sbom"},
    }
    return Manifest(_dump(doc), OCI_MANIFEST, blobs=(empty, body))


def variants(base: Manifest, count: int) -> list[Manifest]:
    """`count` manifests that share `base`'s blobs (and `subject`, for a referrer) and differ by one
    annotation: many distinct images for the price of one set of blobs."""
    doc = json.loads(base.raw)
    out = []
    for i in range(count):
        annotations = {**doc.get("annotations", {}), "org.example.variant": str(i)}
        out.append(Manifest(_dump({**doc, "annotations": annotations}), base.media_type, blobs=base.blobs))
    return out


@dataclass(frozen=True)
class Pushed:
    """What a push stored: the digest of the top manifest and of every child, in push order."""

    repository: str
    digest: str
    tag: str | None
    child_digests: tuple[str, ...]


class EcrPusher:
    """Pushes through the ECR API like a careful client: blobs, children, then the tagged manifest."""

    def __init__(self, ecr_client: Any, part_bytes: int = UPLOAD_PART_BYTES) -> None:
        self.ecr = ecr_client
        self.part_bytes = part_bytes

    def push_blob(self, repository: str, blob: Blob) -> None:
        layers = self.ecr.batch_check_layer_availability(
            repositoryName=repository, layerDigests=[blob.digest]
        )["layers"]
        if layers and layers[0].get("layerAvailability") == "AVAILABLE":
            return
        upload_id = self.ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
        for first in range(0, blob.size, self.part_bytes):
            part = blob.data[first : first + self.part_bytes]
            self.ecr.upload_layer_part(
                repositoryName=repository,
                uploadId=upload_id,
                partFirstByte=first,
                partLastByte=first + len(part) - 1,
                layerPartBlob=part,
            )
        with contextlib.suppress(self.ecr.exceptions.LayerAlreadyExistsException):
            self.ecr.complete_layer_upload(
                repositoryName=repository, uploadId=upload_id, layerDigests=[blob.digest]
            )

    def push(self, repository: str, manifest: Manifest, tag: str | None = None) -> Pushed:
        children: list[str] = []
        for child in manifest.children:
            children.append(self.push(repository, child).digest)
        for blob in manifest.blobs:
            self.push_blob(repository, blob)
        kwargs: dict[str, Any] = {
            "repositoryName": repository,
            "imageManifest": manifest.text,
            "imageManifestMediaType": manifest.media_type,
            "imageDigest": manifest.digest,
        }
        if tag:
            kwargs["imageTag"] = tag
        with contextlib.suppress(self.ecr.exceptions.ImageAlreadyExistsException):
            self.ecr.put_image(**kwargs)
        return Pushed(repository, manifest.digest, tag, tuple(children))


def write_oci_layout(directory: Path, manifest: Manifest, tag: str = "latest") -> Path:
    """An OCI image layout holding `manifest` (and its children and blobs) under `tag`."""
    blobs_dir = directory / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def write(digest: str, data: bytes) -> None:
        (blobs_dir / digest.split(":", 1)[1]).write_bytes(data)

    def walk(m: Manifest) -> None:
        for child in m.children:
            walk(child)
        for blob in m.blobs:
            write(blob.digest, blob.data)
        write(m.digest, m.raw)

    walk(manifest)
    top = manifest.descriptor(annotations={"org.opencontainers.image.ref.name": tag})
    (directory / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]})
    )
    return directory


__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Blob",
    "EcrPusher",
    "Manifest",
    "Pushed",
    "config_blob",
    "cosign_signature",
    "image",
    "index",
    "multi_arch",
    "random_layer",
    "referrer",
    "variants",
    "write_oci_layout",
]
