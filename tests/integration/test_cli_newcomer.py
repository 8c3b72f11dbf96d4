"""The CLI as a new user meets it, through real processes on the local AWS: the endpoint alone is
enough, events come from `promoter event`, results are a table (JSON on request), and no library
warning reaches the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_aws import images as im
from promoter import settings

pytestmark = pytest.mark.integration

PROMOTER = [sys.executable, "-m", "promoter_cli.main"]


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args],
        env=env if env is not None else dict(os.environ),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def endpoint_only_env(endpoint: str, home: Path) -> dict[str, str]:
    """What a new user has after pasting only AWS_ENDPOINT_URL: no region, no keys, no ~/.aws."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, HOME=str(home))
    return env


@pytest.fixture
def pushed(aws_env, ecr, unique_name, pusher, tmp_path):
    """A source with an image at sha-1, an empty target, and a config promoting sha-* there."""
    source, target = unique_name("dev"), unique_name("stage")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    image = im.image((512,))
    pusher.push(source, image, "sha-1")
    config = tmp_path / "promotion.yaml"
    config.write_text(
        f"rules:\n  - name: promote\n    source: {{repository: {source}, tags: ['sha-*']}}\n"
        f"    targets: [{{repository: {target}, tags: ['{{tag}}', 'b-{{short_digest}}']}}]\n"
        f"  - name: release\n    trigger: request\n    source: {{repository: {target}, tags: ['sha-*']}}\n"
        f"    targets: [{{repository: {source}, tags: ['released-{{tag}}']}}]\n"
    )
    return source, target, image, config


def test_the_loopback_endpoint_alone_is_enough_no_region_or_credentials_error(pushed, aws_env, tmp_path):
    source, _, image, _ = pushed
    env = endpoint_only_env(aws_env.endpoint, tmp_path)

    result = run("event", "push", f"{source}:sha-1", env=env)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["detail"]["image-digest"] == image.digest
    assert "Traceback" not in result.stderr


def test_aws_region_alone_is_honoured_though_botocore_reads_only_aws_default_region(
    pushed, aws_env, tmp_path
):
    source, *_ = pushed
    env = endpoint_only_env(aws_env.endpoint, tmp_path)
    env["AWS_REGION"] = "us-east-1"  # what `promoter local` prints for the AWS CLI v2

    result = run("event", "push", f"{source}:sha-1", env=env)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["region"] == "us-east-1"


def test_without_a_region_or_credentials_the_cli_says_what_to_set_and_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_EC2_METADATA_DISABLED="true")

    sample = str(Path(__file__).parents[2] / "promotion.yaml")

    no_region = run("promote", "app:v1", "--to", "app-prod", env=env)
    no_credentials = run("status", "--config", sample, env={**env, "AWS_REGION": "eu-west-1"})

    assert no_region.returncode == 2
    assert no_region.stderr.startswith("promoter: no AWS region: set AWS_REGION")
    assert "Traceback" not in no_region.stderr
    # AWS_REGION alone is the region (botocore itself reads only AWS_DEFAULT_REGION): what is
    # missing next is the credentials, which status reports as what it could not read (exit 1).
    assert no_credentials.returncode == 1
    assert "Unable to locate credentials" in no_credentials.stdout
    assert "Traceback" not in no_credentials.stderr


def test_another_endpoint_gets_no_invented_region_or_credentials(tmp_path):
    from promoter_cli.cmd_local import aws_region_default, local_aws_defaults

    assert aws_region_default({"AWS_REGION": "eu-west-1"}) == {"AWS_DEFAULT_REGION": "eu-west-1"}
    assert aws_region_default({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-2"}) == {}

    assert local_aws_defaults({"AWS_ENDPOINT_URL": "https://ecr.example.com"}) == {}
    assert local_aws_defaults({}) == {}
    chosen = {
        "AWS_ENDPOINT_URL": "http://localhost:4566",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_PROFILE": "p",
    }
    assert local_aws_defaults(chosen) == {}


def test_event_push_reads_the_digest_and_handle_promotes_it_printing_a_table(pushed, tmp_path):
    source, target, image, config = pushed
    event = run("event", "push", f"{source}:sha-1")
    assert event.returncode == 0, event.stderr
    event_file = tmp_path / "push.json"
    event_file.write_text(event.stdout)

    handled = run("handle", str(event_file), "--config", str(config))

    assert handled.returncode == 0, handled.stderr
    lines = handled.stdout.splitlines()
    assert lines[0].split() == ["OUTCOME", "TARGET", "DIGEST", "REASON"]
    short = image.digest[: len("sha256:") + 12]
    assert [line.split() for line in lines[1:]] == [
        ["promoted", f"{target}:sha-1", short],
        ["promoted", f"{target}:b-{image.digest[7:19]}", short],
    ]
    # Powertools warns outside Lambda (no context registered): never on the user's terminal.
    assert "Warning" not in handled.stderr, handled.stderr

    again = run("handle", str(event_file), "--config", str(config), "--json")
    assert [a["outcome"] for a in json.loads(again.stdout)["actions"]] == ["promoted", "promoted"]
    assert all(a["replayed"] for a in json.loads(again.stdout)["actions"])


def test_event_push_with_a_digest_reads_nothing_and_plan_takes_it_from_stdin(pushed):
    source, target, image, config = pushed
    event = run("event", "push", f"{source}:sha-1", "--digest", image.digest)
    assert event.returncode == 0, event.stderr

    planned = run("plan", "-", "--config", str(config), stdin=event.stdout)

    assert planned.returncode == 0, planned.stderr
    rows = [line.split() for line in planned.stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [
        ("would-promote", f"{target}:sha-1"),
        ("would-promote", f"{target}:b-{image.digest[7:19]}"),
    ]


def test_event_push_of_a_missing_tag_exits_1_and_bad_input_exits_2(pushed):
    source, *_ = pushed
    missing = run("event", "push", f"{source}:nope")
    assert missing.returncode == 1
    assert f"{source}:nope is not in the registry" in missing.stderr
    assert run("event", "push", "Bad Name:tag").returncode == 2
    assert run("event", "push", f"{source}:sha-1", "--digest", "sha256:short").returncode == 2


def test_event_request_is_handled_by_the_request_rule(pushed, ecr, tmp_path):
    source, target, image, config = pushed
    pushed_event = run("event", "push", f"{source}:sha-1")
    assert run("handle", "-", "--config", str(config), stdin=pushed_event.stdout).returncode == 0

    request = run("event", "request", f"{target}:sha-1", "--rule", "release", "--reason", "tests passed")
    assert request.returncode == 0, request.stderr
    detail = json.loads(request.stdout)["detail"]
    assert (detail["image-tag"], detail["rule"], detail["reason"]) == ("sha-1", "release", "tests passed")

    handled = run("handle", "-", "--config", str(config), "--json", stdin=request.stdout)

    assert handled.returncode == 0, handled.stderr
    assert [(a["target_tag"], a["outcome"]) for a in json.loads(handled.stdout)["actions"]] == [
        ("released-sha-1", "promoted")
    ]
    held = ecr.describe_images(repositoryName=source, imageIds=[{"imageTag": "released-sha-1"}])
    assert held["imageDetails"][0]["imageDigest"] == image.digest


def test_event_request_on_the_rules_own_source_reaches_a_rule_with_requesters(pushed, ecr, tmp_path):
    """A rule naming `requesters:` is requested on its own source only; the event command prints
    that source with --rule-source, and the shared source is refused for such a rule."""
    source, target, image, _ = pushed
    config = tmp_path / "requesters.yaml"
    config.write_text(
        f"rules:\n  - name: release\n    trigger: request\n    requesters: ['123456789012']\n"
        f"    source: {{repository: {source}, tags: ['sha-*']}}\n"
        f"    targets: [{{repository: {target}, tags: ['released-{{tag}}']}}]\n"
    )
    shared = run("event", "request", f"{source}:sha-1", "--rule", "release")
    own = run("event", "request", f"{source}:sha-1", "--rule", "release", "--rule-source")
    assert own.returncode == 0, own.stderr
    assert json.loads(own.stdout)["source"] == settings.rule_request_source("release")

    refused = run("handle", "-", "--config", str(config), "--json", stdin=shared.stdout)
    handled = run("handle", "-", "--config", str(config), "--json", stdin=own.stdout)

    assert refused.returncode != 0 and "rule.release" in refused.stdout + refused.stderr
    assert handled.returncode == 0, handled.stdout + handled.stderr
    held = ecr.describe_images(repositoryName=target, imageIds=[{"imageTag": "released-sha-1"}])
    assert held["imageDetails"][0]["imageDigest"] == image.digest
    assert run("event", "request", f"{source}:sha-1", "--rule-source").returncode == 2
