"""The real OCI registry behind the local ECR: a `docker-registry` child process, and a client.

Blobs and manifests live only here (filesystem storage in the data dir). Distribution links blobs per
repository, which is exactly ECR's "layers are per repository" rule, and it validates manifests
(MANIFEST_BLOB_UNKNOWN, DIGEST_INVALID) as ECR does.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGISTRY_BINARY = "docker-registry"
# docker-registry takes any variable with this prefix as configuration (distribution's env overrides).
REGISTRY_ENV_PREFIX = "REGISTRY_"
INSTALL_HINT = "apt-get install docker-registry skopeo"
START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 5.0
# How much of a body is read or relayed at a time (blobs are streamed, never held whole).
CHUNK_BYTES = 64 * 1024

CONFIG_TEMPLATE = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  relativeurls: true
  secret: {secret}
"""


class RegistryNotInstalledError(RuntimeError):
    """docker-registry is not on PATH."""


class RegistryStartError(RuntimeError):
    """The registry process did not become ready."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class RegistryResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def error_codes(self) -> list[str]:
        """The distribution error codes in an error body (e.g. MANIFEST_BLOB_UNKNOWN)."""
        try:
            return [e.get("code", "") for e in json.loads(self.body).get("errors", [])]
        except (ValueError, AttributeError):
            return []


def stream_response(resp: Any, conn: Any) -> Iterator[bytes]:
    """Relays a registry response's body (`http.client.HTTPResponse`) in chunks, then closes its
    connection, also when the client stops reading early."""
    try:
        while chunk := resp.read(CHUNK_BYTES):
            yield chunk
    finally:
        conn.close()


def registry_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The child's environment without `REGISTRY_*`: docker-registry reads every such variable as
    a setting of its own (`REGISTRY_AUTH_FILE`, which podman and skopeo users often export, made it
    exit at start), and its whole configuration is the file we write."""
    return {key: value for key, value in environ.items() if not key.startswith(REGISTRY_ENV_PREFIX)}


class RegistryProcess:
    """Starts and stops one docker-registry on a free loopback port, storing under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which(REGISTRY_BINARY)
        if binary is None:
            raise RegistryNotInstalledError(
                f"{REGISTRY_BINARY} is not installed; install it with: {INSTALL_HINT}"
            )
        root = self.data_dir / "registry"
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = self.data_dir / "registry-config.yml"
        config.write_text(CONFIG_TEMPLATE.format(root=root, port=self.port, secret=secrets.token_hex(16)))
        self._log = open(self.data_dir / "registry.log", "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=registry_environment(os.environ),
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RegistryStartError(
                    f"docker-registry exited with {self._proc.returncode}; see {self.data_dir}/registry.log"
                )
            try:
                if self.request("GET", "/v2/").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RegistryStartError(f"docker-registry not ready within {START_TIMEOUT_SECONDS}s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def connection(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> RegistryResponse:
        """One buffered request (for small bodies: manifests, checks, upload bookkeeping)."""
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return RegistryResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def upload_size(self, repo: str, upload_uuid: str) -> int:
        """Bytes an open upload holds, read from the filesystem storage (the upload status API's
        `Range: 0-0` says the same for 0 and 1 bytes)."""
        data = self.data_dir / "registry" / "docker" / "registry" / "v2" / "repositories" / repo / "_uploads"
        try:
            return (data / upload_uuid / "data").stat().st_size
        except OSError:
            return 0

    def has_blob(self, repo: str, digest: str) -> bool:
        return self.request("HEAD", f"/v2/{repo}/blobs/{digest}").status == 200

    def put_manifest(self, repo: str, digest: str, raw: bytes, media_type: str) -> RegistryResponse:
        return self.request("PUT", f"/v2/{repo}/manifests/{digest}", raw, {"Content-Type": media_type})

    def delete_manifest(self, repo: str, digest: str) -> RegistryResponse:
        return self.request("DELETE", f"/v2/{repo}/manifests/{digest}")


class RegistryPool:
    """One docker-registry per ECR registry (account and region), each started on first use.

    In ECR a blob pushed in one account is not visible in another: separate processes (and
    storage roots) make that true here too, so a cross-account copy has to move the bytes.
    The home registry keeps `data_dir` itself, as before; others live under `registries/`.
    """

    def __init__(self, data_dir: Path, home: tuple[str, str]) -> None:
        self.data_dir = data_dir
        self.home = home
        self._registries: dict[tuple[str, str], RegistryProcess] = {}
        self._lock = threading.Lock()

    def start(self) -> RegistryProcess:
        """Starts the home registry (the others start when first asked for)."""
        return self.get(*self.home)

    def get(self, account: str, region: str) -> RegistryProcess:
        key = (account, region)
        with self._lock:
            registry = self._registries.get(key)
            if registry is None:
                data_dir = self.data_dir if key == self.home else self.data_dir / "registries" / "-".join(key)
                data_dir.mkdir(parents=True, exist_ok=True)
                registry = RegistryProcess(data_dir)
                registry.start()
                self._registries[key] = registry
            return registry

    def stop(self) -> None:
        with self._lock:
            registries, self._registries = list(self._registries.values()), {}
        for registry in registries:
            registry.stop()
