"""`/v2/` on the front port: ECR's registry endpoint, a streaming reverse proxy to docker-registry.

What ECR adds over a plain registry is applied here: Basic auth with the GetAuthorizationToken
password, repositories must exist, tags resolve through our store (so immutability, untagging and
BatchDeleteImage stay one truth), manifest PUTs go through `EcrService.put_manifest` (same rules and
events as PutImage), and cross-repository mounts obey the BLOB_MOUNTING account setting.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlencode

from werkzeug.wsgi import get_input_stream

from local_aws import errors as e
from local_aws.ecr_api import (
    MAX_MANIFEST_BYTES,
    EcrService,
    archived_reason,
    manifest_too_large,
    unaccepted_reason,
)
from local_aws.faults import Faults
from local_aws.manifests import DIGEST_RE, sha256_digest
from local_aws.policy import Principal
from local_aws.pull_times import record_pull
from local_aws.registry import CHUNK_BYTES, RegistryProcess, stream_response
from local_aws.store import ACTIVE, Scope

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "content-length",
}
PATH_RE = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs|tags|referrers)/(?P<rest>.*)$")
# Pages of the registry API: tags/list and _catalog answer 100 names unless `n` asks for another
# count, and refuse more than 1000 (ECR.md, "Pages").
REGISTRY_PAGE_SIZE = 100
MAX_REGISTRY_PAGE_SIZE = 1000
UPLOAD_ID_RE = re.compile(r"[0-9a-fA-F-]{36}")
# A tag in a `/v2/` path: the OCI distribution spec's grammar, at most 128 characters (PutImage's
# imageTag takes up to 300, but the registry API refuses more than the spec allows).
V2_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
# The methods each `/v2/` route defines (OCI distribution spec); any other is 405 UNSUPPORTED with
# `Allow`, never answered as if it were a GET.
BASE_METHODS = ("GET", "HEAD")
MANIFEST_METHODS = ("GET", "HEAD", "PUT", "DELETE")
BLOB_METHODS = ("GET", "HEAD", "DELETE")
UPLOADS_METHODS = ("POST",)
UPLOAD_METHODS = ("GET", "PATCH", "PUT", "DELETE")
OCI_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
# How many descriptors one answer of the referrers API holds before it pages with a `Link` header.
# The OCI spec lets a registry page this API and ECR does not document a size, so the local one
# pages like ListImageReferrers (50): a client that ignores `Link` loses referrers here too.
REFERRERS_PAGE_SIZE = 50

# ECR's JSON errors seen through the registry API, as distribution error codes.
REGISTRY_CODES: dict[type[e.EcrError], tuple[int, str]] = {
    e.ImageTagAlreadyExistsException: (400, "TAG_INVALID"),
    e.LayersNotFoundException: (400, "MANIFEST_BLOB_UNKNOWN"),
    e.ReferencedImagesNotFoundException: (400, "MANIFEST_BLOB_UNKNOWN"),
    e.ImageDigestDoesNotMatchException: (400, "DIGEST_INVALID"),
    e.InvalidParameterException: (400, "MANIFEST_INVALID"),
    e.RepositoryNotFoundException: (404, "NAME_UNKNOWN"),
    e.ThrottlingException: (429, "TOOMANYREQUESTS"),
}

StartResponse = Any


class RegistryProxy:
    """The WSGI handler for `/v2/...` of one registry (account and region)."""

    def __init__(self, ecr: EcrService, registry: RegistryProcess, scope: Scope, faults: Faults) -> None:
        self.ecr = ecr
        self.registry = registry
        self.scope = scope
        self.faults = faults

    # ------------------------------------------------------------------------------ entry points
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        caller = self._caller(environ)
        if caller is None:
            return _error(
                start_response,
                401,
                "UNAUTHORIZED",
                "authentication required",
                [("WWW-Authenticate", challenge(self.scope))],
            )
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        match = PATH_RE.match(path)
        allowed = route_methods(path, match["kind"] if match else "", match["rest"] if match else "")
        if allowed is not None and method not in allowed:
            _drain(environ)
            return _error(
                start_response,
                405,
                "UNSUPPORTED",
                f"The operation is unsupported: {method} is not defined on {path}",
                [("Allow", ", ".join(allowed))],
            )
        if path in ("/v2", "/v2/"):
            return _json(start_response, 200, {}, [("Docker-Distribution-API-Version", "registry/2.0")])
        if path == "/v2/_catalog":
            return self._catalog(environ, start_response)
        if not match:
            return _error(start_response, 404, "NAME_UNKNOWN", "unsupported registry path")
        name, kind, rest = match["name"], match["kind"], match["rest"]
        if is_push(method, kind, rest):  # a CREATE_ON_PUSH creation template creates a missing repository
            self.ecr.create_on_push(self.scope, name)
        if self.ecr.store.repository(self.scope, name) is None:
            return _error(
                start_response,
                404,
                "NAME_UNKNOWN",
                f"The repository with name '{name}' does not exist in the registry with id "
                f"'{self.scope.account}'",
            )
        action = registry_write_action(method, kind, rest)
        if action is not None:
            try:
                self.ecr.authorize(self.scope, name, action, caller)
            except e.AccessDeniedException as exc:
                return _error(start_response, 403, "DENIED", exc.message)
        if kind == "manifests":
            return self._manifest(environ, start_response, method, name, rest, caller)
        if kind == "tags":
            return self._tags(environ, start_response, name, rest)
        if kind == "referrers":
            return self._referrers(environ, start_response, method, name, rest)
        if DIGEST_RE.match(rest):
            if method == "DELETE":
                # ECR deletes images, never blobs (unreferenced layers are cleaned up on their own);
                # the OCI spec's answer for a registry without blob deletion is 405 UNSUPPORTED.
                return _error(start_response, 405, "UNSUPPORTED", "The operation is unsupported.")
            if method == "GET":
                return self._redirect_blob(environ, start_response, name, rest)
        if method == "POST" and rest in ("uploads", "uploads/"):
            environ = self._mount_or_upload(environ, name)
        if method == "PATCH" and rest.startswith("uploads/"):
            return self._patch(environ, start_response, name, rest[len("uploads/") :])
        return self.forward(environ, start_response)

    # ------------------------------------------------------------------------------ ECR semantics
    def _caller(self, environ: dict[str, Any]) -> Principal | None:
        """Who the Basic auth password (GetAuthorizationToken's) was handed to; None: no caller."""
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if user != "AWS":
            return None
        return self.ecr.principal_of_password(self.scope, password)

    def _manifest(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        method: str,
        name: str,
        ref: str,
        caller: Principal,
    ) -> Iterable[bytes]:
        is_digest = bool(DIGEST_RE.match(ref))
        if not is_digest and not V2_TAG_RE.match(ref):
            return _error(start_response, 400, "TAG_INVALID", f"invalid reference {ref!r}")
        if method == "PUT":
            return self._put_manifest(environ, start_response, name, ref, is_digest)
        digest = ref if is_digest else self.ecr.store.tag_digest(self.scope, name, ref)
        if digest is None or self.ecr.store.image(self.scope, name, digest) is None:
            return _error(start_response, 404, "MANIFEST_UNKNOWN", f"manifest {ref} unknown")
        if method == "DELETE":
            return self._delete_manifest(start_response, name, digest, None if is_digest else ref)
        return self._serve_manifest(
            environ, start_response, method, name, digest, by_tag=not is_digest, puller=caller
        )

    def _serve_manifest(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        method: str,
        name: str,
        digest: str,
        *,
        by_tag: bool,
        puller: Principal | None = None,
    ) -> Iterable[bytes]:
        """GET/HEAD of a manifest from the exact stored bytes. An archived image is a 404 (ECR:
        "Requests to pull the archived image will fail with a 404 error"); a stored type the
        `Accept` header does not name is converted when asked for by tag and ECR converts it,
        else a 404 MANIFEST_UNKNOWN in ECR's words."""
        image = self.ecr.store.image(self.scope, name, digest)
        if image is None:
            return _error(start_response, 404, "MANIFEST_UNKNOWN", f"manifest {digest} unknown")
        if image.status != ACTIVE:
            return _error(start_response, 404, "MANIFEST_UNKNOWN", archived_reason(image))
        accepted = _accepted_types(environ.get("HTTP_ACCEPT", ""))
        served = self.ecr.negotiate(image, accepted, by_tag=by_tag)
        if served is None:
            return _error(start_response, 404, "MANIFEST_UNKNOWN", unaccepted_reason(image, accepted or []))
        raw, media_type = served
        if method == "GET" and puller is not None:  # a pull: recorded unless the puller is excluded
            record_pull(self.ecr.store, self.scope, name, digest, puller)
        served_digest = sha256_digest(raw)
        start_response(
            "200 OK",
            [
                ("Content-Type", media_type),
                ("Content-Length", str(len(raw))),
                ("Docker-Content-Digest", served_digest),
                ("Docker-Distribution-API-Version", "registry/2.0"),
                ("Etag", f'"{served_digest}"'),
            ],
        )
        return [b""] if method == "HEAD" else [raw]

    def _delete_manifest(
        self, start_response: StartResponse, name: str, digest: str, tag: str | None
    ) -> Iterable[bytes]:
        """By tag: the tag goes, the image stays (untagged, addressable by digest). By digest: the
        image goes with its tags, unless an index in the repository lists it (ECR's
        `ImageReferencedByManifestList`, answered as a 409: inferred, ECR documents no status)."""
        if tag is not None:
            self.ecr.untag(self.scope, name, tag)
            start_response("202 Accepted", [("Content-Length", "0")])
            return [b""]
        result = self.ecr.op_BatchDeleteImage(
            self.scope, {"repositoryName": name, "imageIds": [{"imageDigest": digest}]}
        )
        for failure in result["failures"]:
            if failure["failureCode"] == "ImageReferencedByManifestList":
                return _error(start_response, 409, "DENIED", failure["failureReason"])
            return _error(start_response, 404, "MANIFEST_UNKNOWN", failure["failureReason"])
        start_response("202 Accepted", [("Content-Length", "0")])
        return [b""]

    def _catalog(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """`GET /v2/_catalog?n=&last=`: the registry's repository names, in order, a page at a time."""
        names = [r.name for r in self.ecr.store.repositories(self.scope)]
        return self._page(environ, start_response, "/v2/_catalog", "repositories", names, {})

    def _tags(
        self, environ: dict[str, Any], start_response: StartResponse, name: str, rest: str
    ) -> Iterable[bytes]:
        """`GET /v2/<name>/tags/list?n=&last=`: the tags in lexical order, REGISTRY_PAGE_SIZE a page."""
        if rest != "list":
            return _error(start_response, 404, "NAME_UNKNOWN", "unsupported registry path")
        tags = self.ecr.store.tags(self.scope, name)
        return self._page(environ, start_response, f"/v2/{name}/tags/list", "tags", tags, {"name": name})

    def _page(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        path: str,
        key: str,
        names: list[str],
        body: dict[str, Any],
    ) -> Iterable[bytes]:
        """One page of `names` after `last`, at most `n`; a `Link: <...>; rel="next"` when more follow."""
        query = parse_qs(environ.get("QUERY_STRING", ""))
        raw_n = (query.get("n") or [""])[0]
        try:
            size = int(raw_n) if raw_n else REGISTRY_PAGE_SIZE
        except ValueError:
            size = -1
        if not 0 <= size <= MAX_REGISTRY_PAGE_SIZE:
            return _error(
                start_response,
                400,
                "PAGINATION_NUMBER_INVALID",
                f"invalid number of results requested: n must be 0 to {MAX_REGISTRY_PAGE_SIZE}",
            )
        last = (query.get("last") or [""])[0]
        following = [n for n in names if n > last] if last else names
        page = following[:size]
        extra = []
        if len(following) > size and page:
            extra.append(("Link", f'<{path}?{urlencode({"last": page[-1], "n": size})}>; rel="next"'))
        return _json(start_response, 200, {**body, key: page}, extra)

    def _redirect_blob(
        self, environ: dict[str, Any], start_response: StartResponse, name: str, digest: str
    ) -> Iterable[bytes]:
        """ECR serves blob bytes from S3: a `307` to a pre-signed URL on another host. A blob the
        repository does not hold gets the registry's own `404 BLOB_UNKNOWN`."""
        if not self.registry.has_blob(name, digest):
            return _error(start_response, 404, "BLOB_UNKNOWN", f"blob {digest} unknown to registry")
        url = self.ecr.blob_host.presigned_url(self.scope, name, digest)
        start_response(
            "307 Temporary Redirect",
            [
                ("Location", url),
                ("Docker-Distribution-API-Version", "registry/2.0"),
                ("Content-Length", "0"),
            ],
        )
        return [b""]

    def _patch(
        self, environ: dict[str, Any], start_response: StartResponse, name: str, upload: str
    ) -> Iterable[bytes]:
        """A chunk of an upload. The body is always read to its end before an error is answered,
        so a client sending a large chunk gets a clean answer rather than a broken connection:
        `404 BLOB_UPLOAD_UNKNOWN` for a cancelled or unknown upload, `416` (with the upload's
        `Range` and `Location`) for a `Content-Range` that does not start where the upload ends."""
        known = UPLOAD_ID_RE.fullmatch(upload) is not None
        state = f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else ""
        status = self.registry.request("GET", f"/v2/{name}/blobs/uploads/{upload}{state}") if known else None
        if status is None or status.status != 204:
            _drain(environ)
            return _error(start_response, 404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        content_range = environ.get("HTTP_CONTENT_RANGE")
        if content_range:
            size = self.registry.upload_size(name, upload)
            first = _range_start(content_range)
            if first != size:
                _drain(environ)
                # Where to go on: the registry's own Location for the upload as it stands (with the
                # `_state` the registry needs to resume it), on this endpoint.
                location = self._public_location(status.headers.get("location", ""))
                location = location or f"/v2/{name}/blobs/uploads/{upload}{state}"
                return _error(
                    start_response,
                    416,
                    "BLOB_UPLOAD_INVALID",
                    f"Content-Range {content_range!r} does not start at the upload's end "
                    f"({size} bytes received)",
                    [
                        ("Location", location),
                        ("Range", f"0-{max(size - 1, 0)}"),
                        ("Docker-Upload-UUID", upload),
                    ],
                )
        return self.forward(environ, start_response)

    def _put_manifest(
        self, environ: dict[str, Any], start_response: StartResponse, name: str, ref: str, is_digest: bool
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        stream = get_input_stream(environ)
        raw = _read_at_most(stream, MAX_MANIFEST_BYTES + 1)
        if length > MAX_MANIFEST_BYTES or len(raw) > MAX_MANIFEST_BYTES:
            # Read to its end (a client streaming it gets an answer, not a cut connection), refused
            # in ECR's words before any other server sees it (a chunked body has no length to check).
            while stream.read(CHUNK_BYTES):
                pass
            return _error(start_response, 400, "MANIFEST_INVALID", manifest_too_large().message)
        media_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip() or None
        rec = self.ecr.store.repository(self.scope, name)
        try:
            # A manifest push is a PutImage for ECR's quotas: same rate, same injected faults.
            self.faults.admit("PutImage")
            if rec is None:
                raise e.RepositoryNotFoundException(f"repository {name} not found")
            result = self.ecr.put_manifest(
                self.scope,
                rec,
                raw,
                tag=None if is_digest else ref,
                given_digest=ref if is_digest else None,
                media_type=media_type,
                from_registry_api=True,
            )
        except e.EcrError as exc:
            status, code = REGISTRY_CODES.get(type(exc), (400, "MANIFEST_INVALID"))
            if isinstance(exc, e.ServerException):
                status, code = 500, "UNKNOWN"
            return _error(start_response, status, code, exc.message)
        digest = result.image.digest
        headers = [
            ("Location", f"/v2/{name}/manifests/{digest}"),
            ("Docker-Content-Digest", digest),
            ("Content-Length", "0"),
        ]
        if result.image.subject:
            # OCI 1.1: a registry that indexes `subject` for the referrers API says so with this header
            # (a client then need not keep the `sha256-<hex>` tag-schema fallback up to date).
            headers.append(("OCI-Subject", result.image.subject))
        start_response("201 Created", headers)
        return [b""]

    def _referrers(
        self, environ: dict[str, Any], start_response: StartResponse, method: str, name: str, ref: str
    ) -> Iterable[bytes]:
        """`GET /v2/<name>/referrers/<digest>[?artifactType=]`: the OCI 1.1 referrers API.

        An OCI image index of the referrers' descriptors, 200 even when the subject is unknown (the
        spec forbids a 404 for a known repository), filtered by `artifactType` with the
        `OCI-Filters-Applied` header, paged by REFERRERS_PAGE_SIZE with `Link: <...>; rel="next"`.
        """
        if method not in ("GET", "HEAD"):
            return _error(start_response, 405, "UNSUPPORTED", f"{method} is not supported on referrers")
        if not DIGEST_RE.match(ref):
            return _error(start_response, 400, "DIGEST_INVALID", f"invalid digest {ref!r}")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        wanted = tuple(query.get("artifactType") or ())
        refs = self.ecr.referrer_descriptors(self.scope, name, ref, wanted)
        start = 0
        last = (query.get("last") or [""])[0]
        if last:
            positions = [i for i, d in enumerate(refs) if d["digest"] == last]
            start = positions[0] + 1 if positions else len(refs)
        page = refs[start : start + REFERRERS_PAGE_SIZE]
        extra = []
        if wanted:
            extra.append(("OCI-Filters-Applied", "artifactType"))
        if start + REFERRERS_PAGE_SIZE < len(refs):
            following = urlencode([*[("artifactType", a) for a in wanted], ("last", page[-1]["digest"])])
            extra.append(("Link", f'</v2/{name}/referrers/{ref}?{following}>; rel="next"'))
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX_MEDIA_TYPE, "manifests": page}
        return _json(start_response, 200, body, extra, content_type=OCI_INDEX_MEDIA_TYPE)

    def _mount_or_upload(self, environ: dict[str, Any], name: str) -> dict[str, Any]:
        """Mount only when BLOB_MOUNTING is ENABLED and a manifest in `from` references the blob.

        Otherwise drop the mount parameters so the registry opens a normal upload (202), as ECR does.
        """
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if "mount" not in query:
            return environ
        digest, source = query["mount"][0], (query.get("from") or [""])[0]
        allowed = (
            self.ecr.blob_mounting_enabled(self.scope)
            and bool(source)
            and self.ecr.store.repository(self.scope, source) is not None
            and self.ecr.store.blob_referenced(self.scope, source, digest)
        )
        if allowed:
            return environ
        rest = {k: v for k, v in query.items() if k not in ("mount", "from")}
        return dict(environ, QUERY_STRING=urlencode(rest, doseq=True))

    # ------------------------------------------------------------------------------ streaming
    def forward(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Stream the request to the registry and its answer back, never holding a whole body."""
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        conn = self.registry.connection(timeout=300)
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", self.registry.host)
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                header = key[5:].replace("_", "-").lower()
                if header not in HOP_BY_HOP:
                    conn.putheader(header, value)
        if environ.get("CONTENT_TYPE"):
            conn.putheader("Content-Type", environ["CONTENT_TYPE"])
        length = environ.get("CONTENT_LENGTH")
        chunked = not length and environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        if length:
            conn.putheader("Content-Length", length)
        elif chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif method in ("PUT", "PATCH", "POST"):
            conn.putheader("Content-Length", "0")
        conn.endheaders()
        if length or chunked:
            stream = get_input_stream(environ)
            try:
                while chunk := stream.read(CHUNK_BYTES):
                    conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
                if chunked:
                    conn.send(b"0\r\n\r\n")
            except OSError:
                # The registry answered (an error) and closed before the body ended: read the
                # client's body to its end anyway, then relay that answer, never a cut connection.
                _drain(environ)
        try:
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return _error(start_response, 500, "UNKNOWN", f"registry connection failed: {exc!r}")
        headers = []
        for key, value in resp.getheaders():
            lower = key.lower()
            if lower in HOP_BY_HOP and lower != "content-length":
                continue
            if lower == "location":
                value = self._public_location(value)
            headers.append((key, value))
        start_response(f"{resp.status} {resp.reason}", headers)
        if method == "HEAD":
            conn.close()
            return [b""]
        return stream_response(resp, conn)

    def _public_location(self, location: str) -> str:
        """A `Location` of the registry behind, as this endpoint's."""
        return location.replace(f"http://{self.registry.host}", self.ecr.endpoint_for(self.scope))


def is_push(method: str, kind: str, rest: str) -> bool:
    """Whether a `/v2/` request begins or ends a push: a manifest PUT, or the POST opening an upload."""
    return (method, kind) == ("PUT", "manifests") or (
        method == "POST" and kind == "blobs" and rest in ("uploads", "uploads/")
    )


def route_methods(path: str, kind: str, rest: str) -> tuple[str, ...] | None:
    """The methods the `/v2/` route of `path` defines (its `kind` and `rest` from PATH_RE), None
    when the path is no route (answered 404 elsewhere)."""
    if path in ("/v2", "/v2/", "/v2/_catalog") or kind in ("tags", "referrers"):
        return BASE_METHODS
    if kind == "manifests":
        return MANIFEST_METHODS
    if kind == "blobs" and DIGEST_RE.match(rest):
        return BLOB_METHODS
    if kind == "blobs" and rest in ("uploads", "uploads/"):
        return UPLOADS_METHODS
    if kind == "blobs" and rest.startswith("uploads/"):
        return UPLOAD_METHODS
    return None


def _json(
    start_response: StartResponse,
    status: int,
    body: Any,
    extra: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {
        200: "OK",
        201: "Created",
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        416: "Requested Range Not Satisfiable",
        429: "Too Many Requests",
        500: "Internal Server Error",
    }.get(status, "")
    start_response(
        f"{status} {reason}",
        [("Content-Type", content_type), ("Content-Length", str(len(data))), *(extra or [])],
    )
    return [data]


def registry_write_action(method: str, kind: str, rest: str) -> str | None:
    """The ECR action a `/v2/` request performs, when it writes: a manifest PUT is PutImage, its
    DELETE BatchDeleteImage; a blob upload's POST, PATCH and PUT are InitiateLayerUpload,
    UploadLayerPart and CompleteLayerUpload (ECR's IAM reference for pushes through the registry API)."""
    if kind == "manifests":
        return {"PUT": "PutImage", "DELETE": "BatchDeleteImage"}.get(method)
    if kind == "blobs" and rest.startswith("uploads"):
        return {"POST": "InitiateLayerUpload", "PATCH": "UploadLayerPart", "PUT": "CompleteLayerUpload"}.get(
            method
        )
    return None


def _error(
    start_response: StartResponse,
    status: int,
    code: str,
    message: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    return _json(
        start_response, status, {"errors": [{"code": code, "message": message, "detail": None}]}, extra
    )


def challenge(scope: Scope) -> str:
    """ECR's 401 challenge: Basic, the registry's own host as realm, `ecr.amazonaws.com` as service."""
    return f'Basic realm="https://{scope.account}.dkr.ecr.{scope.region}.amazonaws.com/",service="ecr.amazonaws.com"'


def _drain(environ: dict[str, Any]) -> None:
    """Reads and drops the rest of a request body, so that an answer never cuts a client off mid-body."""
    stream = get_input_stream(environ)
    while stream.read(CHUNK_BYTES):
        pass


def _read_at_most(stream: Any, limit: int) -> bytes:
    """Up to `limit` bytes of a request body's stream. A chunked body's stream answers one chunk a
    read, so it is read until `limit` or its end (one read took the first chunk for the whole body)."""
    parts: list[bytes] = []
    size = 0
    while size < limit and (chunk := stream.read(min(CHUNK_BYTES, limit - size))):
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _range_start(content_range: str) -> int:
    """The first byte of a chunk's `Content-Range` (`<start>-<end>`, optionally `bytes ` first); -1
    when malformed, which no upload's end matches."""
    match = re.fullmatch(r"(?:bytes[ =])?(\d+)-(\d+)(?:/\d+|/\*)?", content_range.strip())
    if not match or int(match[2]) < int(match[1]):
        return -1
    return int(match[1])


def _accepted_types(accept: str) -> list[str] | None:
    """The media types of an `Accept` header, None when it names none or accepts anything."""
    types = [part.split(";")[0].strip() for part in accept.split(",") if part.strip()]
    if not types or "*/*" in types:
        return None
    return types
