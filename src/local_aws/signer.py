"""AWS Signer's `GetRevocationStatus`, which moto does not implement (it answers 404).

`GET /revocations?signatureTimestamp&platformId&profileVersionArn&jobArn&certificateHashes` (all
required, restJson) answers `{"revokedEntities": [...]}`: those of the given profile version, job
and certificate hashes that are revoked at the signature's time. What is revoked is set through the
control API (`POST /_local/signer/revocations {"entities": [...], "effective": <epoch seconds>}`),
as `RevokeSignature` / `RevokeSigningProfile` / a revoked certificate would on AWS: a profile ARN
revokes all its versions; a signature made before `effective` stays valid (AWS's effectiveTime).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

StartResponse = Any
REVOCATIONS_PATH = "/revocations"
REQUIRED_PARAMETERS = ("signatureTimestamp", "platformId", "profileVersionArn", "jobArn", "certificateHashes")


class SignerRevocations:
    """The revoked entities of the local AWS Signer, and the operation that reads them."""

    def __init__(self) -> None:
        self._revoked: dict[str, float] = {}  # entity -> effective from (epoch seconds)
        self._lock = threading.Lock()

    def revoke(self, entities: Iterable[str], effective: float = 0.0) -> None:
        with self._lock:
            for entity in entities:
                self._revoked[str(entity)] = float(effective)

    def clear(self) -> None:
        with self._lock:
            self._revoked.clear()

    def revoked(self) -> dict[str, float]:
        with self._lock:
            return dict(self._revoked)

    def status(self, query: dict[str, list[str]]) -> list[str]:
        """The revoked entities among those asked about, at the signature's time. Raises ValueError
        for a missing or malformed parameter (AWS: ValidationException)."""
        missing = [name for name in REQUIRED_PARAMETERS if not query.get(name)]
        if missing:
            raise ValueError(f"missing required parameter(s): {', '.join(missing)}")
        at = _timestamp(query["signatureTimestamp"][0])
        profile_version = query["profileVersionArn"][0]
        profile = profile_version.rsplit("/", 1)[0]
        revoked = self.revoked()

        def is_revoked(entity: str) -> bool:
            return entity in revoked and at >= revoked[entity]

        found = [profile_version] if is_revoked(profile_version) or is_revoked(profile) else []
        found += [query["jobArn"][0]] if is_revoked(query["jobArn"][0]) else []
        found += [h for h in query["certificateHashes"] if is_revoked(h)]
        return found

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        try:
            body, status = {"revokedEntities": self.status(query)}, "200 OK"
            headers: list[tuple[str, str]] = []
        except ValueError as exc:
            body, status = {"message": str(exc)}, "400 Bad Request"
            headers = [("x-amzn-ErrorType", "ValidationException")]
        data = json.dumps(body).encode()
        start_response(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("x-amzn-RequestId", str(uuid.uuid4())),
                *headers,
            ],
        )
        return [data]


def _timestamp(value: str) -> float:
    """botocore sends ISO 8601 (restJson query string); epoch seconds are accepted too."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise ValueError(f"signatureTimestamp {value!r} is not a timestamp") from exc
