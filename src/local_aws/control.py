"""`/_local/...`: the control API (faults, rates, call counts, scan findings) and its client.

Tests drive the local AWS through these instead of reaching into its objects, so the same calls
work against a `promoter local` running in another process.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from local_aws.faults import Faults
from local_aws.latency import LatencyLayer, LatencyModel
from local_aws.signer import SignerRevocations
from local_aws.store import Scope, Store

if TYPE_CHECKING:
    from local_aws.ecr_api import EcrService

StartResponse = Any


class ControlError(RuntimeError):
    """The control API refused a request (message from the server)."""


class ControlApi:
    """WSGI handler for `/_local/<what>`; JSON in and out."""

    def __init__(
        self,
        faults: Faults,
        store: Store,
        scope: Scope,
        ecr: EcrService | None = None,
        revocations: SignerRevocations | None = None,
        latency: LatencyLayer | None = None,
    ) -> None:
        self.faults = faults
        self.latency = latency or LatencyLayer()
        self.store = store
        self.scope = scope
        self.ecr = ecr
        self.revocations = revocations or SignerRevocations()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")[len("/_local/") :].rstrip("/")
        method = environ["REQUEST_METHOD"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            result = self._route(method, path, body)
        except (ValueError, KeyError, TypeError) as exc:
            return _reply(start_response, 400, {"error": f"{type(exc).__name__}: {exc}"})
        if result is None:
            return _reply(start_response, 404, {"error": f"no control route {method} /_local/{path}"})
        return _reply(start_response, 200, result)

    def _route(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if path == "health" and method == "GET":
            return {"ok": True}
        if path == "calls" and method == "GET":
            return {"calls": self.faults.calls()}
        if path == "calls" and method == "DELETE":
            self.faults.reset_calls()
            return {"calls": {}}
        if path == "fail-next" and method == "POST":
            count = int(body.get("count", 1))
            if count < 1:
                raise ValueError("count must be >= 1")
            self.faults.fail_next(
                str(body["op"]),
                str(body["exception"]),
                count,
                str(body.get("message", "")),
                _match(body),
            )
            return {"ok": True}
        if path == "fail-for" and method == "POST":
            seconds = float(body["seconds"])
            if seconds <= 0:
                raise ValueError("seconds must be > 0")
            self.faults.fail_for(
                str(body["op"]), str(body["exception"]), seconds, str(body.get("message", "")), _match(body)
            )
            return {"ok": True}
        if path == "calls/by-repository" and method == "GET":
            return {"calls": self.faults.calls_by_repository()}
        if path == "rates" and method == "POST":
            for op, rate in body.items():
                self.faults.set_rate(op, None if rate is None else float(rate))
            return {"rates": self.faults.rates()}
        if path == "rates" and method == "GET":
            return {"rates": self.faults.rates()}
        if path == "latency":
            if method == "POST":
                self.latency.set_model(LatencyModel.from_json(body))
            elif method == "DELETE":
                self.latency.set_model(None)
            elif method != "GET":
                return None
            return {"model": self.latency.model.to_json(), "applied_ms": self.latency.applied()}
        if path == "requests" and method == "GET":
            return {"requests": self.latency.requests()}
        if path == "requests" and method == "DELETE":
            self.latency.reset_requests()
            return {"requests": {}}
        if path == "faults" and method == "DELETE":
            self.faults.clear()
            if self.ecr is not None:  # the restore period is a test knob too: back to the default
                from local_aws.ecr_api import DEFAULT_RESTORE_SECONDS

                self.ecr.restore_seconds = DEFAULT_RESTORE_SECONDS
            return {"ok": True}
        if path == "blob-host/requests" and self.ecr is not None:
            if method == "GET":
                return {"requests": self.ecr.blob_host.requests()}
            if method == "DELETE":
                self.ecr.blob_host.reset_requests()
                return {"requests": []}
        if path == "archive" and method == "POST" and self.ecr is not None:
            seconds = float(body["restoreSeconds"])
            if seconds < 0:
                raise ValueError("restoreSeconds must be >= 0")
            self.ecr.restore_seconds = seconds
            return {"restoreSeconds": seconds}
        if path == "archive" and method == "GET" and self.ecr is not None:
            return {"restoreSeconds": self.ecr.restore_seconds}
        if path == "archive/finish-restores" and method == "POST":
            return {"finished": self.store.finish_restores(time.time())}
        if path == "scan-findings" and method == "POST":
            scope = Scope(body.get("account", self.scope.account), body.get("region", self.scope.region))
            findings = body.get("findings", [])
            if not isinstance(findings, list):
                raise ValueError("findings must be a list")
            repository, digest = str(body["repositoryName"]), str(body["imageDigest"])
            if self.ecr is None:
                self.store.set_findings(scope, repository, digest, findings)
                return {"ok": True, "scanned": False}
            # A scanner finishing: the image's scan completes with these and its event is sent.
            return {"ok": True, "scanned": self.ecr.complete_scan(scope, repository, digest, findings)}
        if path == "signer/revocations" and method == "POST":
            entities = body["entities"]
            if not isinstance(entities, list) or not all(isinstance(e, str) and e for e in entities):
                raise ValueError("entities must be a list of ARNs or certificate hashes")
            self.revocations.revoke(entities, float(body.get("effective", 0.0)))
            return {"revoked": self.revocations.revoked()}
        if path == "signer/revocations" and method == "DELETE":
            self.revocations.clear()
            return {"revoked": {}}
        return None


def _match(body: dict[str, Any]) -> dict[str, Any]:
    match = body.get("match") or {}
    if not isinstance(match, dict):
        raise ValueError("match must be a JSON object of request parameters")
    return match


def _reply(start_response: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    start_response(
        f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


class ControlClient:
    """A small client for the control API of a local AWS at `endpoint`."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.endpoint}/_local/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ControlError(
                f"{method} /_local/{path}: {exc.code} {exc.read().decode(errors='replace')}"
            ) from exc

    def fail_next(
        self,
        op: str,
        exception: str,
        count: int = 1,
        message: str = "",
        match: dict[str, Any] | None = None,
    ) -> None:
        """The next `count` calls of `op` fail with `exception`: an ECR operation (`PutImage`) or
        a moto one (`DynamoDB.PutItem`); `match` limits it to ECR requests with these parameters."""
        body = {"op": op, "exception": exception, "count": count, "message": message}
        self._call("POST", "fail-next", {**body, "match": match or {}})

    def fail_for(
        self, op: str, exception: str, seconds: float, message: str = "", match: dict[str, Any] | None = None
    ) -> None:
        """Every call of `op` fails with `exception` for `seconds` (e.g. DynamoDB unavailable)."""
        body = {"op": op, "exception": exception, "seconds": seconds, "message": message}
        self._call("POST", "fail-for", {**body, "match": match or {}})

    def calls(self) -> dict[str, int]:
        """ECR calls per operation since the last reset."""
        return self._call("GET", "calls")["calls"]

    def calls_by_repository(self) -> dict[str, dict[str, int]]:
        """ECR calls per operation and repository since the last reset (PutImage per target)."""
        return self._call("GET", "calls/by-repository")["calls"]

    def reset_calls(self) -> None:
        self._call("DELETE", "calls")

    def set_rate(self, op: str, rate: float | None) -> None:
        """Limit `op` to `rate` calls a second (None removes the limit)."""
        self._call("POST", "rates", {op: rate})

    def rates(self) -> dict[str, float]:
        return self._call("GET", "rates")["rates"]

    def set_latency(self, spec: str | None) -> dict[str, Any]:
        """Switch the latency model: `aws`, `OP=MS[,...]` (see `local_aws.latency`), None for none.
        Returns the model now in force."""
        if spec is None:
            return self._call("DELETE", "latency")["model"]
        return self._call("POST", "latency", {"spec": spec})["model"]

    def latency(self) -> dict[str, Any]:
        """The model in force (`model`) and the milliseconds applied per operation (`applied_ms`)."""
        return self._call("GET", "latency")

    def requests(self) -> dict[str, int]:
        """Every request served since the last reset, per name: ECR operations (`PutImage`),
        `Registry.<METHOD>` (/v2), `BlobHost.GET` (downloads), `DynamoDB.PutItem`, ..."""
        return self._call("GET", "requests")["requests"]

    def reset_requests(self) -> None:
        self._call("DELETE", "requests")

    def clear_faults(self) -> None:
        """Drop all injected failures and rate limits, and put the restore period back."""
        self._call("DELETE", "faults")

    def blob_host_requests(self) -> list[dict[str, Any]]:
        """What the blob download host (the S3 stand-in) received since the last reset: each
        request's method, path, header names (lower case) and answered status."""
        return self._call("GET", "blob-host/requests")["requests"]

    def reset_blob_host_requests(self) -> None:
        self._call("DELETE", "blob-host/requests")

    def revoke_signatures(self, entities: list[str], effective: float = 0.0) -> None:
        """AWS Signer revokes these (signing profile or profile version ARNs, signing job ARNs,
        certificate hashes) for signatures made at or after `effective` (epoch seconds)."""
        self._call("POST", "signer/revocations", {"entities": entities, "effective": effective})

    def clear_revocations(self) -> None:
        self._call("DELETE", "signer/revocations")

    def set_restore_seconds(self, seconds: float) -> None:
        """How long a restore from the archive (UpdateImageStorageClass STANDARD) stays ACTIVATING;
        0 restores at once. ECR takes up to 20 minutes; the local default is a minute."""
        self._call("POST", "archive", {"restoreSeconds": seconds})

    def restore_seconds(self) -> float:
        return float(self._call("GET", "archive")["restoreSeconds"])

    def finish_restores(self) -> int:
        """Every restore in progress completes now; returns how many did."""
        return int(self._call("POST", "archive/finish-restores", {})["finished"])

    def set_scan_findings(
        self,
        repository: str,
        digest: str,
        findings: list[dict[str, Any]],
        account: str | None = None,
        region: str | None = None,
    ) -> bool:
        """The scan of `repository@digest` completes with `findings` and sends its `ECR Image Scan`
        event; True when the image is there, False when the findings wait for its push and scan."""
        body: dict[str, Any] = {"repositoryName": repository, "imageDigest": digest, "findings": findings}
        if account:
            body["account"] = account
        if region:
            body["region"] = region
        return bool(self._call("POST", "scan-findings", body).get("scanned"))
