"""`promoter local` as a process: the ready line, a clean exit on SIGTERM, state kept with --data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration
PROMOTER = [sys.executable, "-m", "promoter_cli.main"]


def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str, float]:
    began = time.monotonic()
    proc = subprocess.Popen(
        [*PROMOTER, "local", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    return proc, line, time.monotonic() - began


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_promoter_local_prints_its_ready_line_and_exits_cleanly_on_sigterm(tmp_path: Path):
    proc, line, startup = start()
    try:
        assert line.startswith("local AWS ready at http://127.0.0.1:"), (
            proc.stderr.read() if proc.stderr else ""
        )
        endpoint = line.split(" at ", 1)[1].strip()
        registry_children = children(proc.pid)
        assert registry_children, "the registry runs as a child process"
        ecr = boto3.client(
            "ecr",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        assert ecr.describe_repositories()["repositories"] == []
    finally:
        rc = stop(proc)
    assert rc == 0
    for pid in registry_children:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    print(f"promoter local start-up: {startup:.2f}s")
    assert startup < 10


def test_promoter_local_keeps_state_in_its_data_dir_across_restarts(tmp_path: Path):
    for round_ in range(2):
        proc, line, _ = start("--data", str(tmp_path / "data"))
        try:
            endpoint = line.split(" at ", 1)[1].strip()
            ecr = boto3.client(
                "ecr",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="x",
                aws_secret_access_key="x",
            )
            if round_ == 0:
                ecr.create_repository(repositoryName="kept/repo")
            else:
                names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
                assert names == ["kept/repo"]
        finally:
            assert stop(proc) == 0


def test_promoter_local_without_docker_registry_names_the_install_command(tmp_path: Path):
    env = dict(os.environ, PATH=str(tmp_path))  # no docker-registry anywhere on PATH
    proc = subprocess.run(
        [*PROMOTER, "local", "--port", "0"], capture_output=True, text=True, env=env, timeout=30
    )
    assert proc.returncode == 3
    assert "apt-get install docker-registry skopeo" in proc.stderr


def test_promoter_local_rejects_a_malformed_rate():
    proc = subprocess.run(
        [*PROMOTER, "local", "--port", "0", "--rate", "PutImage"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "OP=N" in proc.stderr


def test_promoter_local_rate_option_throttles_that_operation():
    proc, line, _ = start("--rate", "DescribeRepositories=1")
    try:
        endpoint = line.split(" at ", 1)[1].strip()
        ecr = boto3.client(
            "ecr",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}),
        )
        ecr.describe_repositories()
        with pytest.raises(ClientError) as exc:
            ecr.describe_repositories()
        assert exc.value.response["Error"]["Code"] == "ThrottlingException"
        # other operations are not limited
        assert ecr.get_authorization_token()["authorizationData"]
    finally:
        assert stop(proc) == 0


def test_promoter_local_prints_lines_to_paste_that_log_in_and_push(tmp_path: Path):
    """The printed environment, `skopeo login` and `skopeo copy` work as printed (placeholders
    filled in), and `--config` created the configuration's repositories to push into; with
    `--no-promoter` nothing else is wired (no queue, no promoter lines)."""
    import shlex

    from local_aws import images

    config = tmp_path / "promotion.yaml"
    config.write_text(
        "rules:\n  - name: r\n    source: {repository: app-dev, tags: ['sha-*']}\n"
        "    targets: [{repository: app-staging}, {repository: 'rel/{repository}'}]\n"
    )
    proc, line, _ = start("--config", str(config), "--no-promoter")
    try:
        assert line.startswith("local AWS ready at "), proc.stderr.read() if proc.stderr else ""
        printed = []
        while not (printed and printed[-1].startswith("# Ctrl-C")):
            printed.append(proc.stdout.readline().rstrip("\n") if proc.stdout else "")
        (export,) = [p for p in printed if p.startswith("export ")]
        env = dict(word.split("=", 1) for word in shlex.split(export)[1:])
        assert set(env) == {
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        }
        (created,) = [p for p in printed if p.startswith("# Created from")]
        assert "app-dev, app-staging" in created
        assert "#   rel/app-dev (target of rule r): a pattern: nothing created for it" in printed
        (login,) = [p for p in printed if p.startswith("skopeo login ")]
        (copy,) = [p for p in printed if p.startswith("skopeo copy ")]
        image = images.multi_arch(attestations=False)
        images.write_oci_layout(tmp_path / "img", image, tag="v1")
        skopeo_env = dict(os.environ, REGISTRY_AUTH_FILE=str(tmp_path / "auth.json"))
        for command in (
            login,
            copy.replace("IMAGE_DIR", str(tmp_path / "img"))
            .replace("TAG", "v1", 1)
            .replace("REPOSITORY:TAG", "app-dev:sha-1"),
        ):
            done = subprocess.run(shlex.split(command), env=skopeo_env, capture_output=True, text=True)
            assert done.returncode == 0, (command, done.stderr)
        ecr = boto3.client(
            "ecr",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        held = ecr.describe_images(repositoryName="app-dev", imageIds=[{"imageTag": "sha-1"}])
        assert held["imageDetails"][0]["imageDigest"] == image.digest
        names = sorted(r["repositoryName"] for r in ecr.describe_repositories()["repositories"])
        assert names == ["app-dev", "app-staging"]  # a templated target is not created
        sqs = boto3.client(
            "sqs",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        assert sqs.list_queues().get("QueueUrls", []) == []  # --no-promoter: no promoter queue
    finally:
        assert stop(proc) == 0
