"""The runtime harness's parts: the synthesized functions, the sandbox Lambda gives a function
(code read-only, /tmp writable, unprivileged), its environment and its process. Fixtures that use
them are in conftest.py. Not a test file.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from runtime_api import Answer, RuntimeApiStandIn

from local_aws import LocalAws
from promoter import settings
from promoter.aws.reconcile_state import DEFAULT_RECONCILE_TABLE, RECONCILE_TABLE_ENV

TASK_ROOT_IN_LAMBDA = "/var/task"
REGION = "us-east-1"
# Guards against a hung process, never a measure of speed: no assertion depends on them.
START_GUARD_SECONDS = 120
INVOKE_GUARD_SECONDS = 180
# What the local AWS calls the resources the template refers to with `Ref`: the CLI's defaults.
LOCAL_VALUES = {
    **settings.function_environment(config_path=""),
    RECONCILE_TABLE_ENV: DEFAULT_RECONCILE_TABLE,
    # The stack's attestation key: the one `promoter local` creates (the deployment fixture too).
    settings.ATTESTATION_KEY_ENV: settings.LOCAL_ATTESTATION_KEY_ALIAS,
}
# The CDK CLI zips every file of an asset with the DOS time 1980-01-01 00:00 (aws-cdk's
# `writeZipFile`, "reset dates to get the same hash"): what Lambda's /var/task files are dated.
ZIP_ENTRY_EPOCH = time.mktime((1980, 1, 1, 0, 0, 0, 0, 1, -1))
# Without these capabilities root obeys file modes like any user (Lambda runs functions unprivileged).
DROPPED_CAPABILITIES = "-dac_override,-dac_read_search,-fowner"


@dataclass(frozen=True)
class SynthesizedFunction:
    """One function of the synthesized template: what Lambda would be given."""

    handler: str
    environment: dict[str, Any]
    asset_dir: Path
    timeout_seconds: int


@dataclass(frozen=True)
class Deployment:
    source: str
    target: str
    functions: dict[str, SynthesizedFunction]  # by handler string


class LambdaProcess:
    """One function's execution environment: a python3.13 process running awslambdaric."""

    def __init__(
        self, api: RuntimeApiStandIn, process: subprocess.Popen[bytes], log: Path, timeout_seconds: int
    ) -> None:
        self.api = api
        self.timeout_seconds = timeout_seconds  # the template's Timeout: the invocation's deadline
        self.process = process
        self.log = log

    def invoke(self, event: Any) -> Answer:
        return self.api.invoke(event, self.timeout_seconds, INVOKE_GUARD_SECONDS)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
        return lines


@dataclass(frozen=True)
class Sandbox:
    """The process's view: its code directory (read-only), /tmp, and how to start a command."""

    task_root: Path
    tmp: Path
    prefix: tuple[str, ...]  # what drops root's right to ignore file modes, when we are root


def make_sandbox(asset_dir: Path, workdir: Path) -> Sandbox:
    """The asset copied to `workdir/task` and made read-only (chmod -R a-w), as /var/task is, its
    files dated as the CDK's zip dates them (so bytecode that trusts mtimes is not trusted here)."""
    task_root = workdir / "task"
    shutil.copytree(asset_dir, task_root)
    for path in [task_root, *task_root.rglob("*")]:
        os.utime(path, (ZIP_ENTRY_EPOCH, ZIP_ENTRY_EPOCH))
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    tmp = workdir / "tmp"
    tmp.mkdir()
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: the code directory cannot be made read-only")
        prefix = (setpriv, "--bounding-set", DROPPED_CAPABILITIES, "--")
    return Sandbox(task_root, tmp, prefix)


def lambda_environment(
    function: SynthesizedFunction, sandbox: Sandbox, cache: Path, local_aws: LocalAws, api: str
) -> dict[str, str]:
    """The environment Lambda gives the process: the template's variables (a `Ref` becomes the
    local AWS's name for that resource), Lambda's own variables, and the path Lambda builds."""
    env: dict[str, str] = {}
    for name, value in function.environment.items():
        if isinstance(value, str):
            env[name] = value.replace(TASK_ROOT_IN_LAMBDA, str(sandbox.task_root))
        elif name in LOCAL_VALUES:
            env[name] = LOCAL_VALUES[name]
        else:
            raise AssertionError(f"the harness does not know what {name}={value} is on the local AWS")
    return {
        **env,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "TMPDIR": str(sandbox.tmp),
        "HOME": str(sandbox.tmp),
        "LAMBDA_TASK_ROOT": str(sandbox.task_root),
        "LAMBDA_RUNTIME_DIR": str(cache / "runtime"),
        "_HANDLER": function.handler,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": function.handler.rsplit(".", 1)[0].replace(".", "-"),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/harness",
        "AWS_LAMBDA_LOG_STREAM_NAME": "harness",
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": local_aws.endpoint,
        # /var/task, then the layer (/opt/python), then the runtime's own packages (/var/runtime).
        "PYTHONPATH": os.pathsep.join(
            [str(sandbox.task_root), str(cache / "layer" / "python"), str(cache / "runtime")]
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def interpreter(python: str) -> list[str]:
    """python3.13 without its own site-packages (-S): only what Lambda's path holds is importable."""
    return [python, "-S"]
