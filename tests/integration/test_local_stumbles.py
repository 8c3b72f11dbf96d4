"""`promoter local` where a newcomer stumbled (issue 17): `--data DIR` keeps the history, queues and
tables across a restart (a rollback still works), pattern repositories are said and created with
`--create`, and a busy port names `--port`. Each runs the real CLI as a process on a real local AWS."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import boto3
import pytest

from tests.integration.test_local_promoter import (
    PROMOTER,
    START_TIMEOUT_SECONDS,
    Terminal,
    cli,
    pasted_environment,
    push,
    stop,
    wait_until_held,
)

pytestmark = pytest.mark.integration
CONFIG = """\
rules:
  - name: dev-to-staging
    source: {repository: app-dev, tags: ["sha-*"]}
    targets: [{repository: app-staging, tags: ["{tag}", "live"]}]
  - name: team-releases
    source: {repository: "team/*", tags: ["v*"]}
    targets: [{repository: "release/{repository}"}]
"""


def start_local(tmp_path: Path, *args: str) -> dict:
    """`promoter local --port 0 --config CONFIG ARGS` up and its ready block read (the caller stops it)."""
    config = tmp_path / "promotion.yaml"
    config.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [*PROMOTER, "local", "--port", "0", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    terminal = Terminal(proc)
    try:
        terminal.until(r"^# Ctrl-C", START_TIMEOUT_SECONDS)
    except BaseException:
        stop(proc)
        raise
    ready = list(terminal.seen)
    env.update(pasted_environment(ready))
    ecr = boto3.client(
        "ecr",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    return {"proc": proc, "terminal": terminal, "ready": ready, "env": env, "ecr": ecr, "tmp": tmp_path}


def test_data_dir_keeps_the_history_and_queues_across_a_restart_so_a_rollback_works(tmp_path):
    data = tmp_path / "data"
    first = start_local(tmp_path, "--data", str(data))
    try:
        one = push(first, "app-dev", "sha-1")
        wait_until_held(first["ecr"], "app-staging", "live", one)
        two = push(first, "app-dev", "sha-2")
        wait_until_held(first["ecr"], "app-staging", "live", two)
        # A subscriber's queue with a message in it: the queues keep their messages too.
        sqs = boto3.client(
            "sqs",
            endpoint_url=first["env"]["AWS_ENDPOINT_URL"],
            region_name=first["env"]["AWS_REGION"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        sqs.send_message(QueueUrl=sqs.create_queue(QueueName="kept")["QueueUrl"], MessageBody="still here")
    finally:
        assert stop(first["proc"]) == 0

    again = start_local(tmp_path, "--data", str(data))
    try:
        history = cli(again["env"], "history", "--repository", "app-staging", "--json")
        assert history.returncode == 0, history.stderr
        assert {(r["digest"], r["outcome"]) for r in json.loads(history.stdout)} >= {
            (one, "promoted"),
            (two, "promoted"),
        }
        rollback = cli(again["env"], "rollback", "--repository", "app-staging", "--tag", "live", "--json")
        assert rollback.returncode == 0, rollback.stdout + rollback.stderr
        assert (
            again["ecr"].describe_images(repositoryName="app-staging", imageIds=[{"imageTag": "live"}])[
                "imageDetails"
            ][0]["imageDigest"]
            == one
        )
        sqs = boto3.client(
            "sqs",
            endpoint_url=again["env"]["AWS_ENDPOINT_URL"],
            region_name=again["env"]["AWS_REGION"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        url = sqs.get_queue_url(QueueName="kept")["QueueUrl"]
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        assert message["Body"] == "still here"
        # The promoter's route survived too: a push after the restart is promoted.
        three = push(again, "app-dev", "sha-3")
        wait_until_held(again["ecr"], "app-staging", "sha-3", three)
    finally:
        assert stop(again["proc"]) == 0


def test_pattern_repositories_are_named_and_created_with_create(tmp_path):
    running = start_local(tmp_path, "--create", "team/api,release/team/api")
    try:
        ready = "\n".join(running["ready"])
        assert "# Created from" in ready and "team/api" in ready
        assert "team/* (source of rule team-releases): created team/api" in ready
        assert "release/team/* (target of rule team-releases): created release/team/api" in ready
        assert "--create NAME[,NAME...]" in ready  # how to create the others
        digest = push(running, "team/api", "v1")
        wait_until_held(running["ecr"], "release/team/api", "v1", digest)
    finally:
        assert stop(running["proc"]) == 0


def test_without_create_each_pattern_says_nothing_was_created_for_it_and_how(tmp_path):
    running = start_local(tmp_path)
    try:
        ready = "\n".join(running["ready"])
        assert "team/* (source of rule team-releases): a pattern: nothing created for it" in ready
        assert "release/team/* (target of rule team-releases): a pattern: nothing created for it" in ready
        assert "ecr create-repository --repository-name NAME" in ready
    finally:
        assert stop(running["proc"]) == 0


def test_create_refuses_a_repository_no_pattern_stands_for(tmp_path):
    config = tmp_path / "promotion.yaml"
    config.write_text(CONFIG)
    result = subprocess.run(
        [*PROMOTER, "local", "--port", "0", "--config", str(config), "--create", "team/api,other/x"],
        capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--create other/x: no rule's repository pattern stands for it" in result.stderr
    assert "team/*" in result.stderr
    alone = subprocess.run(
        [*PROMOTER, "local", "--port", "0", "--create", "team/api"],
        capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS,
    )  # fmt: skip
    assert alone.returncode == 2
    assert "--create goes with --config" in alone.stderr


def test_a_busy_port_is_named_with_the_port_flag_to_pass():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*PROMOTER, "local", "--port", str(port)],
            capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS,
        )  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"promoter local: port {port} is in use: pass --port "), line
    suggested = int(line.split("pass --port ")[1].split()[0])
    assert suggested not in (port, 0)


def test_an_unreadable_state_file_is_reported_and_set_aside_and_the_local_aws_starts_without_it(tmp_path):
    """A state file another moto version wrote (here: not a pickle at all) does not stop the start,
    and is not overwritten by the next save."""
    from local_aws.persistence import STATE_FILE, UNREADABLE_SUFFIX

    data = tmp_path / "data"
    data.mkdir()
    (data / STATE_FILE).write_bytes(b"not a pickle")
    running = start_local(tmp_path, "--data", str(data))
    try:
        history = cli(running["env"], "history", "--json")
        assert history.returncode == 0, history.stderr
        assert json.loads(history.stdout) == []
    finally:
        assert stop(running["proc"]) == 0
    stderr = running["proc"].stderr.read()
    assert "could not read the local AWS state" in stderr
    assert (data / (STATE_FILE + UNREADABLE_SUFFIX)).read_bytes() == b"not a pickle"
    assert (data / STATE_FILE).exists()  # the new state, saved on stop
