"""Large test images written straight to an OCI layout on disk, never held in memory.

`local_aws.images` keeps every blob in memory, fine for kilobytes; a 1 GiB layer is streamed from
`os.urandom` to its file while its digest is computed. Layers are random bytes (the registry stores
blobs as given and nothing here unpacks them), so every byte is distinct and cannot be deduplicated.
The shape of a multi-platform image follows `local_aws.images.multi_arch`: one image per platform
plus one attestation manifest (`unknown/unknown`) per platform, as `docker buildx` pushes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_aws.images import IN_TOTO, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST

WRITE_CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class BlobRef:
    """A blob written to the layout: what a descriptor needs."""

    digest: str
    size: int
    media_type: str

    def descriptor(self, **more: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **more}


@dataclass(frozen=True)
class BuiltImage:
    """A pushed-to-be image: its top digest, how many manifests sit below it, its distinct blobs."""

    layout: Path
    tag: str
    digest: str
    children: int
    blobs: tuple[BlobRef, ...]

    @property
    def blob_bytes(self) -> int:
        return sum(b.size for b in self.blobs)


class LayoutWriter:
    """Writes blobs into `directory/blobs/sha256/` and the layout's index last."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.blobs_dir = directory / "blobs" / "sha256"
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def random_blob(self, size: int, media_type: str = OCI_LAYER) -> BlobRef:
        hasher = hashlib.sha256()
        partial = self.blobs_dir / f"partial-{os.getpid()}"
        with partial.open("wb") as out:
            left = size
            while left:
                chunk = os.urandom(min(left, WRITE_CHUNK_BYTES))
                hasher.update(chunk)
                out.write(chunk)
                left -= len(chunk)
        partial.rename(self.blobs_dir / hasher.hexdigest())
        return BlobRef(f"sha256:{hasher.hexdigest()}", size, media_type)

    def json_blob(self, doc: dict[str, Any], media_type: str) -> BlobRef:
        data = json.dumps(doc, indent=3).encode()
        hex_digest = hashlib.sha256(data).hexdigest()
        (self.blobs_dir / hex_digest).write_bytes(data)
        return BlobRef(f"sha256:{hex_digest}", len(data), media_type)

    def image(self, config: BlobRef, layers: list[BlobRef]) -> BlobRef:
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor() for layer in layers],
        }
        return self.json_blob(doc, OCI_MANIFEST)

    def finish(self, top: BlobRef, tag: str) -> None:
        entry = top.descriptor(annotations={"org.opencontainers.image.ref.name": tag})
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
        (self.directory / "index.json").write_text(json.dumps(index))


def single_image(directory: Path, layer_sizes: tuple[int, ...], tag: str = "build") -> BuiltImage:
    """One platform image with the given layers."""
    writer = LayoutWriter(directory)
    layers = [writer.random_blob(size) for size in layer_sizes]
    config = writer.json_blob(_config("amd64", "linux", layers), OCI_CONFIG)
    top = writer.image(config, layers)
    writer.finish(top, tag)
    return BuiltImage(directory, tag, top.digest, 0, (config, *layers))


def multi_platform_image(
    directory: Path,
    platforms: tuple[str, ...],
    layer_sizes: tuple[int, ...],
    tag: str = "build",
) -> BuiltImage:
    """An OCI index of one image per platform (each with its own `layer_sizes` layers) and one
    attestation manifest per platform."""
    writer = LayoutWriter(directory)
    entries: list[dict[str, Any]] = []
    attestations: list[dict[str, Any]] = []
    blobs: list[BlobRef] = []
    for platform in platforms:
        os_name, arch = platform.split("/", 1)
        layers = [writer.random_blob(size) for size in layer_sizes]
        config = writer.json_blob(_config(arch, os_name, layers), OCI_CONFIG)
        child = writer.image(config, layers)
        blobs += [config, *layers]
        entries.append(child.descriptor(platform={"architecture": arch, "os": os_name}))
        statement = writer.json_blob(
            {
                "_type": "https://in-toto.io/Statement/v0.1",
                "subject": [{"name": "_", "digest": {"sha256": child.digest.split(":", 1)[1]}}],
            },
            IN_TOTO,
        )
        att_config = writer.json_blob(
            {"architecture": "unknown", "os": "unknown", "rootfs": {"type": "layers", "diff_ids": []}},
            OCI_CONFIG,
        )
        blobs += [att_config, statement]
        attestation = writer.image(att_config, [statement])
        attestations.append(
            attestation.descriptor(
                platform={"architecture": "unknown", "os": "unknown"},
                annotations={
                    "vnd.docker.reference.digest": child.digest,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            )
        )
    top = writer.json_blob(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries + attestations}, OCI_INDEX
    )
    writer.finish(top, tag)
    distinct = tuple({b.digest: b for b in blobs}.values())
    return BuiltImage(directory, tag, top.digest, len(entries) + len(attestations), distinct)


def _config(arch: str, os_name: str, layers: list[BlobRef]) -> dict[str, Any]:
    return {
        "architecture": arch,
        "os": os_name,
        "config": {"Labels": {"nonce": os.urandom(8).hex()}},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
    }
