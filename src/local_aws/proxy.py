"""`/v2/` on the front port: ECR's registry endpoint, a streaming reverse proxy to docker-registry.

What ECR adds over a plain registry is applied here: Basic auth with the GetAuthorizationToken
password, repositories must exist, tags resolve through our store (so immutability, untagging and
BatchDeleteImage stay one truth), manifest PUTs go through `EcrService.put_manifest` (same rules and
events as PutImage), and cross-repository mounts obey the BLOB_MOUNTING account setting.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode

from werkzeug.wsgi import get_input_stream

from local_aws import errors as e
from local_aws.ecr_api import EcrService
from local_aws.faults import Faults
from local_aws.manifests import DIGEST_RE, TAG_RE
from local_aws.registry import RegistryProcess
from local_aws.store import Scope

CHUNK_BYTES = 64 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
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
REALM = 'Basic realm="local-ecr"'
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
    """The WSGI handler for `/v2/...` and for pre-signed layer downloads."""

    def __init__(self, ecr: EcrService, registry: RegistryProcess, scope: Scope, faults: Faults) -> None:
        self.ecr = ecr
        self.registry = registry
        self.scope = scope
        self.faults = faults

    # ------------------------------------------------------------------------------ entry points
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self._authorized(environ):
            return _error(
                start_response, 401, "UNAUTHORIZED", "authentication required", [("WWW-Authenticate", REALM)]
            )
        path = environ.get("PATH_INFO", "")
        if path in ("/v2", "/v2/"):
            return _json(start_response, 200, {}, [("Docker-Distribution-API-Version", "registry/2.0")])
        match = PATH_RE.match(path)
        if not match:
            return _error(start_response, 404, "NAME_UNKNOWN", "unsupported registry path")
        name, kind, rest = match["name"], match["kind"], match["rest"]
        if self.ecr.store.repository(self.scope, name) is None:
            return _error(
                start_response,
                404,
                "NAME_UNKNOWN",
                f"The repository with name '{name}' does not exist in the registry with id "
                f"'{self.scope.account}'",
            )
        method = environ["REQUEST_METHOD"]
        if kind == "manifests":
            return self._manifest(environ, start_response, method, name, rest)
        if kind == "tags":
            tags = self.ecr.store.tags(self.scope, name)
            return _json(start_response, 200, {"name": name, "tags": tags})
        if kind == "referrers":
            return self._referrers(environ, start_response, method, name, rest)
        if method == "POST" and rest in ("uploads", "uploads/"):
            environ = self._mount_or_upload(environ, name)
        return self.forward(environ, start_response)

    def download(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """GET /_local/blobs/<repo>/<digest>?expires=&signature= (GetDownloadUrlForLayer)."""
        import time

        match = re.match(
            r"^/_local/blobs/(?P<repo>.+)/(?P<digest>sha256:[0-9a-f]{64})$", environ.get("PATH_INFO", "")
        )
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            expires = int(query["expires"][0])
            signature = query["signature"][0]
        except (KeyError, ValueError, IndexError):
            return _error(start_response, 403, "DENIED", "missing or malformed signature")
        if (
            not match
            or expires < time.time()
            or not hmac.compare_digest(
                signature, self.ecr.sign_download(match["repo"], match["digest"], expires, self.scope)
            )
        ):
            return _error(start_response, 403, "DENIED", "invalid or expired signature")
        environ = dict(
            environ,
            PATH_INFO=f"/v2/{match['repo']}/blobs/{match['digest']}",
            QUERY_STRING="",
            REQUEST_METHOD="GET",
        )
        return self.forward(environ, start_response)

    # ------------------------------------------------------------------------------ ECR semantics
    def _authorized(self, environ: dict[str, Any]) -> bool:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == "AWS" and hmac.compare_digest(password, self.ecr.password_for(self.scope))

    def _manifest(
        self, environ: dict[str, Any], start_response: StartResponse, method: str, name: str, ref: str
    ) -> Iterable[bytes]:
        is_digest = bool(DIGEST_RE.match(ref))
        if not is_digest and not TAG_RE.match(ref):
            return _error(start_response, 400, "TAG_INVALID", f"invalid reference {ref!r}")
        if method == "PUT":
            return self._put_manifest(environ, start_response, name, ref, is_digest)
        digest = ref if is_digest else self.ecr.store.tag_digest(self.scope, name, ref)
        if digest is None or self.ecr.store.image(self.scope, name, digest) is None:
            return _error(start_response, 404, "MANIFEST_UNKNOWN", f"manifest {ref} unknown")
        if method == "DELETE":
            self.ecr.op_BatchDeleteImage(
                self.scope, {"repositoryName": name, "imageIds": [{"imageDigest": digest}]}
            )
            start_response("202 Accepted", [("Content-Length", "0")])
            return [b""]
        environ = dict(environ, PATH_INFO=f"/v2/{name}/manifests/{digest}")
        return self.forward(environ, start_response)

    def _put_manifest(
        self, environ: dict[str, Any], start_response: StartResponse, name: str, ref: str, is_digest: bool
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_MANIFEST_BYTES:
            return _error(start_response, 400, "MANIFEST_INVALID", "manifest too large")
        raw = get_input_stream(environ).read(MAX_MANIFEST_BYTES + 1)
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
            while chunk := stream.read(CHUNK_BYTES):
                conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
            if chunked:
                conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        headers = []
        for key, value in resp.getheaders():
            lower = key.lower()
            if lower in HOP_BY_HOP and lower != "content-length":
                continue
            if lower == "location":
                value = value.replace(f"http://{self.registry.host}", self.ecr.endpoint_for(self.scope))
            headers.append((key, value))
        start_response(f"{resp.status} {resp.reason}", headers)
        if method == "HEAD":
            conn.close()
            return [b""]
        return _stream(resp, conn)


def _stream(resp: Any, conn: Any) -> Iterator[bytes]:
    try:
        while chunk := resp.read(CHUNK_BYTES):
            yield chunk
    finally:
        conn.close()


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
        429: "Too Many Requests",
        500: "Internal Server Error",
    }.get(status, "")
    start_response(
        f"{status} {reason}",
        [("Content-Type", content_type), ("Content-Length", str(len(data))), *(extra or [])],
    )
    return [data]


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
