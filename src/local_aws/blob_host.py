"""The stand-in for S3 behind ECR's blob downloads: pre-signed URLs served on another loopback host.

ECR answers `GET /v2/<name>/blobs/<digest>` with a `307` to a pre-signed S3 URL, and
`GetDownloadUrlForLayer` returns the same kind of URL (ECR.md, "Blob downloads leave the registry").
S3 authenticates such a request by the signature in its query string only, and refuses one that
also carries an `Authorization` header (HTTP 400, `InvalidArgument`): a client that forwards the
registry's credentials across the redirect (urllib does, for headers set on a `Request`) fails here
as it would on AWS. The host is another loopback address (127.0.0.2 where the system has it), so
clients that drop credentials on a redirect to another host (Go's net/http: skopeo) do so here too.

Every request is recorded (method, path, header names, status) so tests can assert on what the
other host received; the control API serves the record (`/_local/blob-host/requests`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from local_aws.registry import RegistryProcess, stream_response
from local_aws.store import Scope

# Where the blob host listens: another loopback address than the registry's 127.0.0.1 (Linux
# routes all of 127.0.0.0/8 to the loopback device); 127.0.0.1 on another port where it is not.
BLOB_HOST_ADDRESSES = ("127.0.0.2", "127.0.0.1")
# ECR's pre-signed layer URLs are short-lived; an hour is what the local one signs for.
PRESIGNED_URL_TTL_SECONDS = 3600
RECORDED_REQUESTS = 1000
PATH_RE = re.compile(
    r"^/(?P<account>[0-9]{12})/(?P<region>[a-z0-9-]+)/(?P<repo>.+)/(?P<digest>sha256:[0-9a-f]{64})$"
)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# S3's answer to a request authenticated twice (query signature and Authorization header).
TWO_AUTH_MECHANISMS = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
    "string parameter or the Authorization header should be specified"
)

StartResponse = Any


class BlobHost:
    """Serves `GET /<account>/<region>/<repo>/<digest>?X-Amz-...` from that registry's storage."""

    def __init__(self, registry_for: Callable[[Scope], RegistryProcess], secret: str) -> None:
        self._registry_for = registry_for
        self._secret = secret.encode()
        self._server: BaseWSGIServer | None = None
        self._requests: deque[dict[str, Any]] = deque(maxlen=RECORDED_REQUESTS)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ lifecycle
    def start(
        self,
        handler: type[WSGIRequestHandler] | None = None,
        wrap: Callable[[Any], Any] | None = None,
    ) -> BlobHost:
        """Listen and serve; `wrap` puts a WSGI middleware in front (the latency model)."""
        last_error: OSError | None = None
        app = wrap(self) if wrap is not None else self
        for address in BLOB_HOST_ADDRESSES:
            try:
                self._server = make_server(address, 0, app, threaded=True, request_handler=handler)
                break
            except OSError as exc:  # no such loopback address here
                last_error = exc
        if self._server is None:
            raise RuntimeError(f"the blob host could not listen on loopback: {last_error}")
        threading.Thread(target=self._server.serve_forever, name="blob-host", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "blob host not started"
        return f"http://{self._server.server_address[0]}:{self._server.server_port}"

    # ------------------------------------------------------------------------------ signing
    def presigned_url(self, scope: Scope, repo: str, digest: str, now: float | None = None) -> str:
        """A GET URL for one blob of one repository, valid PRESIGNED_URL_TTL_SECONDS from now."""
        path = f"/{scope.account}/{scope.region}/{repo}/{digest}"
        amz_date = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime(AMZ_DATE_FORMAT)
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(PRESIGNED_URL_TTL_SECONDS),
            "X-Amz-SignedHeaders": "host",
        }
        query["X-Amz-Signature"] = self._sign(path, query["X-Amz-Date"], query["X-Amz-Expires"])
        return f"{self.endpoint}{quote(path)}?{urlencode(query)}"

    def _sign(self, path: str, amz_date: str, expires: str) -> str:
        return hmac.new(
            self._secret, f"GET\n{path}\n{amz_date}\n{expires}".encode(), hashlib.sha256
        ).hexdigest()

    # ------------------------------------------------------------------------------ recording
    def requests(self) -> list[dict[str, Any]]:
        """What the host received, oldest first: method, path, header names (lower case), status."""
        with self._lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------------------ serving
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = sorted(key[5:].replace("_", "-").lower() for key in environ if key.startswith("HTTP_")) + (
            ["content-type"] if environ.get("CONTENT_TYPE") else []
        )
        record: dict[str, Any] = {
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "headers": headers,
            "status": 0,
        }
        with self._lock:
            self._requests.append(record)

        def respond(status: str, response_headers: list[tuple[str, str]]) -> Any:
            record["status"] = int(status.split()[0])
            return start_response(status, response_headers)

        return self._serve(environ, respond)

    def _serve(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if "X-Amz-Signature" in query and environ.get("HTTP_AUTHORIZATION"):
            return _s3_error(start_response, 400, "InvalidArgument", TWO_AUTH_MECHANISMS)
        if environ["REQUEST_METHOD"] != "GET":
            # The signature covers the method: a URL signed for GET does not open a HEAD or a PUT.
            return _s3_error(
                start_response, 403, "SignatureDoesNotMatch", "The request signature does not match"
            )
        path = environ.get("PATH_INFO", "")
        match = PATH_RE.match(path)
        amz_date, expires, signature = (
            query.get(k, "") for k in ("X-Amz-Date", "X-Amz-Expires", "X-Amz-Signature")
        )
        if (
            not match
            or not signature
            or not hmac.compare_digest(signature, self._sign(path, amz_date, expires))
        ):
            return _s3_error(
                start_response, 403, "SignatureDoesNotMatch", "The request signature does not match"
            )
        try:
            signed_at = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC).timestamp()
            expired = time.time() > signed_at + int(expires)
        except ValueError:
            expired = True
        if expired:
            return _s3_error(start_response, 403, "AccessDenied", "Request has expired")
        registry = self._registry_for(Scope(match["account"], match["region"]))
        conn = registry.connection(timeout=300)
        forwarded = {"Range": environ["HTTP_RANGE"]} if environ.get("HTTP_RANGE") else {}
        conn.request("GET", f"/v2/{match['repo']}/blobs/{match['digest']}", headers=forwarded)
        resp = conn.getresponse()
        if resp.status not in (200, 206):
            resp.read()
            conn.close()
            return _s3_error(start_response, 404, "NoSuchKey", "The specified key does not exist.")
        out = [("Content-Type", "application/octet-stream"), ("x-amz-storage-class", "STANDARD")]
        for name in ("Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Last-Modified"):
            if resp.getheader(name):
                out.append((name, resp.getheader(name)))
        start_response(f"{resp.status} {resp.reason}", out)
        return stream_response(resp, conn)


def _s3_error(start_response: StartResponse, status: int, code: str, message: str) -> list[bytes]:
    """S3's XML error document."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}[status]
    start_response(
        f"{status} {reason}", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    )
    return [body]
