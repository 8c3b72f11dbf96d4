"""The CLI's "first hour" stumbles (issue 17, item 3), on the local AWS: `status` with a rule that
names requesters, Ctrl-C during `promote`, a rollback on a request rule, gates in `status`'s "would
get", the reason a person gave in `history`, and `reconcile`'s errors before its summary. The CLI
runs in-process (`promoter_cli.main.main`) except where a real process is the point (SIGINT)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from local_aws import images as im
from promoter.aws.idempotency import CLI_IN_PROGRESS_SECONDS
from promoter_cli.main import main

pytestmark = pytest.mark.integration

PROMOTER = [sys.executable, "-m", "promoter_cli.main"]
# How long the local AWS holds the PutImage of an interrupted run: far longer than it takes to
# deliver a signal once the PutImage has arrived (the test waits for that, it does not guess).
HELD_PUT_IMAGE_MS = 30_000
ARRIVAL_TIMEOUT_SECONDS = 60.0


def promoter(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write_config(path: Path, rules: list[dict[str, Any]]) -> str:
    path.write_text(json.dumps({"rules": rules}))
    return str(path)


def request_and_handle(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config: str, *request: str
) -> None:
    """`promoter event request ...` then `promoter handle` of that event; both must succeed."""
    code, event, err = promoter(capsys, "event", "request", *request)
    assert code == 0, err
    event_file = tmp_path / f"request-{len(list(tmp_path.iterdir()))}.json"
    event_file.write_text(event)
    code, out, err = promoter(capsys, "handle", str(event_file), "--config", config, "--json")
    assert code == 0, (out, err)


# --- 1. status with a rule that names requesters ------------------------------------------------


def test_status_shows_every_rule_when_one_takes_requests_only_from_its_requesters(
    aws_env, ecr, unique_name, pusher, tmp_path, capsys
):
    dev, stage, prod = unique_name("dev"), unique_name("stage"), unique_name("prod")
    for name in (dev, stage, prod):
        ecr.create_repository(repositoryName=name)
    image = im.image((64,))
    pusher.push(dev, image, "sha-1")
    pusher.push(stage, image, "v1")
    config = write_config(
        tmp_path / "promotion.json",
        [
            {
                "name": "to-stage",
                "source": {"repository": dev, "tags": ["sha-*"]},
                "targets": [{"repository": stage}],
            },
            {
                "name": "to-prod",
                "trigger": "request",
                "requesters": ["arn:aws:iam::210987654321:role/release"],
                "source": {"repository": stage, "tags": ["v*"]},
                "targets": [{"repository": prod}],
            },
        ],
    )

    code, out, err = promoter(capsys, "status", "--config", config, "--json")

    assert code == 0, err
    to_stage, to_prod = json.loads(out)["rules"]
    assert (to_stage["rule"], to_prod["rule"]) == ("to-stage", "to-prod")
    assert [(t["tag"], t["state"]) for t in to_stage["targets"]] == [("sha-1", "missing")]
    assert [(t["repository"], t["tag"], t["state"]) for t in to_prod["targets"]] == [
        (prod, "v1", "not-requested")
    ]
    assert to_prod["errors"] == []


# --- 2. Ctrl-C during promote -------------------------------------------------------------------


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_promote_held_in_put_image(aws_env, source: str, target: str) -> subprocess.Popen[str]:
    """`promoter promote SOURCE:sha-1 --to TARGET` in its own process, returned once its PutImage
    has reached the local AWS, which holds it (the run is then inside the promotion, its
    idempotency record written)."""
    control = aws_env.control
    control.set_latency(f"PutImage={HELD_PUT_IMAGE_MS}")
    control.reset_requests()
    process = subprocess.Popen(
        [*PROMOTER, "promote", f"{source}:sha-1", "--to", target],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as a terminal delivers it: a suite started as a background job of a non-interactive
        # shell (`./dev test &` in a script) inherits SIGINT ignored, and Python keeps an ignored
        # SIGINT ignored, as POSIX asks of background jobs.
        preexec_fn=_sigint_default,
    )
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_SECONDS
    while not control.requests().get("PutImage"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"the promotion never reached PutImage: {out} {err}")
        time.sleep(0.05)
    return process


@pytest.fixture
def held_promotion(aws_env, ecr, unique_name, pusher) -> Any:
    """A source with an image at sha-1 and an empty target; the latency model put back after."""
    source, target = unique_name("dev"), unique_name("stage")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    image = im.image((256,))
    pusher.push(source, image, "sha-1")
    yield source, target, image
    aws_env.control.set_latency(None)


def target_digest(ecr, repository: str, tag: str) -> str | None:
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return images[0]["imageId"]["imageDigest"] if images else None


def test_ctrl_c_during_promote_exits_130_in_one_line_and_a_retry_promotes_at_once(
    aws_env, ecr, held_promotion, capsys
):
    source, target, image = held_promotion
    process = start_promote_held_in_put_image(aws_env, source, target)

    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 130, (out, err)
    assert err.splitlines() == ["promoter: interrupted"]
    aws_env.control.set_latency(None)
    code, out, err = promoter(capsys, "promote", f"{source}:sha-1", "--to", target, "--json")
    assert code == 0, (out, err)
    assert [a["outcome"] for a in json.loads(out)["actions"]] == ["promoted"]
    assert target_digest(ecr, target, "sha-1") == image.digest


def test_a_promotion_blocked_by_a_killed_run_says_until_when_and_how_to_clear_it(
    aws_env, ecr, held_promotion, capsys
):
    source, target, image = held_promotion
    process = start_promote_held_in_put_image(aws_env, source, target)
    process.kill()  # SIGKILL: nothing runs on the way out, the in-progress record stays
    process.communicate(timeout=60)
    aws_env.control.set_latency(None)

    code, out, err = promoter(capsys, "promote", f"{source}:sha-1", "--to", target, "--json")

    assert code == 1
    (action,) = json.loads(out)["actions"]
    assert action["outcome"] == "failed"
    until = re.search(r"blocks it until (\S+Z)\)", action["reason"])
    assert until is not None, action["reason"]
    expires = datetime.strptime(until.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert datetime.now(UTC) < expires <= datetime.now(UTC) + timedelta(seconds=CLI_IN_PROGRESS_SECONDS)
    clear = re.search(r"aws dynamodb delete-item --table-name (\S+) --key '([^']+)'", action["reason"])
    assert clear is not None, action["reason"]
    # Doing what the message says frees the promotion.
    boto3.client("dynamodb").delete_item(TableName=clear.group(1), Key=json.loads(clear.group(2)))
    code, out, err = promoter(capsys, "promote", f"{source}:sha-1", "--to", target, "--json")
    assert code == 0, (out, err)
    assert target_digest(ecr, target, "sha-1") == image.digest


# --- 4 and 5. rollback on a request rule: status says held; history shows the reason ----------


@pytest.fixture
def released(aws_env, ecr, unique_name, pusher, tmp_path, capsys) -> tuple[str, str, Any, Any, str]:
    """stage -(request v*)-> prod:current, requested for v1 then v2."""
    stage, prod = unique_name("stage"), unique_name("prod")
    for name in (stage, prod):
        ecr.create_repository(repositoryName=name)
    first, second = im.image((64,)), im.image((64,))
    pusher.push(stage, first, "v1")
    pusher.push(stage, second, "v2")
    config = write_config(
        tmp_path / "promotion.json",
        [
            {
                "name": "to-prod",
                "trigger": "request",
                "source": {"repository": stage, "tags": ["v*"]},
                "targets": [{"repository": prod, "tags": ["current"]}],
            }
        ],
    )
    request_and_handle(capsys, tmp_path, config, f"{stage}:v1", "--rule", "to-prod")
    request_and_handle(capsys, tmp_path, config, f"{stage}:v2", "--rule", "to-prod")
    return stage, prod, first, second, config


def test_status_says_held_after_a_rollback_on_a_request_rule(released, capsys):
    _, prod, first, _, config = released
    code, _, err = promoter(capsys, "rollback", "--repository", prod, "--tag", "current", "--reason", "bad")
    assert code == 0, err

    code, out, err = promoter(capsys, "status", "--config", config, "--json")

    assert code == 0, err
    (rule,) = json.loads(out)["rules"]
    assert [(t["tag"], t["state"], t["holds"]) for t in rule["targets"]] == [
        ("current", "held", first.digest)
    ]


def test_history_table_shows_the_reason_a_person_gave_a_rollback(released, capsys):
    _, prod, *_ = released
    code, _, err = promoter(
        capsys, "rollback", "--repository", prod, "--tag", "current", "--reason", "incident 42: v2 crashes"
    )
    assert code == 0, err

    code, out, err = promoter(capsys, "history", "--repository", prod, "--limit", "1")

    assert code == 0, err
    header, row = out.splitlines()
    assert "rollback" in row
    assert "incident 42: v2 crashes" in row[header.index("REASON") :]


# --- 4. status's "would get" respects the gates --------------------------------------------------


def test_status_never_offers_an_image_its_signature_gate_refuses(
    aws_env, ecr, unique_name, pusher, tmp_path, capsys
):
    dev, stage = unique_name("dev"), unique_name("stage")
    for name in (dev, stage):
        ecr.create_repository(repositoryName=name)
    unsigned = im.image((64,))
    pusher.push(dev, unsigned, "sha-1")
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    config = write_config(
        tmp_path / "promotion.json",
        [
            {
                "name": "to-stage",
                "source": {"repository": dev, "tags": ["sha-*"]},
                "require": {"signature": {"cosign": {"keys": [pem]}}},
                "targets": [{"repository": stage}],
            }
        ],
    )
    event = tmp_path / "push.json"
    code, text, err = promoter(capsys, "event", "push", f"{dev}:sha-1")
    event.write_text(text)
    code, out, _ = promoter(capsys, "handle", str(event), "--config", config, "--json")
    assert [a["outcome"] for a in json.loads(out)["actions"]] == ["unverified"]  # the event was refused

    code, out, err = promoter(capsys, "status", "--config", config, "--json")
    table_code, table, _ = promoter(capsys, "status", "--config", config)

    assert code == table_code == 0, err
    (target,) = json.loads(out)["rules"][0]["targets"]
    assert (target["state"], target["should_hold"]) == ("missing", unsigned.digest)
    assert target["gate"]["outcome"] == "unverified" and target["gate"]["reason"]
    assert "would get" not in table
    assert f"missing: {unsigned.digest[:19]} stopped by a gate (unverified)" in table


def test_status_says_a_target_waiting_on_a_scan_gets_its_image_once_the_gate_passes(
    aws_env, ecr, unique_name, pusher, tmp_path, capsys
):
    dev, stage = unique_name("dev"), unique_name("stage")
    for name in (dev, stage):
        ecr.create_repository(repositoryName=name)
    unscanned = im.image((64,))
    pusher.push(dev, unscanned, "sha-1")
    config = write_config(
        tmp_path / "promotion.json",
        [
            {
                "name": "to-stage",
                "source": {"repository": dev, "tags": ["sha-*"]},
                "require": {"scan": {"max_severity": "HIGH"}},
                "targets": [{"repository": stage}],
            }
        ],
    )

    code, out, err = promoter(capsys, "status", "--config", config, "--json")
    _, table, _ = promoter(capsys, "status", "--config", config)

    assert code == 0, err
    (target,) = json.loads(out)["rules"][0]["targets"]
    assert target["gate"]["outcome"] == "gate-pending"
    assert f"missing: would get {unscanned.digest[:19]} once its gate passes" in table


# --- 6. reconcile: errors first, then a summary that says it failed -----------------------------


def test_reconcile_prints_its_errors_before_a_summary_that_says_it_failed(
    aws_env, ecr, unique_name, tmp_path, capsys
):
    missing, target = unique_name("gone"), unique_name("stage")
    ecr.create_repository(repositoryName=target)
    config = write_config(
        tmp_path / "promotion.json",
        [
            {
                "name": "lost",
                "source": {"repository": missing, "tags": ["*"]},
                "targets": [{"repository": target}],
            }
        ],
    )

    code, out, err = promoter(capsys, "reconcile", "--config", config)

    assert code == 1, err
    lines = out.splitlines()
    assert lines[0].startswith("error: ") and missing in lines[0]
    assert "failed (1 error(s) above)" in lines[-1]
    assert "complete" not in lines[-1]
