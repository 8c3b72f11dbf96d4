"""`promoter validate | plan | handle` as a user runs them: a real process on the local AWS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from local_aws import images as im
from promoter import settings
from tests.fixtures import EVENTS_DIR

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).parents[2]
EVENTS = EVENTS_DIR
PROMOTER = [sys.executable, "-m", "promoter_cli.main"]
# Operations that change a registry: `plan` must call none of them.
ECR_WRITES = {
    "PutImage",
    "InitiateLayerUpload",
    "UploadLayerPart",
    "CompleteLayerUpload",
    "BatchDeleteImage",
    "CreateRepository",
    "PutAccountSetting",
    "PutImageTagMutability",
    "DeleteRepository",
}


def run(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args], cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


@dataclass(frozen=True)
class Setup:
    source: str
    target: str
    image: im.Manifest
    config: Path
    event_file: Path


@pytest.fixture
def setup(aws_env, ecr, unique_name, pusher, tmp_path):
    """Two repositories, an image pushed to the source, a config and the push event for it."""
    source, target = unique_name("dev"), unique_name("stage")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    image = im.multi_arch(("linux/amd64", "linux/arm64"), attestations=False)
    pusher.push(source, image, "sha-1")
    config = tmp_path / "promotion.yaml"
    config.write_text(
        f"rules:\n  - name: promote\n    source: {{repository: {source}, tags: ['sha-*']}}\n"
        f"    targets:\n      - repository: {target}\n        tags: ['{{tag}}', 'build-{{short_digest}}']\n"
    )
    event = json.loads((EVENTS / "ecr-push.json").read_text())
    event["id"] = str(uuid.uuid4())
    event["detail"].update({"repository-name": source, "image-tag": "sha-1", "image-digest": image.digest})
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    return Setup(source, target, image, config, event_file)


def test_validate_accepts_the_sample_configuration():
    result = run("validate")
    assert result.returncode == 0, result.stderr
    assert "3 rule(s) valid" in result.stdout


def test_validate_refuses_a_bad_configuration_with_rule_field_and_reason(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n  - name: loop\n    source: {repository: app, tags: ['*']}\n"
        "    targets: [{repository: app, tags: ['copy-{tag}']}]\n"
    )
    result = run("validate", "--config", str(bad))
    assert result.returncode == 2
    assert "rule 'loop', field 'targets'" in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_shows_the_actions_and_writes_nothing(setup, aws_env):
    aws_env.control.reset_calls()

    result = run("plan", "--json", str(setup.event_file), "--config", str(setup.config))

    assert result.returncode == 0, result.stderr
    calls = aws_env.control.calls()
    # The images, and the targets' settings and creation templates (the warnings), are all it reads.
    assert "BatchGetImage" in calls
    assert set(calls) <= {"BatchGetImage", "DescribeRepositories", "DescribeRepositoryCreationTemplates"}
    assert not ECR_WRITES & set(calls)
    out = json.loads(result.stdout)
    assert [(a["target_tag"], a["outcome"]) for a in out["actions"]] == [
        ("sha-1", "would-promote"),
        (f"build-{setup.image.digest[7:19]}", "would-promote"),
    ]


def test_handle_promotes_then_reports_already_present(setup, ecr):
    first = run("handle", "--json", str(setup.event_file), "--config", str(setup.config))

    assert first.returncode == 0, first.stderr
    actions = json.loads(first.stdout)["actions"]
    assert [(a["outcome"], a["target_digest"]) for a in actions] == [("promoted", setup.image.digest)] * 2
    listed = ecr.describe_images(repositoryName=setup.target, imageIds=[{"imageTag": "sha-1"}])[
        "imageDetails"
    ]
    assert listed[0]["imageDigest"] == setup.image.digest

    # The same push handled again once its idempotency records are gone (expired): the registry
    # itself says the tags are already there.
    table = boto3.resource("dynamodb").Table(settings.idempotency_table_name())
    for item in table.scan()["Items"]:
        if json.loads(item.get("data") or "{}").get("target_repository") == setup.target:
            table.delete_item(Key={"id": item["id"]})
    again = run("handle", "--json", str(setup.event_file), "--config", str(setup.config))

    assert again.returncode == 0, again.stderr
    assert [a["outcome"] for a in json.loads(again.stdout)["actions"]] == ["already-present"] * 2


def test_handle_exits_1_on_a_conflict(setup, ecr, pusher, unique_name, tmp_path):
    locked = unique_name("locked")
    ecr.create_repository(repositoryName=locked, imageTagMutability="IMMUTABLE")
    pusher.push(locked, im.image((256,)), "sha-1")
    config = tmp_path / "locked.yaml"
    config.write_text(
        f"rules:\n  - name: r\n    source: {{repository: {setup.source}}}\n"
        f"    targets: [{{repository: {locked}}}]\n"
    )

    result = run("handle", "--json", str(setup.event_file), "--config", str(config))

    assert result.returncode == 1
    assert [a["outcome"] for a in json.loads(result.stdout)["actions"]] == ["conflict"]


@pytest.mark.parametrize("content", ["{not json", "[]", '{"id": "x"}'])
def test_handle_exits_2_on_an_unreadable_event(setup, tmp_path, content):
    event_file = tmp_path / "bad.json"
    event_file.write_text(content)
    result = run("handle", "--json", str(event_file), "--config", str(setup.config))
    assert result.returncode == 2
    assert result.stderr.startswith("promoter: bad event")
    assert "Traceback" not in result.stderr


def test_handle_exits_2_on_a_missing_event_file_or_config(setup, tmp_path):
    assert run("handle", "--json", str(tmp_path / "nope.json"), "--config", str(setup.config)).returncode == 2
    missing_config = run("handle", "--json", str(setup.event_file), "--config", str(tmp_path / "nope.yaml"))
    assert missing_config.returncode == 2
    assert "cannot read" in missing_config.stderr


def test_handle_ignores_events_that_promote_nothing(setup):
    result = run("handle", "--json", str(EVENTS / "ecr-delete.json"), "--config", str(setup.config))
    assert result.returncode == 0
    out = json.loads(result.stdout)
    assert out["actions"] == []
    assert "not a push" in out["ignored_reason"]


def test_handle_a_promotion_request_by_tag_resolves_the_digest_and_promotes(setup, ecr, tmp_path):
    prod = setup.target
    config = tmp_path / "request.yaml"
    config.write_text(
        f"rules:\n  - name: release\n    trigger: request\n"
        f"    source: {{repository: {setup.source}, tags: ['sha-*']}}\n"
        f"    targets: [{{repository: {prod}, tags: ['release-{{tag}}']}}]\n"
    )
    request = {
        "id": str(uuid.uuid4()),
        "source": settings.REQUEST_EVENT_SOURCE,
        "detail-type": settings.REQUEST_DETAIL_TYPE,
        "detail": {"repository-name": setup.source, "image-tag": "sha-1"},
    }
    event_file = tmp_path / "request.json"
    event_file.write_text(json.dumps(request))

    result = run("handle", "--json", str(event_file), "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert [(a["target_tag"], a["outcome"]) for a in json.loads(result.stdout)["actions"]] == [
        ("release-sha-1", "promoted")
    ]
    held = ecr.describe_images(repositoryName=prod, imageIds=[{"imageTag": "release-sha-1"}])["imageDetails"]
    assert held[0]["imageDigest"] == setup.image.digest


def test_handle_a_request_for_a_missing_tag_exits_1_with_the_reason(setup, tmp_path):
    request = {
        "id": "r",
        "source": settings.REQUEST_EVENT_SOURCE,
        "detail-type": settings.REQUEST_DETAIL_TYPE,
        "detail": {"repository-name": setup.source, "image-tag": "sha-missing", "rule": "promote"},
    }
    event_file = tmp_path / "request.json"
    event_file.write_text(json.dumps(request))

    result = run("handle", "--json", str(event_file), "--config", str(setup.config))

    assert result.returncode == 1
    assert "sha-missing does not exist" in json.loads(result.stdout)["error"]
