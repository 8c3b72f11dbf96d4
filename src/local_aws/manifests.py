"""What the local ECR needs to know about manifest bytes: media types, digests, references.

Digests are always taken over the exact bytes received; nothing here re-serialises a manifest.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

IMAGE_MEDIA_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_MEDIA_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
SUPPORTED_MEDIA_TYPES = IMAGE_MEDIA_TYPES + INDEX_MEDIA_TYPES

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,299}$")
# botocore's RepositoryName pattern, anchored.
REPOSITORY_RE = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")


class ManifestError(ValueError):
    """The bytes are not a manifest ECR would store (message says why)."""


@dataclass(frozen=True)
class ParsedManifest:
    """The facts about one manifest that ECR keeps beside its bytes."""

    digest: str
    media_type: str
    size: int
    blobs: tuple[str, ...]  # config + layers (image manifests)
    children: tuple[str, ...]  # manifests (indexes)
    config_media_type: str | None
    artifact_type: str | None
    subject: str | None
    layer_sizes: int  # sum of config + layer sizes, what ECR reports as imageSizeInBytes


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_manifest(raw: bytes, given_media_type: str | None) -> ParsedManifest:
    """Validate manifest bytes as PutImage does; raise ManifestError with ECR's reason."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(
            "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'"
        ) from exc
    if not isinstance(doc, dict):
        raise ManifestError(
            "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'"
        )
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestError("Invalid parameter at 'ImageManifest': mediaType must be a string")
    if given_media_type and declared and given_media_type != declared:
        raise ManifestError(
            f"Invalid parameter at 'imageManifestMediaType': '{given_media_type}' does not match the "
            f"manifest's mediaType '{declared}'"
        )
    media_type = declared or given_media_type
    if not media_type:
        # ECR.md: a manifest without a top-level mediaType and no imageManifestMediaType fails.
        raise ManifestError(
            "Invalid parameter at 'ImageManifest' failed to satisfy constraint: "
            "'Invalid JSON syntax' (no mediaType in the manifest and none given)"
        )
    if media_type not in SUPPORTED_MEDIA_TYPES:
        raise ManifestError(
            f"Invalid parameter at 'imageManifestMediaType': unsupported media type '{media_type}'"
        )
    if doc.get("schemaVersion") != 2:
        raise ManifestError("Invalid parameter at 'ImageManifest': schemaVersion must be 2")
    blobs: list[str] = []
    children: list[str] = []
    size_sum = 0
    config_media_type = None
    if media_type in IMAGE_MEDIA_TYPES:
        config = doc.get("config")
        layers = doc.get("layers")
        if not isinstance(config, dict) or not isinstance(layers, list):
            raise ManifestError(
                "Invalid parameter at 'ImageManifest': an image manifest needs 'config' and 'layers'"
            )
        for desc in [config, *layers]:
            digest, size = _descriptor(desc)
            blobs.append(digest)
            size_sum += size
        config_media_type = config.get("mediaType")
    else:
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise ManifestError("Invalid parameter at 'ImageManifest': an index needs 'manifests'")
        for desc in manifests:
            digest, _ = _descriptor(desc)
            children.append(digest)
    subject = doc.get("subject")
    subject_digest = _descriptor(subject)[0] if isinstance(subject, dict) else None
    artifact_type = doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else None
    return ParsedManifest(
        digest=sha256_digest(raw),
        media_type=media_type,
        size=len(raw),
        blobs=tuple(blobs),
        children=tuple(children),
        config_media_type=config_media_type,
        artifact_type=artifact_type,
        subject=subject_digest,
        layer_sizes=size_sum,
    )


def _descriptor(desc: object) -> tuple[str, int]:
    if not isinstance(desc, dict):
        raise ManifestError("Invalid parameter at 'ImageManifest': a descriptor is not an object")
    digest = desc.get("digest")
    size = desc.get("size")
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise ManifestError(f"Invalid parameter at 'ImageManifest': invalid digest {digest!r}")
    if not isinstance(size, int) or size < 0:
        raise ManifestError(f"Invalid parameter at 'ImageManifest': invalid size for {digest}")
    return digest, size


def wildcard_match(pattern: str, value: str) -> bool:
    """ECR exclusion filters: `*` matches any run of characters; everything else is literal."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, value) is not None


# ECR's manifest conversion ("Container image manifest format support", user guide): an image
# pulled BY TAG in a format the client does not accept is converted between Docker v2 schema 2
# and OCI; pulled by digest, never. Lists and indexes are not converted (the guide's table names
# image manifests only), nor is an OCI artifact (an `artifactType`, a `subject` or a config that
# is not an image config), which Docker's format cannot say.
DOCKER_CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
DOCKER_TO_OCI_TYPES = {
    DOCKER_MANIFEST: OCI_MANIFEST,
    DOCKER_CONFIG_MEDIA_TYPE: OCI_CONFIG_MEDIA_TYPE,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    ),
}
OCI_TO_DOCKER_TYPES = {oci: docker for docker, oci in DOCKER_TO_OCI_TYPES.items()}


def convert_manifest(
    raw: bytes, accepted: tuple[str, ...] | list[str], stored_type: str | None = None
) -> tuple[bytes, str] | None:
    """The manifest rewritten in a format of `accepted` (new bytes, so a new digest), or None when
    ECR has no conversion for it. Only the media types change; every descriptor keeps its digest
    and size, so the converted manifest names the same blobs. `stored_type` is the type the image
    was stored with: an OCI manifest need not say its own `mediaType` (image-spec), and converts
    like the rest."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        return None
    source = doc.get("mediaType") or stored_type
    if source == DOCKER_MANIFEST and OCI_MANIFEST in accepted:
        table = DOCKER_TO_OCI_TYPES
    elif source == OCI_MANIFEST and DOCKER_MANIFEST in accepted:
        if "artifactType" in doc or "subject" in doc:
            return None
        table = OCI_TO_DOCKER_TYPES
    else:
        return None
    layers = doc.get("layers") or []
    described = [doc["config"], *layers]
    if not all(isinstance(d, dict) and d.get("mediaType") in table for d in described):
        return None
    converted = dict(doc, mediaType=table[source])
    converted["config"] = dict(doc["config"], mediaType=table[doc["config"]["mediaType"]])
    converted["layers"] = [dict(layer, mediaType=table[layer["mediaType"]]) for layer in layers]
    return json.dumps(converted, indent=3).encode(), table[source]
