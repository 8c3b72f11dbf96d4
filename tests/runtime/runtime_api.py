"""A small stand-in for the Lambda Runtime API (2018-06-01), enough for the real runtime interface
client (`awslambdaric`) to run a function as Lambda does: one invocation at a time.

  GET  /2018-06-01/runtime/invocation/next              -> the next event, with its request id,
                                                           deadline and function ARN headers
  POST /2018-06-01/runtime/invocation/<id>/response     -> the function's result
  POST /2018-06-01/runtime/invocation/<id>/error        -> the function's error (errorType, ...)
  POST /2018-06-01/runtime/init/error                   -> the function could not start

`invoke` queues an event and waits for its answer. Not a test file: the harness imports it.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_VERSION = "2018-06-01"
_ANSWER = re.compile(rf"^/{API_VERSION}/runtime/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")


@dataclass(frozen=True)
class Answer:
    """What the function answered: `kind` is "response", "error" or "init_error"."""

    kind: str
    payload: Any
    error_type: str | None = None


class RuntimeApiStandIn:
    """The Runtime API on a loopback port; `address` is what AWS_LAMBDA_RUNTIME_API takes."""

    def __init__(self, function_arn: str) -> None:
        self.function_arn = function_arn
        self._events: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        self._answers: dict[str, queue.Queue[Answer]] = {}
        self._init_errors: queue.Queue[Answer] = queue.Queue()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> RuntimeApiStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: Any, timeout_seconds: float, wait_seconds: float) -> Answer:
        """Hands `event` to the next `/next` call; returns the answer, or the init error if the
        function could not start. `timeout_seconds` is the function's (its deadline header);
        `wait_seconds` bounds how long the test waits for an answer (a hung harness, not timing)."""
        request_id = str(uuid.uuid4())
        answers: queue.Queue[Answer] = queue.Queue()
        with self._lock:
            self._answers[request_id] = answers
        deadline_ms = int((time.time() + timeout_seconds) * 1000)
        self._events.put((request_id, json.dumps(event).encode(), deadline_ms))
        end = time.monotonic() + wait_seconds
        while time.monotonic() < end:
            try:
                return self._init_errors.get_nowait()
            except queue.Empty:
                pass
            try:
                return answers.get(timeout=0.2)
            except queue.Empty:
                continue
        raise TimeoutError(f"no answer to invocation {request_id} in {wait_seconds} s")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:
                if self.path != f"/{API_VERSION}/runtime/invocation/next":
                    self._reply(404, b'{"errorMessage": "unknown path"}')
                    return
                request_id, body, deadline_ms = api._events.get()  # long poll, as Lambda's
                self._reply(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
                    },
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                payload = json.loads(raw) if raw else None
                error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                if self.path == f"/{API_VERSION}/runtime/init/error":
                    api._init_errors.put(Answer("init_error", payload, error_type))
                    self._reply(202, b'{"status": "OK"}')
                    return
                match = _ANSWER.match(self.path)
                with api._lock:
                    answers = api._answers.get(match["id"]) if match else None
                if answers is None:
                    self._reply(404, b'{"errorMessage": "unknown invocation"}')
                    return
                answers.put(Answer(match["kind"], payload, error_type))
                self._reply(202, b'{"status": "OK"}')

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler
