"""The ECR adapter: the only module that calls the `ecr` client (and the registry's /v2 API).

ECR's error codes become our exceptions here, once (`_ECR_ERRORS`). Retrying belongs to botocore
(standard mode, `ECR_MAX_ATTEMPTS`, backoff with jitter); nothing above this module retries a call
again. The engine depends only on the `Registry` protocol, so it can be read without boto3 in mind.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from promoter import settings
from promoter.aws.rate_limit import THROTTLING_CODES, shared_rate
from promoter.exceptions import (
    AccessDeniedError,
    BlobNotFoundError,
    BlobUnreadableError,
    DigestMismatchError,
    ImageNotFoundError,
    InvalidManifestError,
    LayerCopyError,
    PageTokenExpiredError,
    RegistryError,
    RegistryUnavailableError,
    RepositoryNotFoundError,
    TagConflictError,
    TagDigestMismatchError,
)
from promoter.model.config import CreateMissing
from promoter.model.creation_templates import CREATE_ON_PUSH, template_for
from promoter.model.manifests import ACCEPTED_MEDIA_TYPES, OCI_INDEX, Manifest
from promoter.model.patterns import glob_to_regex
from promoter.model.templates import is_digest

logger = logging.getLogger(__name__)

# botocore retries throttling (ThrottlingException, LimitExceededException) and 5xx with
# exponential backoff; PutImage's 10/s quota makes this the common case during bursts.
ECR_RETRY_MODE = "standard"
ECR_MAX_ATTEMPTS = 6
HTTP_TIMEOUT_SECONDS = 60
# API limits from the service model: BatchGetImage and BatchCheckLayerAvailability take <= 100 ids.
MAX_IDS_PER_CALL = 100
MIB = 1024 * 1024
# ECR quotas page: parts of 5-10 MiB except the last; the model caps a part at 20 MiB. We follow the
# partSize InitiateLayerUpload returns, kept inside these bounds.
MIN_PART_BYTES = 5 * MIB
MAX_PART_BYTES = 20 * MIB
READ_CHUNK_BYTES = 1 * MIB
# Copies go up through the registry's OCI upload API with the same basic auth as mounts: raw
# bytes, where the layer-upload API carries base64 inside JSON (~2.4x skopeo's time, BENCHMARKS.md
# figure 2). ECR serves it for the same IAM actions (Initiate/UploadLayerPart/CompleteLayerUpload);
# the 5-20 MiB part limits are the JSON API's, not /v2's. A blob of at most V2_CHUNK_BYTES goes up
# monolithically, POST then one PUT ?digest= carrying the whole body (2 requests); a larger one in
# PATCH chunks of V2_CHUNK_BYTES with its last chunk in the PUT. ECR takes a body on the closing PUT
# (aws/containers-roadmap#2831 shows a final chunk sent that way stored with the right digest;
# mise and tart upload to ECR monolithically with POST + PUT) and wants a PATCH chunk of at least
# 5 MiB but the last (S3 multipart parts; tart#273). 64 MiB is mise's threshold for ECR. Each body
# is streamed READ_CHUNK_BYTES at a time: memory per copy stays ~1 MiB whatever the chunk or layer
# size; chunks only bound how much one request carries (and a failed one loses).
V2_CHUNK_BYTES = 64 * MIB
# 429 (ECR's TOOMANYREQUESTS) and 5xx are worth another try; other answers mean /v2 is not ours
# to use (no endpoint, 401/403/404/405...): the layer-upload API takes over, with a warning.
V2_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
V2_MAX_ATTEMPTS = 3
V2_BACKOFF_SECONDS = 0.5
BLOB_MOUNTING_SETTING = "BLOB_MOUNTING"
MOUNTING_OFF_VALUES = frozenset({"disabled", "off", "false", "0"})
COSIGN_SUFFIXES = (".sig", ".att", ".sbom")
# RFC 8288 as the OCI distribution spec uses it for pages: `Link: </v2/...?...>; rel="next"`.
_LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')

_ECR_ERRORS: dict[str, type[RegistryError]] = {
    "RepositoryNotFoundException": RepositoryNotFoundError,
    "ImageNotFoundException": ImageNotFoundError,
    "ImageTagAlreadyExistsException": TagConflictError,
    "ImageDigestDoesNotMatchException": DigestMismatchError,
    "LayersNotFoundException": InvalidManifestError,
    "ReferencedImagesNotFoundException": InvalidManifestError,
    "InvalidParameterException": InvalidManifestError,
    "UnsupportedImageTypeException": InvalidManifestError,
    "InvalidLayerException": LayerCopyError,
    "InvalidLayerPartException": LayerCopyError,
    "LayerPartTooSmallException": LayerCopyError,
    "EmptyUploadException": LayerCopyError,
    "UploadNotFoundException": LayerCopyError,
    "LayerInaccessibleException": BlobNotFoundError,
    "ThrottlingException": RegistryUnavailableError,
    "LimitExceededException": RegistryUnavailableError,
    "ServerException": RegistryUnavailableError,
    "KmsException": RegistryUnavailableError,
    "ServiceUnavailableException": RegistryUnavailableError,
    "InternalFailure": RegistryUnavailableError,
    "AccessDeniedException": AccessDeniedError,
}
# BatchGetImage reports per-image failures in the response instead of raising.
_RETRYABLE_IMAGE_FAILURES = frozenset({"KmsError", "UpstreamUnavailable", "UpstreamTagNotFound"})


# ListImageReferrers answers 20 referrers a page unless maxResults asks for up to 50 (service model).
LIST_REFERRERS_PAGE_SIZE = 50
# Without a filter ListImageReferrers lists ACTIVE referrers only (service model, ListImageReferrersFilter):
# a signature or SBOM a lifecycle rule archived would vanish from a promotion unannounced. ANY lists
# every status, each referrer with its `artifactStatus`.
REFERRER_STATUS_ANY = "ANY"
# GetAuthorizationToken's token lives 12 hours (`expiresAt`); a cached one is fetched again this long
# before it expires, so no request of a long-lived container goes out with a token about to lapse.
AUTH_TOKEN_REFRESH_SECONDS = 5 * 60
# When an answer carries no `expiresAt` (ECR always sends it), the lifetime ECR documents.
AUTH_TOKEN_LIFETIME_SECONDS = 12 * 3600
# The registry's repository creation templates are read once (DescribeRepositoryCreationTemplates,
# every page) and kept this long: a run asks at most once whatever the number of missing targets,
# and a registry object that outlives a run (remote targets: one per process) sees a new template
# within minutes.
CREATION_TEMPLATES_CACHE_SECONDS = 5 * 60
# ECR's image statuses (ImageStatus): an ARCHIVED image cannot be pulled until a restore
# (ACTIVATING, up to 20 minutes) makes it ACTIVE again.
IMAGE_ACTIVE = "ACTIVE"
IMAGE_ARCHIVED = "ARCHIVED"
IMAGE_ACTIVATING = "ACTIVATING"


class Registry(Protocol):
    """What the promotion engine needs from a registry."""

    def get_manifests(self, repository: str, references: Sequence[str]) -> dict[str, Manifest]:
        """Manifests by tag or digest; references that do not exist are absent from the result."""
        ...

    def list_referrers(self, repository: str, digest: str) -> tuple[str, ...]:
        """Digests of the OCI 1.1 referrers of an image, of every status (archived ones included)."""
        ...

    def referrer_statuses(self, repository: str, digest: str) -> dict[str, str]:
        """The OCI 1.1 referrers of an image, of every status: digest -> ACTIVE, ARCHIVED or
        ACTIVATING, in the order listed. Raises what listing raises (AccessDeniedError, ...)."""
        ...

    def referrer_annotations(
        self, repository: str, digest: str, artifact_type: str | None = None
    ) -> dict[str, dict[str, str]]:
        """The OCI 1.1 referrers of an image of one artifact type (None: of every type), of every
        status, with the annotations their descriptors carry: digest -> annotations, in the order
        listed (one listing, every page)."""
        ...

    def upload_blob(self, repository: str, data: bytes) -> str:
        """Uploads a small blob made here (an attestation's bundle, the empty config); its digest."""
        ...

    def registry_host(self) -> str:
        """The registry's host as images are named (`<account>.dkr.ecr.<region>.amazonaws.com`)."""
        ...

    def describe_repository(self, repository: str) -> RepositoryInfo:
        """One repository's tag mutability and exclusion filters (DescribeRepositories)."""
        ...

    def missing_blobs(self, repository: str, digests: Sequence[str]) -> set[str]:
        """The blobs among `digests` that are not available in `repository`."""
        ...

    def blob_mounting_enabled(self) -> bool:
        """Whether the account lets the registry mount blobs across repositories."""
        ...

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Mounts a blob from another repository; False when the registry would not."""
        ...

    def copy_blob(
        self, from_repository: str, repository: str, digest: str, from_registry: Registry | None = None
    ) -> int:
        """Streams a blob from one repository (of `from_registry`, default this one) into another;
        returns the bytes copied."""
        ...

    def layer_download_url(self, repository: str, digest: str) -> str:
        """A URL to download a blob that an image in `repository` references."""
        ...

    def read_blob(self, repository: str, digest: str, max_bytes: int) -> bytes:
        """The bytes of a small blob an image in `repository` references (a signature payload, a
        Sigstore bundle, a Notation envelope), checked against `digest`; refused past `max_bytes`."""
        ...

    def put_manifest(self, repository: str, manifest: Manifest, tag: str | None) -> bool:
        """Puts a manifest (with a tag, or by digest alone); False when it was already there."""
        ...

    def tags_of(self, repository: str, digest: str) -> tuple[str, ...]:
        """The tags an image carries in a repository (empty when the image is not there)."""
        ...

    def image_tags(self, repository: str, digest: str) -> tuple[str, ...] | None:
        """The tags an image carries in a repository; None when the image is not there."""
        ...

    def get_tagged(self, repository: str, tag: str, digest: str) -> Manifest:
        """The image `digest` if `tag` points at it now (one read binds the two); raises
        TagDigestMismatchError when the tag points elsewhere, ImageNotFoundError when either is absent."""
        ...

    def pushed_times(self, repository: str, digests: Sequence[str]) -> dict[str, float]:
        """When each image was pushed to `repository` (epoch seconds); absent ones are left out."""
        ...

    def scan_findings(self, repository: str, digest: str) -> ScanReport:
        """The state of an image's vulnerability scan and its finding counts by severity."""
        ...

    def creation_template_for(self, repository: str) -> str | None:
        """The prefix of the repository creation template applied for CREATE_ON_PUSH that ECR would
        create the missing `repository` with on the first push into it; None when none covers it.
        Raises what DescribeRepositoryCreationTemplates raises (AccessDeniedError, ...)."""
        ...

    def create_repository(self, repository: str, settings: CreateMissing) -> bool:
        """Creates a repository with these settings (CreateRepository: no creation template
        applies); False when it exists already. Raises AccessDeniedError, RegistryError, ..."""
        ...

    def image_status(self, repository: str, digest: str) -> str | None:
        """ECR's status of an image: ACTIVE, ARCHIVED (archive storage class: not pullable) or
        ACTIVATING (being restored); None when the repository does not hold it."""
        ...

    def restore_image(self, repository: str, digest: str) -> str:
        """Asks ECR to restore an archived image to the standard storage class; its status after."""
        ...


@dataclass(frozen=True)
class ScanReport:
    """An image's scan: `status` as ECR spells it (COMPLETE, ACTIVE, PENDING, IN_PROGRESS,
    FAILED, ..., or NOT_FOUND when no scan exists) and finding counts by severity."""

    status: str
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        # Basic scans end in COMPLETE; enhanced (Inspector) scans report ACTIVE once findings exist.
        return self.status in SCAN_DONE_STATUSES


SCAN_DONE_STATUSES = frozenset({"COMPLETE", "ACTIVE"})
SCAN_NOT_FOUND = "NOT_FOUND"


@dataclass(frozen=True)
class RepositoryInfo:
    """A repository's name and tag mutability (ECR's four modes, WILDCARD exclusion filters)."""

    name: str
    tag_mutability: str = "MUTABLE"
    exclusion_filters: tuple[str, ...] = ()

    def tag_is_immutable(self, tag: str) -> bool:
        """Whether PutImage would refuse to move `tag` (ECR.md, ImageTagAlreadyExistsException)."""
        excluded = any(re.fullmatch(glob_to_regex(f), tag) for f in self.exclusion_filters)
        if self.tag_mutability == "IMMUTABLE":
            return True
        if self.tag_mutability == "IMMUTABLE_WITH_EXCLUSION":
            return not excluded
        if self.tag_mutability == "MUTABLE_WITH_EXCLUSION":
            return excluded
        return False


@dataclass(frozen=True)
class ListedImage:
    """A tag in a listed repository, the digest it holds and when that image was pushed."""

    tag: str
    digest: str
    pushed_at: float  # epoch seconds; 0.0 when ECR did not say


@dataclass(frozen=True)
class ImagePage:
    """One page of listed images and the token of the next page (None: the last)."""

    images: tuple[ListedImage, ...]
    next_token: str | None


def _epoch(value: Any) -> float:
    """boto3 parses ECR timestamps into datetimes; raw clients may hand over numbers."""
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value) if isinstance(value, int | float) else 0.0


def _repository_info(data: dict[str, Any]) -> RepositoryInfo:
    return RepositoryInfo(
        name=data["repositoryName"],
        tag_mutability=data.get("imageTagMutability") or "MUTABLE",
        exclusion_filters=tuple(
            f["filter"] for f in data.get("imageTagMutabilityExclusionFilters") or () if f.get("filter")
        ),
    )


def make_ecr_client(
    session: boto3.session.Session | None = None,
    *,
    region_name: str | None = None,
    registry_id: str | None = None,
) -> Any:
    """An ECR client with the retry policy above (endpoint from AWS_ENDPOINT_URL if set).

    `registry_id` aims every call that takes a `registryId` at that account's registry (a target
    in another account, written through its repository policy or an assumed role there)."""
    # `total_max_attempts` counts the first call too (botocore's `max_attempts` counts only retries).
    config = Config(retries={"mode": ECR_RETRY_MODE, "total_max_attempts": ECR_MAX_ATTEMPTS})
    client = (session or boto3.session.Session()).client("ecr", config=config, region_name=region_name)
    if registry_id is not None:

        def add_registry_id(params: dict[str, Any], model: Any, **_: Any) -> None:
            if "registryId" in model.input_shape.members:
                params.setdefault("registryId", registry_id)
            elif "registryIds" in model.input_shape.members:
                # GetAuthorizationToken: that registry's proxyEndpoint, where its /v2 uploads go.
                params.setdefault("registryIds", [registry_id])

        client.meta.events.register("provide-client-params.ecr.*", add_registry_id)
    return client


def pace_put_image(client: Any) -> None:
    """Every PutImage attempt of `client` (botocore's retries included) waits for a send slot of
    its registry's shared `AdaptiveRate`, and every answer adapts that rate: admitted calls raise
    it, ThrottlingException cuts it (`rate_limit.py`). Idempotent per client (unique handler ids),
    so every `EcrRegistry` may call it on the container's one client."""
    region = client.meta.region_name or ""

    def registry_of(body: Any) -> str:
        try:
            return str(json.loads(body or b"{}").get("registryId", ""))
        except (ValueError, AttributeError):
            return ""

    def before_send(request: Any, **_: Any) -> None:
        shared_rate(region, registry_of(request.body)).acquire()

    def after_attempt(response: Any = None, request_dict: Any = None, **_: Any) -> None:
        if response is None:  # no answer (connection error): says nothing about the quota
            return
        http, parsed = response
        rate = shared_rate(region, registry_of((request_dict or {}).get("body")))
        if parsed.get("Error", {}).get("Code") in THROTTLING_CODES:
            rate.on_throttled()
        elif http.status_code < 300:
            rate.on_admitted()

    events = client.meta.events
    events.register("before-send.ecr.PutImage", before_send, unique_id="promoter-put-image-pace")
    events.register("needs-retry.ecr.PutImage", after_attempt, unique_id="promoter-put-image-adapt")


def cosign_tags(digest: str) -> tuple[str, ...]:
    """The tags where cosign keeps signatures, attestations and SBOMs of an image."""
    algorithm, _, hex_digest = digest.partition(":")
    return tuple(f"{algorithm}-{hex_digest}{suffix}" for suffix in COSIGN_SUFFIXES)


def _raise_if_retryable(repository: str, failure: dict[str, Any]) -> None:
    """Raises RegistryUnavailableError for a BatchGetImage failure worth retrying (KMS, a
    pull-through upstream), which the caller must not read as "no such image"."""
    code = failure.get("failureCode")
    if code in _RETRYABLE_IMAGE_FAILURES:
        raise RegistryUnavailableError(
            f"BatchGetImage on {repository}: {code}: {failure.get('failureReason')}"
        )


def _manifest_of(image: dict[str, Any]) -> Manifest:
    """A BatchGetImage image as our Manifest: its bytes exactly as ECR returned them."""
    body = image["imageManifest"]
    media_type = image.get("imageManifestMediaType") or _media_type_of(body)
    return Manifest(digest=image["imageId"]["imageDigest"], media_type=media_type, body=body)


@contextmanager
def _ecr_errors(
    operation: str, subject: str, overrides: dict[str, type[RegistryError]] | None = None
) -> Iterator[None]:
    """Turns boto3 errors into ours; `subject` names what the call was about, for the message;
    `overrides` maps codes whose meaning depends on the operation."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        error = (overrides or {}).get(code) or _ECR_ERRORS.get(code, RegistryError)
        raise error(f"{operation} on {subject}: {code}: {message}") from exc
    except BotoCoreError as exc:  # connection failures, timeouts after botocore's own retries
        raise RegistryUnavailableError(f"{operation} on {subject}: {exc}") from exc


class EcrRegistry:
    """`Registry` on the ECR API. `opener` fetches URLs (download URLs, /v2 mounts)."""

    def __init__(
        self,
        client: Any,
        opener: Callable[..., Any] = urllib.request.urlopen,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ecr = client
        pace_put_image(client)
        self._open = opener
        self._clock = clock  # epoch seconds: when the cached registry token must be fetched again
        self._mounting: bool | None = None
        self._auth: tuple[str, str] | None = None
        self._auth_expires = 0.0  # epoch seconds: the cached token's `expiresAt`
        self._auth_lock = threading.Lock()  # blob workers share one token
        self._templates: dict[str, dict[str, Any]] | None = None  # by prefix
        self._templates_read_at = 0.0
        self._templates_lock = threading.Lock()

    # --- manifests -------------------------------------------------------------------------

    def get_manifests(self, repository: str, references: Sequence[str]) -> dict[str, Manifest]:
        found: dict[str, Manifest] = {}
        unique = list(dict.fromkeys(references))
        for start in range(0, len(unique), MAX_IDS_PER_CALL):
            found.update(self._batch_get(repository, unique[start : start + MAX_IDS_PER_CALL]))
        return found

    def _batch_get(self, repository: str, references: list[str]) -> dict[str, Manifest]:
        ids = [{"imageDigest": r} if is_digest(r) else {"imageTag": r} for r in references]
        with _ecr_errors("BatchGetImage", repository):
            response = self._ecr.batch_get_image(
                repositoryName=repository, imageIds=ids, acceptedMediaTypes=list(ACCEPTED_MEDIA_TYPES)
            )
        for failure in response.get("failures") or ():
            _raise_if_retryable(repository, failure)
        by_digest: dict[str, Manifest] = {}
        by_tag: dict[str, Manifest] = {}
        for image in response.get("images") or ():
            image_id = image.get("imageId") or {}
            manifest = _manifest_of(image)
            by_digest[manifest.digest] = manifest
            if image_id.get("imageTag"):
                by_tag[image_id["imageTag"]] = manifest
        return {
            ref: manifest
            for ref in references
            if (manifest := by_digest.get(ref) if is_digest(ref) else by_tag.get(ref)) is not None
        }

    def list_referrers(self, repository: str, digest: str) -> tuple[str, ...]:
        return tuple(self.referrer_statuses(repository, digest))

    def referrer_statuses(self, repository: str, digest: str) -> dict[str, str]:
        if not hasattr(self._ecr, "list_image_referrers"):
            # The Lambda runtime's botocore is AWS's choice and lags PyPI: ListImageReferrers first
            # appears in botocore 1.41.0, older clients have no such method (AttributeError). The
            # registry's OCI referrers API answers the same question with the same credentials; it
            # says nothing of storage classes (an archived referrer it lists is found archived when
            # it is read: workflows.promote).
            return dict.fromkeys(self._referrers_from_registry(repository, digest), IMAGE_ACTIVE)
        statuses: dict[str, str] = {}
        kwargs: dict[str, Any] = {
            "repositoryName": repository,
            "subjectId": {"imageDigest": digest},
            "filter": {"artifactStatus": REFERRER_STATUS_ANY},
            "maxResults": LIST_REFERRERS_PAGE_SIZE,
        }
        while True:
            with _ecr_errors("ListImageReferrers", repository):
                response = self._ecr.list_image_referrers(**kwargs)
            for referrer in response.get("referrers") or ():
                statuses[referrer["digest"]] = referrer.get("artifactStatus") or IMAGE_ACTIVE
            if not response.get("nextToken"):
                return statuses
            kwargs["nextToken"] = response["nextToken"]

    def referrer_annotations(
        self, repository: str, digest: str, artifact_type: str | None = None
    ) -> dict[str, dict[str, str]]:
        if not hasattr(self._ecr, "list_image_referrers"):  # an older runtime botocore: see above
            return {
                d["digest"]: _string_map(d.get("annotations"))
                for d in self._referrer_descriptors_from_registry(repository, digest, artifact_type)
            }
        found: dict[str, dict[str, str]] = {}
        listing: dict[str, Any] = {"artifactStatus": REFERRER_STATUS_ANY}
        if artifact_type is not None:
            listing["artifactTypes"] = [artifact_type]
        kwargs: dict[str, Any] = {
            "repositoryName": repository,
            "subjectId": {"imageDigest": digest},
            "filter": listing,
            "maxResults": LIST_REFERRERS_PAGE_SIZE,
        }
        while True:
            with _ecr_errors("ListImageReferrers", repository):
                response = self._ecr.list_image_referrers(**kwargs)
            for referrer in response.get("referrers") or ():
                found[referrer["digest"]] = _string_map(referrer.get("annotations"))
            if not response.get("nextToken"):
                return found
            kwargs["nextToken"] = response["nextToken"]

    def _referrers_from_registry(self, repository: str, digest: str) -> tuple[str, ...]:
        return tuple(d["digest"] for d in self._referrer_descriptors_from_registry(repository, digest))

    def _referrer_descriptors_from_registry(
        self, repository: str, digest: str, artifact_type: str | None = None
    ) -> list[dict[str, Any]]:
        """`GET /v2/<repository>/referrers/<digest>` (OCI 1.1: an image index of descriptors, of
        `artifact_type` only when given), following `Link: <...>; rel="next"` pages. Raises
        RegistryUnavailableError (429, 5xx, no connection), AccessDeniedError (401/403),
        RegistryError (any other answer)."""
        endpoint, token = self._authorization()
        if not endpoint:
            raise RegistryError(f"referrers of {repository}@{digest}: GetAuthorizationToken gave no endpoint")
        url: str | None = f"{endpoint}/v2/{repository}/referrers/{digest}"
        if artifact_type:
            url += "?" + urllib.parse.urlencode({"artifactType": artifact_type})
        headers = {"Authorization": f"Basic {token}", "Accept": OCI_INDEX}
        digests: list[dict[str, Any]] = []
        while url:
            request = urllib.request.Request(url, method="GET", headers=headers)
            try:
                with self._open(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                    index = json.loads(response.read() or b"{}")
                    link = response.headers.get("Link") or ""
            except urllib.error.HTTPError as exc:
                detail = f"referrers of {repository}@{digest}: HTTP {exc.code}: {_registry_error(exc)}"
                if exc.code in V2_RETRYABLE_STATUSES:
                    raise RegistryUnavailableError(detail) from exc
                raise (AccessDeniedError if exc.code in (401, 403) else RegistryError)(detail) from exc
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                raise RegistryUnavailableError(f"referrers of {repository}@{digest}: {exc!r}") from exc
            except ValueError as exc:
                raise RegistryError(f"referrers of {repository}@{digest}: not an image index") from exc
            descriptors = index.get("manifests") if isinstance(index, dict) else None
            if not isinstance(descriptors, list):
                raise RegistryError(f"referrers of {repository}@{digest}: not an image index")
            digests += [d for d in descriptors if isinstance(d, dict) and isinstance(d.get("digest"), str)]
            following = _LINK_NEXT_RE.search(link)
            url = _absolute(endpoint, following[1]) if following else None
        return digests

    def put_manifest(self, repository: str, manifest: Manifest, tag: str | None) -> bool:
        params: dict[str, Any] = {
            "repositoryName": repository,
            "imageManifest": manifest.body,
            "imageManifestMediaType": manifest.media_type,
            "imageDigest": manifest.digest,
        }
        if tag:
            params["imageTag"] = tag
        subject = f"{repository}:{tag}" if tag else f"{repository}@{manifest.digest}"
        try:
            with _ecr_errors("PutImage", subject):
                self._ecr.put_image(**params)
        except RegistryError as exc:
            # Same manifest, same tag (or untagged and present): the work is already done.
            if _error_code(exc) == "ImageAlreadyExistsException":
                return False
            raise
        return True

    def tags_of(self, repository: str, digest: str) -> tuple[str, ...]:
        return self.image_tags(repository, digest) or ()

    def _image_details(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        """DescribeImages for one digest: its imageDetails, None when the image is not in the
        repository. Raises RegistryError (and subclasses) for any other failure."""
        try:
            with _ecr_errors("DescribeImages", f"{repository}@{digest}"):
                response = self._ecr.describe_images(
                    repositoryName=repository, imageIds=[{"imageDigest": digest}]
                )
        except ImageNotFoundError:
            return None
        return list(response.get("imageDetails") or ())

    def image_tags(self, repository: str, digest: str) -> tuple[str, ...] | None:
        details = self._image_details(repository, digest)
        if details is None:
            return None
        return tuple(t for d in details for t in d.get("imageTags") or ())

    def image_status(self, repository: str, digest: str) -> str | None:
        details = self._image_details(repository, digest)
        # A botocore older than the archive storage class drops `imageStatus`: ACTIVE is all it knew.
        return (details[0].get("imageStatus") or IMAGE_ACTIVE) if details else None

    def creation_template_for(self, repository: str) -> str | None:
        template = template_for(self._creation_templates(), repository, CREATE_ON_PUSH)
        return str(template["prefix"]) if template else None

    def create_repository(self, repository: str, settings: CreateMissing) -> bool:
        encryption: dict[str, str] = {"encryptionType": settings.encryption_type}
        if settings.kms_key:
            encryption["kmsKey"] = settings.kms_key
        params: dict[str, Any] = {
            "repositoryName": repository,
            "imageTagMutability": settings.image_tag_mutability,
            "imageScanningConfiguration": {"scanOnPush": settings.scan_on_push},
            "encryptionConfiguration": encryption,
        }
        if settings.tags:
            params["tags"] = [{"Key": k, "Value": v} for k, v in settings.tags]
        try:
            with _ecr_errors("CreateRepository", repository):
                self._ecr.create_repository(**params)
        except RegistryError as exc:
            if _error_code(exc) == "RepositoryAlreadyExistsException":  # created meanwhile
                return False
            raise
        return True

    def _creation_templates(self) -> dict[str, dict[str, Any]]:
        """The registry's templates by prefix, read once per CREATION_TEMPLATES_CACHE_SECONDS.
        Raises RegistryError (not retryable) when this runtime's botocore predates the operation."""
        with self._templates_lock:
            now = self._clock()
            fresh = now < self._templates_read_at + CREATION_TEMPLATES_CACHE_SECONDS
            if self._templates is not None and fresh:
                return self._templates
            describe = getattr(self._ecr, "describe_repository_creation_templates", None)
            if describe is None:
                raise RegistryError("this runtime's botocore has no DescribeRepositoryCreationTemplates")
            found: dict[str, dict[str, Any]] = {}
            kwargs: dict[str, Any] = {}
            while True:
                with _ecr_errors("DescribeRepositoryCreationTemplates", "registry"):
                    response = describe(**kwargs)
                found.update({t["prefix"]: t for t in response.get("repositoryCreationTemplates") or ()})
                if not response.get("nextToken"):
                    break
                kwargs["nextToken"] = response["nextToken"]
            self._templates, self._templates_read_at = found, now
            return found

    def restore_image(self, repository: str, digest: str) -> str:
        """Raises RegistryError (not retryable) when this runtime's botocore predates
        UpdateImageStorageClass; a restore already under way answers ACTIVATING."""
        update = getattr(self._ecr, "update_image_storage_class", None)
        if update is None:
            raise RegistryError(
                f"cannot restore {repository}@{digest}: "
                "this runtime's botocore has no UpdateImageStorageClass"
            )
        try:
            with _ecr_errors("UpdateImageStorageClass", f"{repository}@{digest}"):
                response = update(
                    repositoryName=repository, imageId={"imageDigest": digest}, targetStorageClass="STANDARD"
                )
        except RegistryError as exc:
            if _error_code(exc) == "ImageStorageClassUpdateNotSupportedException":
                return self.image_status(repository, digest) or IMAGE_ACTIVATING
            raise
        return str(response.get("imageStatus") or IMAGE_ACTIVATING)

    def get_tagged(self, repository: str, tag: str, digest: str) -> Manifest:
        # One imageId with both: ECR answers failure code ImageTagDoesNotMatchDigest when the tag
        # points elsewhere (botocore model, ImageFailureCode; ECR.md "More facts").
        with _ecr_errors("BatchGetImage", f"{repository}:{tag}@{digest}"):
            response = self._ecr.batch_get_image(
                repositoryName=repository,
                imageIds=[{"imageTag": tag, "imageDigest": digest}],
                acceptedMediaTypes=list(ACCEPTED_MEDIA_TYPES),
            )
        for failure in response.get("failures") or ():
            _raise_if_retryable(repository, failure)
            if failure.get("failureCode") == "ImageTagDoesNotMatchDigest":
                raise TagDigestMismatchError(f"tag {repository}:{tag} does not point at {digest}")
        for image in response.get("images") or ():
            return _manifest_of(image)
        raise ImageNotFoundError(f"{repository}:{tag}@{digest} does not exist")

    def pushed_times(self, repository: str, digests: Sequence[str]) -> dict[str, float]:
        # DescribeImages with imageIds fails as a whole (ImageNotFoundException) when one image is
        # missing: one call when all are there (the usual case), then one per image.
        wanted = list(dict.fromkeys(digests))
        try:
            with _ecr_errors("DescribeImages", repository):
                response = self._ecr.describe_images(
                    repositoryName=repository, imageIds=[{"imageDigest": d} for d in wanted]
                )
        except ImageNotFoundError:
            if len(wanted) == 1:
                return {}
            found: dict[str, float] = {}
            for digest in wanted:
                found.update(self.pushed_times(repository, [digest]))
            return found
        return {d["imageDigest"]: _epoch(d.get("imagePushedAt")) for d in response.get("imageDetails") or ()}

    def scan_findings(self, repository: str, digest: str) -> ScanReport:
        # Only the summary counts are needed: one page (maxResults=1) carries them in full.
        try:
            with _ecr_errors("DescribeImageScanFindings", f"{repository}@{digest}"):
                response = self._ecr.describe_image_scan_findings(
                    repositoryName=repository, imageId={"imageDigest": digest}, maxResults=1
                )
        except RegistryError as exc:
            if _error_code(exc) == "ScanNotFoundException":
                return ScanReport(SCAN_NOT_FOUND)
            raise
        status = (response.get("imageScanStatus") or {}).get("status") or SCAN_NOT_FOUND
        counts = (response.get("imageScanFindings") or {}).get("findingSeverityCounts") or {}
        return ScanReport(status, {str(k): int(v) for k, v in counts.items()})

    # --- blobs ---------------------------------------------------------------------------

    def missing_blobs(self, repository: str, digests: Sequence[str]) -> set[str]:
        missing: set[str] = set()
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), MAX_IDS_PER_CALL):
            chunk = unique[start : start + MAX_IDS_PER_CALL]
            with _ecr_errors("BatchCheckLayerAvailability", repository):
                response = self._ecr.batch_check_layer_availability(
                    repositoryName=repository, layerDigests=chunk
                )
            available = {
                layer["layerDigest"]
                for layer in response.get("layers") or ()
                if layer.get("layerAvailability") == "AVAILABLE"
            }
            missing.update(d for d in chunk if d not in available)
        return missing

    def upload_blob(self, repository: str, data: bytes) -> str:
        """The layer-upload API in one part (a blob made here is small: an attestation's bundle is
        a few KB): InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload; a blob the
        repository holds already (LayerAlreadyExistsException) is no failure."""
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        with _ecr_errors("InitiateLayerUpload", repository):
            upload_id = self._ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
        with _ecr_errors("UploadLayerPart", repository):
            self._ecr.upload_layer_part(
                repositoryName=repository,
                uploadId=upload_id,
                partFirstByte=0,
                partLastByte=len(data) - 1,
                layerPartBlob=data,
            )
        try:
            with _ecr_errors("CompleteLayerUpload", repository):
                self._ecr.complete_layer_upload(
                    repositoryName=repository, uploadId=upload_id, layerDigests=[digest]
                )
        except RegistryError as exc:
            if _error_code(exc) != "LayerAlreadyExistsException":
                raise
        return digest

    def registry_host(self) -> str:
        """The host of GetAuthorizationToken's proxyEndpoint (cached with the token, which /v2
        copies use too): `<account>.dkr.ecr.<region>.amazonaws.com` on AWS."""
        endpoint, _ = self._authorization()
        return urllib.parse.urlsplit(endpoint).netloc or endpoint

    def blob_mounting_enabled(self) -> bool:
        if os.environ.get(settings.BLOB_MOUNTING_ENV, "").strip().lower() in MOUNTING_OFF_VALUES:
            return False  # the operator's kill switch, e.g. while encryption settings differ
        if self._mounting is None:
            try:
                with _ecr_errors("GetAccountSetting", BLOB_MOUNTING_SETTING):
                    value = self._ecr.get_account_setting(name=BLOB_MOUNTING_SETTING).get("value")
            except (RegistryError, ClientError) as exc:
                # Regions or roles without the setting simply copy.
                logger.warning("blob mounting unknown, copying instead: %s", exc)
                value = None
            self._mounting = value == "ENABLED"
        return self._mounting

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        endpoint, token = self._authorization()
        if not endpoint:
            return False
        query = urllib.parse.urlencode({"mount": digest, "from": from_repository})
        request = urllib.request.Request(
            f"{endpoint}/v2/{repository}/blobs/uploads/?{query}",
            method="POST",
            headers={"Authorization": f"Basic {token}", "Content-Length": "0"},
            data=b"",
        )
        try:
            with self._open(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                status = response.status
                location = response.headers.get("Location")
        except urllib.error.HTTPError as exc:  # 429 and friends: the API copy still works
            logger.warning("mount of %s into %s refused (%s); copying instead", digest, repository, exc.code)
            return False
        except (urllib.error.URLError, OSError) as exc:
            logger.warning("mount of %s into %s failed (%s); copying instead", digest, repository, exc)
            return False
        if status == 201:
            return True
        # 202: the registry would not mount (other encryption, blob not referenced by a manifest in
        # the source) and opened an ordinary upload instead; abandon it and copy through the API.
        if location:
            self._cancel_upload(endpoint, token, location)
        return False

    def _cancel_upload(self, endpoint: str, token: str, location: str) -> None:
        url = location if location.startswith("http") else f"{endpoint}{location}"
        request = urllib.request.Request(url, method="DELETE", headers={"Authorization": f"Basic {token}"})
        try:
            with self._open(request, timeout=HTTP_TIMEOUT_SECONDS):
                pass
        except (urllib.error.URLError, OSError):
            pass  # an abandoned upload session expires on its own

    def _authorization(self) -> tuple[str, str]:
        """The registry endpoint and basic-auth token (`AWS:<password>`, base64), cached until
        AUTH_TOKEN_REFRESH_SECONDS before its `expiresAt` (12 hours after it was issued): a
        container that lives longer fetches a new one rather than fall back to the layer API."""
        with self._auth_lock:
            now = self._clock()
            if self._auth is None or now >= self._auth_expires - AUTH_TOKEN_REFRESH_SECONDS:
                with _ecr_errors("GetAuthorizationToken", "registry"):
                    data = self._ecr.get_authorization_token()["authorizationData"][0]
                self._auth = ((data.get("proxyEndpoint") or "").rstrip("/"), data["authorizationToken"])
                self._auth_expires = _epoch(data.get("expiresAt")) or now + AUTH_TOKEN_LIFETIME_SECONDS
            return self._auth

    def layer_download_url(self, repository: str, digest: str) -> str:
        # Here LayersNotFoundException means the source lacks the blob: a broken source image.
        source_lacks_it = {"LayersNotFoundException": BlobNotFoundError}
        with _ecr_errors("GetDownloadUrlForLayer", f"{repository}@{digest}", source_lacks_it):
            return self._ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=digest)[
                "downloadUrl"
            ]

    def read_blob(self, repository: str, digest: str, max_bytes: int) -> bytes:
        """GetDownloadUrlForLayer, then a GET of that pre-signed URL with no credentials of ours
        (the URL carries its own signature; S3 refuses a request that also has an Authorization
        header), redirects followed. Raises BlobNotFoundError (not in the repository),
        BlobUnreadableError (more than `max_bytes`, another digest), RegistryUnavailableError
        (throttled, a service fault, the download failed: worth another try)."""
        url = self.layer_download_url(repository, digest)
        try:
            with self._open(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
                length = _content_length(response)
                if length is not None and length > max_bytes:
                    raise BlobUnreadableError(
                        f"blob {repository}@{digest} is {length} bytes (limit {max_bytes})"
                    )
                data = response.read(max_bytes + 1)
        except urllib.error.HTTPError as exc:
            detail = f"download of {repository}@{digest}: HTTP {exc.code}"
            if exc.code in V2_RETRYABLE_STATUSES:
                raise RegistryUnavailableError(detail) from exc
            raise BlobNotFoundError(detail) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise RegistryUnavailableError(f"download of {repository}@{digest}: {exc!r}") from exc
        if len(data) > max_bytes:
            raise BlobUnreadableError(f"blob {repository}@{digest} is over {max_bytes} bytes")
        if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
            raise BlobUnreadableError(f"blob {repository}@{digest} downloaded with another digest")
        return data

    def copy_blob(
        self, from_repository: str, repository: str, digest: str, from_registry: Registry | None = None
    ) -> int:
        # Across registries (another account or region) the bytes go down from the source's
        # pre-signed URL and up into this registry (its own token and proxyEndpoint): no mount.
        url = (from_registry or self).layer_download_url(from_repository, digest)
        for attempt in range(1, V2_MAX_ATTEMPTS + 1):
            try:
                return self._copy_blob_v2(url, from_repository, repository, digest)
            except _V2NotUsable as exc:
                logger.warning(
                    "upload of %s into %s through /v2 not possible (%s); using the layer-upload API",
                    digest,
                    repository,
                    exc,
                )
                break
            except RegistryUnavailableError:
                if attempt == V2_MAX_ATTEMPTS:
                    raise
                time.sleep(V2_BACKOFF_SECONDS * 2 ** (attempt - 1))
        return self._copy_blob_api(url, from_repository, repository, digest)

    def _copy_blob_v2(self, url: str, from_repository: str, repository: str, digest: str) -> int:
        """POST an upload, then PUT ?digest= with the download as its body (the registry checks the
        digest); above V2_CHUNK_BYTES the first chunks go in PATCHes and the last in the PUT. A
        download of unknown length goes in one PATCH (chunked transfer encoding), closed by an
        empty PUT. Raises _V2NotUsable (fall back), RegistryUnavailableError (429/5xx),
        LayerCopyError (the download failed)."""
        try:
            endpoint, token = self._authorization()
        except RegistryError as exc:
            if exc.retryable:
                raise
            raise _V2NotUsable(str(exc)) from exc
        if not endpoint:
            raise _V2NotUsable("GetAuthorizationToken gave no proxyEndpoint")
        auth = {"Authorization": f"Basic {token}"}
        _, location = self._v2("POST", f"{endpoint}/v2/{repository}/blobs/uploads/", auth, b"", 0)
        if not location:
            raise _V2NotUsable("POST opened no upload (no Location)")
        offset = 0
        try:
            with self._open(url, timeout=HTTP_TIMEOUT_SECONDS) as download:
                total = _content_length(download)
                sending = {**auth, "Content-Type": "application/octet-stream"}
                # Every chunk but the last in a PATCH; an unknown total in one, to the stream's end.
                while total is None or total - offset > V2_CHUNK_BYTES:
                    size = None if total is None else V2_CHUNK_BYTES
                    sent = _Counter()
                    headers = dict(sending)
                    if size is not None:
                        headers["Content-Range"] = f"{offset}-{offset + size - 1}"
                    _, location = self._v2(
                        "PATCH", _absolute(endpoint, location), headers, _stream(download, size, sent), size
                    )
                    offset += sent.bytes
                    if size is None or sent.bytes < size:
                        break
                # What the PUT carries: the rest of a known total (all of it: monolithic); nothing
                # after an unknown total, or after a download that ended early (the digest fails).
                last = 0 if total is None or offset < total - V2_CHUNK_BYTES else total - offset
                sent = _Counter()
                headers = dict(sending) if last else dict(auth)
                if last and offset:  # a closing chunk; a monolithic body has no range (tart#179)
                    headers["Content-Range"] = f"{offset}-{offset + last - 1}"
                separator = "&" if "?" in location else "?"
                self._v2(
                    "PUT",
                    f"{_absolute(endpoint, location)}{separator}digest={digest}",
                    headers,
                    _stream(download, last, sent) if last else b"",
                    last,
                )
                offset += sent.bytes
        except _DownloadError as exc:
            self._cancel_upload(endpoint, token, location)
            raise LayerCopyError(f"download of {digest} from {from_repository} failed: {exc}") from exc
        except (urllib.error.URLError, OSError) as exc:  # the source URL would not even open
            self._cancel_upload(endpoint, token, location)
            raise LayerCopyError(f"download of {digest} from {from_repository} failed: {exc}") from exc
        except (_V2NotUsable, RegistryUnavailableError):
            self._cancel_upload(endpoint, token, location)
            raise
        return offset

    def _v2(
        self, method: str, url: str, headers: dict[str, str], body: Any, length: int | None
    ) -> tuple[int, str]:
        """One /v2 request; returns its status and Location. 429/5xx and lost connections are
        RegistryUnavailableError, any other failure _V2NotUsable."""
        if length is not None:
            headers = {**headers, "Content-Length": str(length)}
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with self._open(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                response.read()
                return response.status, response.headers.get("Location") or ""
        except urllib.error.HTTPError as exc:
            detail = f"{method} {exc.code}: {_registry_error(exc)}"
            if exc.code in V2_RETRYABLE_STATUSES:
                raise RegistryUnavailableError(f"registry /v2 {detail}") from exc
            raise _V2NotUsable(detail) from exc
        except urllib.error.URLError as exc:  # no connection at all: no /v2 endpoint here
            raise _V2NotUsable(f"{method} {url.split('?')[0]}: {exc.reason}") from exc
        except (http.client.HTTPException, OSError) as exc:  # the connection broke mid-answer
            raise RegistryUnavailableError(f"registry /v2 {method}: {exc!r}") from exc

    def _copy_blob_api(self, url: str, from_repository: str, repository: str, digest: str) -> int:
        """The layer-upload API: parts of `partSize` bytes, base64 in JSON (the fallback)."""
        with _ecr_errors("InitiateLayerUpload", repository):
            upload = self._ecr.initiate_layer_upload(repositoryName=repository)
        upload_id = upload["uploadId"]
        part_size = min(max(int(upload.get("partSize") or MIN_PART_BYTES), MIN_PART_BYTES), MAX_PART_BYTES)
        hasher = hashlib.sha256()
        offset = 0
        try:
            with self._open(url, timeout=HTTP_TIMEOUT_SECONDS) as stream:
                # Memory stays at one part per concurrent copy, whatever the layer size.
                while part := _read_up_to(stream, part_size):
                    hasher.update(part)
                    with _ecr_errors("UploadLayerPart", repository):
                        self._ecr.upload_layer_part(
                            repositoryName=repository,
                            uploadId=upload_id,
                            partFirstByte=offset,
                            partLastByte=offset + len(part) - 1,
                            layerPartBlob=part,
                        )
                    offset += len(part)
        except (urllib.error.URLError, OSError) as exc:
            raise LayerCopyError(f"download of {digest} from {from_repository} failed: {exc}") from exc
        if f"sha256:{hasher.hexdigest()}" != digest:
            raise LayerCopyError(f"blob {digest} downloaded from {from_repository} has another digest")
        try:
            with _ecr_errors("CompleteLayerUpload", repository):
                self._ecr.complete_layer_upload(
                    repositoryName=repository, uploadId=upload_id, layerDigests=[digest]
                )
        except RegistryError as exc:
            if _error_code(exc) != "LayerAlreadyExistsException":
                raise
        return offset

    # --- listing: reconciliation and rollback -------------------------------------------------

    def describe_repository(self, repository: str) -> RepositoryInfo:
        """One repository's tag mutability (DescribeRepositories)."""
        with _ecr_errors("DescribeRepositories", repository):
            response = self._ecr.describe_repositories(repositoryNames=[repository])
        return _repository_info(response["repositories"][0])

    def list_repositories(self) -> list[RepositoryInfo]:
        """Every repository of the registry (DescribeRepositories, paginated), for source globs."""
        found: list[RepositoryInfo] = []
        kwargs: dict[str, Any] = {}
        while True:
            with _ecr_errors("DescribeRepositories", "registry"):
                response = self._ecr.describe_repositories(**kwargs)
            found += [_repository_info(r) for r in response.get("repositories") or ()]
            if not response.get("nextToken"):
                return found
            kwargs["nextToken"] = response["nextToken"]

    def list_tagged_images(self, repository: str, page_size: int, token: str | None) -> ImagePage:
        """One page of tagged images (DescribeImages, TAGGED: tags, digest and push time). A token
        ECR no longer accepts (InvalidParameterException on a token call) is a `PageTokenExpiredError`."""
        kwargs: dict[str, Any] = {
            "repositoryName": repository,
            "filter": {"tagStatus": "TAGGED"},
            "maxResults": page_size,
        }
        overrides: dict[str, type[RegistryError]] = {}
        if token:
            kwargs["nextToken"] = token
            overrides["InvalidParameterException"] = PageTokenExpiredError
        with _ecr_errors("DescribeImages", repository, overrides):
            response = self._ecr.describe_images(**kwargs)
        images = tuple(
            ListedImage(tag, detail["imageDigest"], _epoch(detail.get("imagePushedAt")))
            for detail in response.get("imageDetails") or ()
            for tag in detail.get("imageTags") or ()
        )
        return ImagePage(images, response.get("nextToken") or None)

    def pushed_at(self, repository: str, digest: str) -> float | None:
        """When an image was pushed (epoch seconds), None when it is not in the repository."""
        details = self._image_details(repository, digest)
        return _epoch(details[0].get("imagePushedAt")) if details else None


class _V2NotUsable(Exception):
    """The registry's /v2 upload is not available to us here; the layer-upload API is."""


class _DownloadError(Exception):
    """Reading the source blob failed while its bytes were being sent (not an OSError, so that
    urllib does not take it for a failure of the upload's own connection)."""


class _Counter:
    """Bytes a streamed request body has produced."""

    def __init__(self) -> None:
        self.bytes = 0


def _stream(source: Any, size: int | None, counter: _Counter) -> Iterator[bytes]:
    """Up to `size` bytes of `source` (all of it when None), READ_CHUNK_BYTES at a time."""
    remaining = size
    while remaining is None or remaining > 0:
        want = READ_CHUNK_BYTES if remaining is None else min(remaining, READ_CHUNK_BYTES)
        try:
            chunk = source.read(want)
        except (OSError, http.client.HTTPException) as exc:
            raise _DownloadError(repr(exc)) from exc
        if not chunk:
            return
        counter.bytes += len(chunk)
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


def _content_length(response: Any) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _string_map(value: Any) -> dict[str, str]:
    """A descriptor's annotations as strings (anything else in them is not ours to read)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def _absolute(endpoint: str, location: str) -> str:
    return location if location.startswith("http") else f"{endpoint}{location}"


def _registry_error(exc: urllib.error.HTTPError) -> str:
    """The distribution error code and message of a failed /v2 request, for the log."""
    try:
        errors = json.loads(exc.read() or b"{}").get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or str(exc.reason)
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


def _read_up_to(stream: Any, size: int) -> bytes:
    """Reads `size` bytes unless the stream ends first (HTTP reads may return less)."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(remaining, READ_CHUNK_BYTES))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _error_code(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code", ""))
    return ""


def _media_type_of(body: str) -> str:
    """The media type a manifest declares, for responses that omit imageManifestMediaType."""
    try:
        value = json.loads(body).get("mediaType")
    except (ValueError, AttributeError):
        value = None
    return value if isinstance(value, str) else ""
