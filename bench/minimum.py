"""The fewest ECR API calls a promotion can make, derived from what each call can and cannot do.

BENCHMARKS.md explains each term; in short:
- BatchGetImage reads one repository per call (<= 100 ids), so the source and the target cost one
  read each; the digests of an index's children are known only after the index is read, so an
  index (or an image with referrers) costs one more source read. The target read asks for the tag,
  the digests and the cosign tags at once: nothing is put that is already there, since each
  PutImage spends the scarce 10/s quota and emits a PUSH event.
- ListImageReferrers is the only way to find OCI 1.1 referrers, and it takes one subject: one call
  for the image and one for each child and each referrer (a platform child's SBOM, a signature on
  an SBOM: trust material the target needs as much as the image's own).
- BatchCheckLayerAvailability: one call per 100 distinct blobs, to move only what is missing.
- GetAccountSetting (may we mount?) and GetAuthorizationToken (the registry password, 12 h) are
  needed once per container, not per promotion.
- A mounted blob costs no API call (a /v2 request). A copied blob costs GetDownloadUrlForLayer
  (its pre-signed URL) and then, through the registry's /v2 upload (POST, then PUT with the body;
  PATCH chunks first above 64 MiB: registry requests, like mounts, under the same IAM actions and,
  inferred, the same quotas), no API call but the registry token (GetAuthorizationToken, once
  per container, as for mounts). Through the JSON layer-upload API (the engine's fall back,
  `layer_api=True`) it costs InitiateLayerUpload, CompleteLayerUpload and one UploadLayerPart per
  started 10 MiB part instead.
- PutImage: one per manifest (children by digest first, then the tagged top manifest).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

MIB = 1024 * 1024
# ECR quotas page: layer parts of 5-10 MiB (all but the last); the local ECR returns 10 MiB as
# InitiateLayerUpload's partSize, and the engine follows it.
PART_BYTES = 10 * MIB
MAX_IDS_PER_CALL = 100
COSIGN_TAGS = 3  # sha256-<hex>.sig, .att, .sbom


@dataclass(frozen=True)
class CopyShape:
    """What a cross-repository copy has to move.

    children: manifests below the top one (platform images and attestations); 0 for one image.
    blobs: distinct config and layer blobs of the whole tree.
    missing_sizes: sizes of the blobs the target repository lacks.
    referrers: OCI 1.1 referrers of the image.
    """

    children: int
    blobs: int
    missing_sizes: tuple[int, ...]
    referrers: int = 0


def minimum_retag() -> dict[str, int]:
    """Same repository: one read answers both "is the tag there already?" and "what are the
    manifest bytes?" (BatchGetImage takes the digest and the tag in one call), then one put."""
    return {"BatchGetImage": 1, "PutImage": 1}


def minimum_copy(
    shape: CopyShape, *, mounting: bool, first_in_container: bool = True, layer_api: bool = False
) -> dict[str, int]:
    """The minimum per ECR operation for a fresh copy (the target has neither tag nor manifests);
    `layer_api`: blobs are copied through the JSON layer-upload API rather than /v2."""
    calls: Counter[str] = Counter()
    below = shape.children + shape.referrers
    manifests = 1 + below
    # Source: the top manifest with its cosign tags, then what it lists (if anything). Target: the
    # tag, every manifest digest and the cosign tags, in as few reads as the 100-id limit allows.
    source_reads = 1 + _ceil_div(below, MAX_IDS_PER_CALL)
    target_reads = _ceil_div(1 + manifests + COSIGN_TAGS, MAX_IDS_PER_CALL)
    calls["BatchGetImage"] = source_reads + target_reads
    calls["ListImageReferrers"] = 1 + below
    calls["BatchCheckLayerAvailability"] = _ceil_div(shape.blobs, MAX_IDS_PER_CALL)
    if first_in_container:
        calls["GetAccountSetting"] = 1
    if shape.missing_sizes:
        if mounting or not layer_api:
            calls["GetAuthorizationToken"] = 1 if first_in_container else 0
        if not mounting:
            calls.update(_copy_calls(shape.missing_sizes, layer_api))
    calls["PutImage"] = manifests
    return {op: n for op, n in calls.items() if n}


def _copy_calls(sizes: Sequence[int], layer_api: bool) -> Counter[str]:
    calls: Counter[str] = Counter()
    for size in sizes:
        calls["GetDownloadUrlForLayer"] += 1
        if not layer_api:
            continue
        calls["InitiateLayerUpload"] += 1
        calls["UploadLayerPart"] += max(1, _ceil_div(size, PART_BYTES))
        calls["CompleteLayerUpload"] += 1
    return calls


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def excess(measured: dict[str, int], minimum: dict[str, int]) -> dict[str, int]:
    """Operations where we call more (positive) or fewer (negative) times than the minimum."""
    ops = set(measured) | set(minimum)
    return {
        op: measured.get(op, 0) - minimum.get(op, 0)
        for op in sorted(ops)
        if measured.get(op, 0) != minimum.get(op, 0)
    }
