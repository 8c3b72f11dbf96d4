"""An AWS-like latency model for the local AWS: per-operation delays and a per-connection blob
throughput, applied in the server's request threads (the client sees them as it would see AWS's).

Every request the local AWS serves is named by what it is: an ECR JSON operation by its name
(`PutImage`), a registry request as `Registry.<METHOD>`, a blob download from the S3 stand-in as
`BlobHost.GET`, a moto service call as `<Service>.<Operation>` (`DynamoDB.PutItem`,
`SQS.ReceiveMessage`, `EventBridge.PutEvents`). A model maps names to milliseconds: the exact name
first, then the service (`ECR` for every ECR operation, `Registry`, `BlobHost`, `DynamoDB`, ...).
`blob_mbps` paces request and response bodies of the registry and the blob host to that many
MB/s per request (one request at a time per connection, so per connection).

The `aws` preset and where each number comes from are in BENCHMARKS.md ("The latency model").
The layer also counts every request by name (with or without a model), which is how the bench
counts `/v2` requests per copied blob.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

StartResponse = Any
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
# X-Amz-Target prefixes of the moto services, as the model names them.
SERVICE_TARGET_NAMES = {
    "DynamoDB_20120810": "DynamoDB",
    "AmazonSQS": "SQS",
    "AWSEvents": "EventBridge",
    "TrentService": "KMS",
}
# Services a model may name (ECR's own operations are named without a service).
SERVICES = frozenset({"ECR", "Registry", "BlobHost", "DynamoDB", "SQS", "EventBridge", "STS", "KMS"})
CREDENTIAL_SCOPE_RE = re.compile(r"Credential=[^/]+/\d{8}/[a-z0-9-]+/(?P<service>[a-z0-9-]+)/")
SCOPE_SERVICE_NAMES = {"sts": "STS", "dynamodb": "DynamoDB", "sqs": "SQS", "events": "EventBridge"}
MAX_LATENCY_MS = 60_000.0
MAX_BLOB_MBPS = 100_000.0
BLOB_MBPS_KEY = "blob_mbps"
MB = 1_000_000

# The `aws` preset (BENCHMARKS.md, "The latency model", gives the source or the assumption of each).
AWS_PRESET_MS: dict[str, float] = {
    "ECR": 50.0,  # assumed: ECR publishes no latency; a regional JSON API call from Lambda
    "PutImage": 150.0,  # assumed: ECR checks every referenced blob or child before it answers
    "Registry": 50.0,  # assumed: ECR's registry endpoint, same front as the API
    "Registry.PUT": 150.0,  # assumed: a manifest PUT is a PutImage; a blob PUT commits the upload
    "BlobHost": 30.0,  # S3: small requests' median latency "in the tens of milliseconds"
    "DynamoDB": 10.0,  # DynamoDB: "single-digit millisecond" GetItem/PutItem, + in-region network
    "SQS": 16.0,  # SQS standard queue: 16 ms median measured through Lambda's poller (eu-west-1)
    "EventBridge": 30.0,  # assumed: PutEvents call (delivery to a target is ~150 ms more, not modelled)
    "STS": 30.0,  # assumed
    "KMS": 50.0,  # assumed: KMS publishes quotas, not latencies; Sign with an ECC key (attestations)
}
AWS_PRESET_BLOB_MBPS = 85.0  # S3: "one concurrent request for each 85-90 MB/s"


@dataclass(frozen=True)
class LatencyModel:
    """Milliseconds per operation name (exact, or a service's default) and a blob throughput."""

    ms: dict[str, float] = field(default_factory=dict)
    blob_mbps: float | None = None

    def delay_ms(self, service: str, operation: str) -> float:
        """The delay for one request of `service` (ECR ops are looked up by their bare name)."""
        exact = operation if service == "ECR" else f"{service}.{operation}"
        if exact in self.ms:
            return self.ms[exact]
        return self.ms.get(service, 0.0)

    def to_json(self) -> dict[str, Any]:
        return {"ms": dict(self.ms), BLOB_MBPS_KEY: self.blob_mbps}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> LatencyModel:
        """The control API's body: `{"spec": "aws,PutImage=300"}` or `{"ms": {...}, "blob_mbps": N}`.
        Raises ValueError for anything `parse_latency` refuses."""
        if "spec" in body:
            return parse_latency(str(body["spec"]))
        ms = body.get("ms") or {}
        if not isinstance(ms, dict):
            raise ValueError("ms must be a JSON object of operation -> milliseconds")
        items = [f"{op}={value}" for op, value in ms.items()]
        if body.get(BLOB_MBPS_KEY) is not None:
            items.append(f"{BLOB_MBPS_KEY}={body[BLOB_MBPS_KEY]}")
        return parse_latency(",".join(items)) if items else cls()


def aws_preset() -> LatencyModel:
    return LatencyModel(dict(AWS_PRESET_MS), AWS_PRESET_BLOB_MBPS)


def parse_latency(spec: str) -> LatencyModel:
    """`aws`, `OP=MS[,OP=MS...]`, or both (`aws,PutImage=300`: the preset with overrides);
    `blob_mbps=N` sets the throughput. Raises ValueError naming the bad item."""
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip() or any(not item for item in items):
        raise ValueError(f"latency {spec!r} is not 'aws' or OP=MS[,OP=MS...] (an item is empty)")
    ms: dict[str, float] = {}
    blob_mbps: float | None = None
    for item in items:
        if item == "aws":
            preset = aws_preset()
            ms.update(preset.ms)
            blob_mbps = preset.blob_mbps
            continue
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"latency item {item!r} is not OP=MS (e.g. PutImage=200) or 'aws'")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"latency item {item!r}: {raw!r} is not a number") from None
        if name == BLOB_MBPS_KEY:
            if not 0 < value <= MAX_BLOB_MBPS:
                raise ValueError(
                    f"latency item {item!r}: {BLOB_MBPS_KEY} must be > 0 and <= {MAX_BLOB_MBPS:g}"
                )
            blob_mbps = value
            continue
        _check_name(name, item)
        if not 0 <= value <= MAX_LATENCY_MS:
            raise ValueError(f"latency item {item!r}: milliseconds must be 0 to {MAX_LATENCY_MS:g}")
        ms[name] = value
    return LatencyModel(ms, blob_mbps)


def _check_name(name: str, item: str) -> None:
    """A service (`DynamoDB`), a service's operation (`DynamoDB.PutItem`, `Registry.PATCH`), or an
    ECR operation the local ECR serves (`PutImage`): a typo is refused, never silently ignored."""
    from local_aws.ecr_api import EcrService

    service, dot, operation = name.partition(".")
    if service in SERVICES and (not dot or re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", operation)):
        return
    if not dot and EcrService.supports(name):
        return
    raise ValueError(
        f"latency item {item!r}: {name!r} is neither an ECR operation nor one of "
        f"{sorted(SERVICES)} (optionally .Operation)"
    )


def classify(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(service, operation) of a request on the front port; None for the control API."""
    path = environ.get("PATH_INFO", "")
    if path.startswith("/_local/"):
        return None
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith(ECR_TARGET_PREFIX):
        return "ECR", target[len(ECR_TARGET_PREFIX) :]
    if path == "/v2" or path.startswith("/v2/"):
        return "Registry", environ.get("REQUEST_METHOD", "GET")
    if target:
        prefix, _, operation = target.partition(".")
        return SERVICE_TARGET_NAMES.get(prefix, prefix), operation
    scope = CREDENTIAL_SCOPE_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = scope["service"] if scope else "unknown"
    if service == "ecr":
        return "ECR", "unknown"
    return SCOPE_SERVICE_NAMES.get(service, service), "request"


class LatencyLayer:
    """The model and its bookkeeping, shared by every server of one local AWS. Thread-safe."""

    def __init__(
        self, model: LatencyModel | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._lock = threading.Lock()
        self._model = model or LatencyModel()
        self._sleep = sleep
        self._requests: Counter[str] = Counter()
        self._applied_ms: Counter[str] = Counter()

    @property
    def model(self) -> LatencyModel:
        with self._lock:
            return self._model

    def set_model(self, model: LatencyModel | None) -> None:
        """Switch the model (None: no latency); what was applied so far is forgotten."""
        with self._lock:
            self._model = model or LatencyModel()
            self._applied_ms.clear()

    def requests(self) -> dict[str, int]:
        """Requests served per name (`PutImage`, `Registry.PATCH`, `BlobHost.GET`, ...)."""
        with self._lock:
            return dict(self._requests)

    def applied(self) -> dict[str, float]:
        """Milliseconds of delay applied per name since the model was set."""
        with self._lock:
            return {name: round(ms, 3) for name, ms in self._applied_ms.items()}

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def wrap(self, app: WsgiApp, fixed: tuple[str, str] | None = None, paced: bool = False) -> WsgiApp:
        """`app` behind the model: each request is named (`fixed`, else `classify`), counted, delayed
        by its latency before it is served, and, if it is a blob transfer (`paced`, or a registry
        request with a body), its bodies paced to the model's throughput."""

        def layered(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            kind = fixed or classify(environ)
            if kind is None:
                return app(environ, start_response)
            service, operation = kind
            name = operation if service == "ECR" else f"{service}.{operation}"
            with self._lock:
                model = self._model
                self._requests[name] += 1
                delay = model.delay_ms(service, operation)
                if delay:
                    self._applied_ms[name] += delay
            if delay:
                self._sleep(delay / 1000)
            if not model.blob_mbps or not (paced or service == "Registry"):
                return app(environ, start_response)
            rate = model.blob_mbps * MB
            if environ.get("CONTENT_LENGTH") or environ.get("HTTP_TRANSFER_ENCODING"):
                environ = dict(environ)
                environ["wsgi.input"] = PacedReader(environ["wsgi.input"], rate, self._sleep)
            body = app(environ, start_response)
            return _paced(body, rate, self._sleep) if paced else body

        return layered


class Pace:
    """Keeps a byte stream at or under `bytes_per_second`: after each piece, sleeps for as long
    as the stream is ahead of the rate. `clock` and `sleep` are injectable for tests."""

    def __init__(
        self,
        bytes_per_second: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = bytes_per_second
        self._sleep = sleep
        self._clock = clock
        self._start: float | None = None
        self.sent = 0

    def after(self, size: int) -> None:
        if self._start is None:
            self._start = self._clock()
        self.sent += size
        ahead = self.sent / self.rate - (self._clock() - self._start)
        if ahead > 0:
            self._sleep(ahead)


class PacedReader:
    """A WSGI input stream read no faster than the model's throughput (uploads)."""

    def __init__(self, stream: Any, rate: float, sleep: Callable[[float], None]) -> None:
        self._stream = stream
        self._pace = Pace(rate, sleep)

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._pace.after(len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._stream.readline(size)
        self._pace.after(len(data))
        return data

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


def _paced(body: Iterable[bytes], rate: float, sleep: Callable[[float], None]) -> Iterator[bytes]:
    """A response body sent no faster than `rate` bytes a second (downloads)."""
    pace = Pace(rate, sleep)
    try:
        for chunk in body:
            yield chunk
            pace.after(len(chunk))
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
