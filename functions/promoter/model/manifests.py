"""Image manifests as the registry returns them: exact bytes plus what the copy needs to know.

The body is never re-serialised (the digest is the sha256 of these exact bytes); it is only read
to find the blobs a manifest needs and the child manifests an index lists.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from promoter.exceptions import InvalidManifestError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# Sent in every BatchGetImage: without them ECR may convert the manifest (ECR.md, "Digests").
ACCEPTED_MEDIA_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
INDEX_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
# Layers that the registry does not hold (Windows base layers pulled from their `urls`).
NON_DISTRIBUTABLE_MARKERS = ("foreign", "nondistributable")


@dataclass(frozen=True)
class Blob:
    """A config or layer blob a manifest names."""

    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """One manifest: its digest, media type and body exactly as the registry returned it."""

    digest: str
    media_type: str
    body: str

    @cached_property
    def document(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.body)
        except ValueError as exc:
            raise InvalidManifestError(f"manifest {self.digest} is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise InvalidManifestError(f"manifest {self.digest} is not a JSON object")
        return doc

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES or "manifests" in self.document

    @property
    def body_digest(self) -> str:
        """The digest of the body bytes, to compare with `digest`."""
        return "sha256:" + hashlib.sha256(self.body.encode("utf-8")).hexdigest()

    def children(self) -> tuple[str, ...]:
        """Digests of the manifests an index lists (platform images and attestations), in order."""
        if not self.is_index:
            return ()
        return tuple(_descriptor(d, self.digest).digest for d in self.document.get("manifests") or ())

    def blobs(self) -> tuple[Blob, ...]:
        """Config and layers that must be in a repository before this manifest can be put there."""
        if self.is_index:
            return ()
        doc = self.document
        descriptors = [doc["config"]] if isinstance(doc.get("config"), dict) else []
        descriptors += [d for d in doc.get("layers") or () if isinstance(d, dict)]
        descriptors += [d for d in doc.get("blobs") or () if isinstance(d, dict)]  # ORAS-style artifacts
        return tuple(
            _descriptor(d, self.digest)
            for d in descriptors
            if not any(marker in str(d.get("mediaType", "")) for marker in NON_DISTRIBUTABLE_MARKERS)
        )


def _descriptor(data: Any, owner: str) -> Blob:
    if not isinstance(data, dict) or not isinstance(data.get("digest"), str):
        raise InvalidManifestError(f"manifest {owner} has a descriptor without a digest: {data!r}")
    size = data.get("size")
    return Blob(digest=data["digest"], size=size if isinstance(size, int) else 0)
