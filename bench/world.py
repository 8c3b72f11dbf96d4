"""The stage every figure shares: one local AWS, clients on it, fresh repositories, child processes.

The local AWS runs in the bench process; whatever is measured (our copy, skopeo, the handler)
runs in a child process of its own, so the two never share an interpreter lock and a child's
memory is its own.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local_aws import LocalAws

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
SKOPEO_TIMEOUT_SECONDS = 900
# Dummy credentials and the endpoint: every boto3 client in the bench and its children uses them.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION}


class World:
    """A started local AWS plus what the figures need around it."""

    def __init__(self, work: Path, latency: str | None = None) -> None:
        """`latency`: a latency model spec (`aws`, `OP=MS,...`) applied while figures measure."""
        self.work = work
        self.latency = latency
        self.local = LocalAws(data_dir=work / "aws")
        self._names = itertools.count()
        self._run = uuid.uuid4().hex[:6]

    def start(self) -> World:
        self.local.start()
        os.environ.update(self.env())
        os.environ.pop("AWS_PROFILE", None)
        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        return self

    def stop(self) -> None:
        self.local.stop()

    @contextmanager
    def measuring(self) -> Iterator[None]:
        """The latency model (if the run has one) on for what is measured, off for the set-up
        (pushing 1,000 images at AWS's latency would only make the bench slower)."""
        if self.latency:
            self.local.control.set_latency(self.latency)
        try:
            yield
        finally:
            if self.latency:
                self.local.control.set_latency(None)

    def env(self) -> dict[str, str]:
        """The environment a client of the local AWS needs (children inherit it)."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.local.endpoint, "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.local.endpoint,
            region_name=REGION,
            config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
        )

    def repository(self, prefix: str) -> str:
        """A new, empty, MUTABLE repository with a name no other run uses."""
        name = f"bench-{self._run}/{prefix}-{next(self._names)}"
        self.client("ecr").create_repository(repositoryName=name)
        return name

    def set_mounting(self, enabled: bool) -> None:
        self.client("ecr").put_account_setting(
            name="BLOB_MOUNTING", value="ENABLED" if enabled else "DISABLED"
        )

    # --- registry clients ---------------------------------------------------------------
    def skopeo(self, *args: str) -> subprocess.CompletedProcess[str]:
        """skopeo with the registry's basic auth on both ends (plain HTTP on loopback)."""
        creds = f"AWS:{self.local.password}"
        command = ["skopeo", "copy", "--all", "--preserve-digests"]
        for side in ("src", "dest"):
            command += [f"--{side}-tls-verify=false", f"--{side}-creds", creds]
        return subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=SKOPEO_TIMEOUT_SECONDS,
            check=True,
            stdin=subprocess.DEVNULL,
        )

    def docker_ref(self, repository: str, reference: str) -> str:
        sep = "@" if reference.startswith("sha256:") else ":"
        return f"docker://{self.local.registry_host}/{repository}{sep}{reference}"

    def push_layout(self, layout: Path, repository: str, tag: str) -> None:
        """Push an OCI layout (all platforms, digests kept) the way a build client would."""
        self.skopeo(f"oci:{layout}:{tag}", self.docker_ref(repository, tag))

    def registry_io(self) -> dict[str, int]:
        """The docker-registry child's I/O counters (`/proc/PID/io`): rchar, wchar, ..."""
        pid = _child_pid("docker-registry")
        counters: dict[str, int] = {}
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            key, _, value = line.partition(":")
            counters[key.strip()] = int(value)
        return counters

    # --- children ------------------------------------------------------------------------
    def run_child(
        self, module: str, args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 900
    ) -> dict[str, Any]:
        """`python -m bench.<module> ARGS` in the repository root; its last stdout line is JSON."""
        proc = subprocess.run(
            [sys.executable, "-m", f"bench.{module}", *args],
            cwd=ROOT,
            env={**os.environ, **self.env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"bench.{module} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def _child_pid(name: str) -> int:
    """The pid of our own child process called `name` (the local AWS starts docker-registry)."""
    me = os.getpid()
    for task in Path(f"/proc/{me}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                return int(pid)
    raise RuntimeError(f"no child process {name!r} of {me}")
