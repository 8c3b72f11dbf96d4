"""The front server: one loopback port for ECR (ours), `/v2/` (the registry), `/_local/` and moto.

`LocalAws` runs it in-process on a background thread (tests share one per session); the
`promoter local` command runs the same object in the foreground.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import get_input_stream

from local_aws import enforcement
from local_aws import errors as e
from local_aws.accounts import ACCOUNT_ID_RE, access_key_of
from local_aws.blob_host import BlobHost
from local_aws.control import ControlApi, ControlClient
from local_aws.ecr_api import EcrService
from local_aws.events import EventSink
from local_aws.faults import Faults
from local_aws.function_urls import FunctionUrls
from local_aws.latency import LatencyLayer, LatencyModel
from local_aws.policy import Principal
from local_aws.principals import principal_of
from local_aws.proxy import RegistryProxy
from local_aws.registry import RegistryPool
from local_aws.signer import REVOCATIONS_PATH, SignerRevocations
from local_aws.store import Scope, Store

LOG = logging.getLogger(__name__)
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
CREDENTIAL_SCOPE_RE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/")
MAX_JSON_BODY_BYTES = 64 * 1024 * 1024  # a 20 MiB part is ~27 MiB of base64

StartResponse = Any


class FrontApp:
    """Routes each request: ECR JSON API, registry `/v2/`, control `/_local/`, else moto."""

    def __init__(
        self,
        ecr: EcrService,
        proxy: RegistryProxy,
        control: ControlApi,
        faults: Faults,
        account: str,
        region: str,
        revocations: SignerRevocations | None = None,
        function_urls: FunctionUrls | None = None,
    ) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from local_aws import moto_fixes

        moto_fixes.apply()
        enforcement.apply()
        self.ecr = ecr
        self.proxy = proxy
        self.control = control
        self.faults = faults
        self.account = account
        self.region = region
        self.revocations = revocations or SignerRevocations()
        self.function_urls = function_urls or FunctionUrls(account, region)
        self.moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        scope_match = CREDENTIAL_SCOPE_RE.search(authorization)
        if target.startswith(ECR_TARGET_PREFIX) or (scope_match and scope_match["service"] == "ecr"):
            # The registry is the caller's account (from its access key) in the signed region.
            region = scope_match["region"] if scope_match else self.region
            principal = principal_of(access_key_of(authorization), self.account)
            return self.ecr_json(
                environ,
                start_response,
                target[len(ECR_TARGET_PREFIX) :],
                Scope(principal.account, region),
                principal,
            )
        if path == "/v2" or path.startswith("/v2/"):
            return self.proxy(environ, start_response)
        function_url = self.function_urls.find(path) if not target else None
        if function_url is not None:  # a Lambda function URL (local_aws.function_urls)
            return self.function_urls(function_url, environ, start_response)
        if scope_match and scope_match["service"] == "signer" and path == REVOCATIONS_PATH:
            return self.revocations(environ, start_response)  # moto lacks GetRevocationStatus
        if path.startswith("/_local/"):
            return self.control(environ, start_response)
        failure = self.faults.injected(_service_operation(target)) if target else None
        if failure is not None:
            return _service_error(start_response, failure.exception, failure.message)
        principal = principal_of(access_key_of(authorization), self.account)
        sqs_query = not target and bool(scope_match) and scope_match["service"] == "sqs"
        if target in enforcement.CHECKED_TARGETS or sqs_query:
            environ, raw = _buffered(environ)
            checked, params = enforcement.request_of(target, raw, environ.get("QUERY_STRING", ""), path)
            region = scope_match["region"] if scope_match else self.region
            why = enforcement.refusal(checked, params, principal, self.account, region)
            if why is not None:
                return enforcement.refused_reply(start_response, checked, why, query=sqs_query)
        with enforcement.acting_as(principal):
            return self.moto(environ, start_response)

    def ecr_json(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        op: str,
        scope: Scope,
        principal: Principal | None = None,
    ) -> Iterable[bytes]:
        """JSON protocol: 200 with the result, or 400 `{"__type", "message"}` (500 only for our bugs)."""
        try:
            if not op or not EcrService.supports(op):
                raise e.UnknownOperationException(
                    f"Operation {op or '(none)'} is not supported by the local ECR"
                )
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length > MAX_JSON_BODY_BYTES:
                raise e.InvalidParameterException("request body too large")
            raw = _read_body(environ, length)
            try:
                params = json.loads(raw or b"{}")
            except ValueError as exc:
                raise e.SerializationException("The request body is not valid JSON") from exc
            if not isinstance(params, dict):
                raise e.SerializationException("The request body must be a JSON object")
            scope = _registry_scope(scope, params)
            self.faults.admit(op, params)
            result = self.ecr.call(op, scope, params, principal)
            return _reply(start_response, 200, result)
        except e.EcrError as exc:
            body: dict[str, Any] = {"__type": exc.code, "message": exc.message}
            if isinstance(exc, e.InvalidLayerPartException):
                body.update(
                    uploadId=exc.upload_id,
                    lastValidByteReceived=exc.last_valid_byte,
                    registryId=scope.account,
                )
            return _reply(start_response, exc.status, body)
        except Exception as exc:  # a bug of ours: say so, as ECR's ServerException
            LOG.exception("local ECR failed on %s", op)
            return _reply(
                start_response, 500, {"__type": "ServerException", "message": f"local ECR bug: {exc!r}"}
            )


def _registry_scope(caller: Scope, params: dict[str, Any]) -> Scope:
    """A `registryId` names another account's registry (reached through its repository policy,
    which `EcrService.authorize` applies to image writes), else the caller's own."""
    registry_id = params.get("registryId")
    if registry_id is None:
        return caller
    if not isinstance(registry_id, str) or not ACCOUNT_ID_RE.fullmatch(registry_id):
        raise e.InvalidParameterException(
            f"Invalid parameter at 'registryId': {registry_id!r} is not 12 digits"
        )
    return Scope(registry_id, caller.region)


def _buffered(environ: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The request's body, read (for a policy check) and put back for moto."""
    raw = _read_body(environ, int(environ.get("CONTENT_LENGTH") or 0))
    return {**environ, "wsgi.input": io.BytesIO(raw)}, raw


def _read_body(environ: dict[str, Any], length: int) -> bytes:
    """The request body. With a Content-Length (botocore always sends one), one read of exactly
    that many bytes: werkzeug's LimitedStream.read(n) allocates n bytes up front (64 MiB at our
    cap, for every call) and copies the body twice more; a 13 MB UploadLayerPart paid for that."""
    if length:
        return environ["wsgi.input"].read(length)
    return get_input_stream(environ).read(MAX_JSON_BODY_BYTES + 1)


# X-Amz-Target prefixes of the moto services, as fault names use them (`DynamoDB.PutItem`).
SERVICE_TARGET_NAMES = {"DynamoDB_20120810": "DynamoDB", "AmazonSQS": "SQS", "AWSEvents": "EventBridge"}
# Error codes the AWS JSON protocols answer with HTTP 5xx (botocore retries those, as it does
# throttling codes such as ProvisionedThroughputExceededException answered with 400).
SERVER_ERROR_CODES = frozenset({"InternalServerError", "InternalFailure", "ServiceUnavailable"})


def _service_operation(target: str) -> str:
    """`DynamoDB_20120810.PutItem` -> `DynamoDB.PutItem`."""
    prefix, _, operation = target.partition(".")
    return f"{SERVICE_TARGET_NAMES.get(prefix, prefix)}.{operation}"


def _service_error(start_response: StartResponse, code: str, message: str) -> list[bytes]:
    """An injected failure of a moto service, in the JSON protocols' error shape."""
    status = 500 if code in SERVER_ERROR_CODES else 400
    return _reply(start_response, status, {"__type": code, "message": message})


def _reply(start_response: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 500: "Internal Server Error"}[status]
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Content-Length", str(len(data))),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ],
    )
    return [data]


class RegistryApp:
    """The registry endpoint of one more account or region: its `/v2/`.

    On AWS each registry has its own host (`<account>.dkr.ecr.<region>.amazonaws.com`); here each
    gets its own loopback port, which `GetAuthorizationToken` returns as its `proxyEndpoint`.
    """

    def __init__(self, proxy: RegistryProxy) -> None:
        self.proxy = proxy

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/v2" or path.startswith("/v2/"):
            return self.proxy(environ, start_response)
        return _reply(
            start_response,
            400,
            {"__type": "UnknownOperationException", "message": "a registry endpoint serves /v2/ only"},
        )


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (tests make thousands)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        # skopeo probes TLS before plain HTTP; that handshake (a record starting 0x16 0x03) is
        # noise, not an error, whether the parser calls it a bad version or a bad syntax.
        text = message % args
        if type == "error" and not ("Bad request version" in text or "\\x16\\x03" in text):
            super().log(type, message, *args)


class LocalAws:
    """The whole local AWS; `start()` returns once every part answers.

    `data_dir=None` uses a temporary directory removed by `stop()`; `rates` maps ECR operations to
    calls per second; `latency` is an AWS-like latency model (`latency.parse_latency("aws")`), also
    switched at run time through the control API. Tables the engine expects (see `tables.py`) are
    created on start. `persist=True` (with a `data_dir`) keeps moto's tables, queues and buses
    there across a restart (`persistence.py`): restored on start, saved on stop.
    """

    def __init__(
        self,
        port: int = 0,
        data_dir: str | Path | None = None,
        rates: dict[str, float] | None = None,
        account: str = DEFAULT_ACCOUNT,
        region: str = DEFAULT_REGION,
        latency: LatencyModel | None = None,
        persist: bool = False,
    ) -> None:
        if persist and not data_dir:
            raise ValueError("persist=True needs a data_dir to keep the state in")
        self.requested_port = port
        self.data_dir = Path(data_dir) if data_dir else None
        self.persist = persist
        self._restored = False  # save on stop only what a start restored (or began from nothing)
        self.account = account
        self.region = region
        self.faults = Faults(rates)
        self.latency = LatencyLayer(latency)
        self.port = 0
        self._temp_dir: Path | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._registries: RegistryPool | None = None
        self._store: Store | None = None
        self._blob_host: BlobHost | None = None
        self.ecr: EcrService | None = None
        # Lambda function URLs served on the front port (`function_urls.add`, e.g. the approvals').
        self.function_urls = FunctionUrls(account, region)
        # Registry endpoints of other accounts and regions, started on first use.
        self._endpoints: dict[Scope, BaseWSGIServer] = {}
        self._endpoints_lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def control(self) -> ControlClient:
        return ControlClient(self.endpoint)

    @property
    def registry_host(self) -> str:
        """host:port for registry clients (skopeo `docker://HOST/repo:tag`)."""
        return f"127.0.0.1:{self.port}"

    @property
    def password(self) -> str:
        assert self.ecr is not None, "not started"
        return self.ecr.password

    def endpoint_for(self, scope: Scope) -> str:
        """The registry endpoint of an account and region: the front port for the home registry,
        a port of its own (started now, if new) for any other."""
        if scope == Scope(self.account, self.region):
            return self.endpoint
        assert self.ecr is not None and self._registries is not None, "not started"
        with self._endpoints_lock:
            server = self._endpoints.get(scope)
            if server is None:
                proxy = RegistryProxy(
                    self.ecr, self._registries.get(scope.account, scope.region), scope, self.faults
                )
                server = make_server(
                    "127.0.0.1",
                    0,
                    self.latency.wrap(RegistryApp(proxy)),
                    threaded=True,
                    request_handler=_QuietHandler,
                )
                threading.Thread(
                    target=server.serve_forever, name=f"registry-{scope.account}-{scope.region}", daemon=True
                ).start()
                self._endpoints[scope] = server
        return f"http://127.0.0.1:{server.server_port}"

    def start(self) -> LocalAws:
        if self.account != DEFAULT_ACCOUNT:
            os.environ["MOTO_ACCOUNT_ID"] = self.account  # moto reads it per request
        if self.data_dir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="local-aws-"))
            data_dir = self._temp_dir
        else:
            data_dir = self.data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._store = Store(data_dir / "ecr.sqlite3")
            password = self._store.secret("registry-password", secrets.token_urlsafe(24))
            self._registries = RegistryPool(data_dir, (self.account, self.region))
            home = self._registries.start()
            scope = Scope(self.account, self.region)
            registries = self._registries
            self._blob_host = BlobHost(
                lambda s: registries.get(s.account, s.region),
                self._store.secret("blob-host", secrets.token_hex(32)),
            ).start(_QuietHandler, wrap=lambda app: self.latency.wrap(app, ("BlobHost", "GET"), paced=True))
            self.ecr = EcrService(
                self._store, self._registries, EventSink(), self.endpoint_for, password, self._blob_host
            )
            revocations = SignerRevocations()
            app = FrontApp(
                self.ecr,
                RegistryProxy(self.ecr, home, scope, self.faults),
                ControlApi(self.faults, self._store, scope, self.ecr, revocations, self.latency),
                self.faults,
                self.account,
                self.region,
                revocations,
                self.function_urls,
            )
            # Bound here, not by werkzeug: on a busy port werkzeug prints its own advice and calls
            # sys.exit; an OSError (EADDRINUSE) lets the caller say which flag to pass.
            with socket.create_server(("127.0.0.1", self.requested_port)) as listener:
                self._server = make_server(
                    "127.0.0.1",
                    self.requested_port,
                    self.latency.wrap(app),
                    threaded=True,
                    request_handler=_QuietHandler,
                    fd=listener.fileno(),
                )
            self.port = self._server.server_address[1]  # no server_port: werkzeug did not bind it
            if self.persist:
                from local_aws import persistence

                persistence.restore(data_dir)
                self._restored = True
            self._thread = threading.Thread(target=self._server.serve_forever, name="local-aws", daemon=True)
            self._thread.start()
            from local_aws.tables import create_default_tables

            create_default_tables(self.endpoint, self.region)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, stop the registry children, remove the temporary data dir (idempotent)."""
        if self._server is not None:
            if self._thread is not None:  # shutdown() waits for a serve_forever that never began
                self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._restored and self.data_dir is not None:
            from local_aws import persistence

            self._restored = False
            try:
                persistence.save(self.data_dir)
            except Exception:  # the registries must still stop: say it, then go on stopping
                LOG.exception("could not save the local AWS state into %s", self.data_dir)
        with self._endpoints_lock:
            endpoints, self._endpoints = list(self._endpoints.values()), {}
        for server in endpoints:
            server.shutdown()
            server.server_close()
        if self._blob_host is not None:
            self._blob_host.stop()
            self._blob_host = None
        if self._registries is not None:
            self._registries.stop()
            self._registries = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
