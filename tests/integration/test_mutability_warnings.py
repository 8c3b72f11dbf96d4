"""`promoter validate` and `plan` warn when a rule would move a floating tag (`latest`, `{major}`)
in a repository whose tag mutability pins it (issue 21, item 5), reading the repositories from the
local ECR with DescribeRepositories, and say which exclusion filter would fix it; without
credentials, or when a read fails, they say the check was not made. The CLI runs as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from promoter import settings
from promoter_cli.mutability import RepositorySettings, floating_tag_is_immutable, tag_wildcard

pytestmark = pytest.mark.integration
PROMOTER = [sys.executable, "-m", "promoter_cli.main"]


def _config(tmp_path: Path, targets: dict[str, list[str]]) -> Path:
    lines = [
        "rules:",
        "  - name: release",
        "    trigger: request",
        "    source: {repository: app-ci, tags: ['re:^v?[0-9]+\\.[0-9]+\\.[0-9]+$']}",
        "    targets:",
        *(f"      - {{repository: {repo}, tags: {json.dumps(tags)}}}" for repo, tags in targets.items()),
    ]
    path = tmp_path / "promotion.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _env(aws_env) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **keep,
        "AWS_ENDPOINT_URL": aws_env.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PROMOTER, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def repos(ecr, unique_name):
    """Target repositories in each tag mutability mode, named by mode."""
    made = {
        "mutable": unique_name("mut"),
        "immutable": unique_name("imm"),
        "excluded": unique_name("excl"),
        "pinned": unique_name("pin"),
    }
    ecr.create_repository(repositoryName=made["mutable"])
    ecr.create_repository(repositoryName=made["immutable"], imageTagMutability="IMMUTABLE")
    ecr.create_repository(
        repositoryName=made["excluded"],
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}],
    )
    ecr.create_repository(
        repositoryName=made["pinned"],
        imageTagMutability="MUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "lat*"}],
    )
    return made


def test_validate_flags_each_floating_tag_the_repository_pins_and_names_the_filter_that_fixes_it(
    aws_env, repos, tmp_path
):
    config = _config(
        tmp_path,
        {
            repos["mutable"]: ["{tag}", "latest", "{major}"],
            repos["immutable"]: ["{tag}", "latest"],
            repos["excluded"]: ["{tag}", "latest", "{major}.{minor}"],
            repos["pinned"]: ["{tag}", "latest"],
        },
    )

    done = _run(_env(aws_env), "validate", "--config", str(config))

    assert done.returncode == 0, done.stderr
    warnings = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("warning:")]
    assert len(warnings) == 3, done.stdout
    (immutable,) = [w for w in warnings if repos["immutable"] in w]
    assert "'latest'" in immutable and "IMMUTABLE" in immutable
    assert "IMMUTABLE_WITH_EXCLUSION with the exclusion filter 'latest'" in immutable
    (excluded,) = [w for w in warnings if repos["excluded"] in w]
    assert "'{major}.{minor}'" in excluded and "exclusion filter '*.*'" in excluded
    assert "filterType=WILDCARD,filter=latest filterType=WILDCARD,filter=*.*" in excluded  # 'latest' kept
    (pinned,) = [w for w in warnings if repos["pinned"] in w]
    assert "MUTABLE_WITH_EXCLUSION" in pinned and "remove the exclusion filter" in pinned
    assert not any(repos["mutable"] in w for w in warnings)
    assert "{tag}" not in " ".join(warnings)  # an exact tag never moves: nothing to warn about


def test_the_fix_it_names_makes_the_warning_go(aws_env, ecr, repos, tmp_path):
    config = _config(tmp_path, {repos["immutable"]: ["{tag}", "latest"]})
    env = _env(aws_env)
    assert "warning:" in _run(env, "validate", "--config", str(config)).stdout

    ecr.put_image_tag_mutability(
        repositoryName=repos["immutable"],
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}],
    )

    assert "warning:" not in _run(env, "validate", "--config", str(config)).stdout


def test_without_credentials_validate_says_the_check_was_not_made(aws_env, repos, tmp_path):
    config = _config(tmp_path, {repos["immutable"]: ["latest"]})
    env = {k: v for k, v in _env(aws_env).items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env.pop("AWS_ENDPOINT_URL")  # real AWS, and no credentials to reach it with
    env["AWS_SHARED_CREDENTIALS_FILE"] = env["AWS_CONFIG_FILE"] = str(tmp_path / "none")
    env["AWS_EC2_METADATA_DISABLED"] = "true"

    done = _run(env, "validate", "--config", str(config))

    assert done.returncode == 0, done.stderr
    assert "note: floating tags not checked" in done.stdout and "no AWS credentials" in done.stdout
    assert "warning:" not in done.stdout


def test_a_failed_read_is_said_and_the_rest_still_checked(aws_env, repos, tmp_path):
    config = _config(tmp_path, {repos["excluded"]: ["{major}"], repos["immutable"]: ["latest"]})
    aws_env.control.fail_next(
        "DescribeRepositories",
        "AccessDeniedException",
        message="not authorized to perform: ecr:DescribeRepositories",
        match={"repositoryNames": [repos["excluded"]]},
    )

    done = _run(_env(aws_env), "validate", "--config", str(config))

    assert done.returncode == 0, done.stderr
    assert (
        f"note: could not read the tag mutability of {repos['excluded']}: AccessDeniedException"
        in done.stdout
    )
    assert f"floating tag 'latest' cannot move in {repos['immutable']}" in done.stdout


def test_plan_carries_the_warnings_in_its_json_and_on_stderr(aws_env, repos, tmp_path):
    config = _config(tmp_path, {repos["immutable"]: ["{tag}", "latest"]})
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {
                "id": "plan-1",
                "source": settings.DEFAULT_REQUEST_EVENT_SOURCE,
                "detail-type": settings.REQUEST_DETAIL_TYPE,
                "detail": {"repository-name": "app-ci", "image-tag": "v1.2.3", "rule": "release"},
            }
        )
    )
    env = _env(aws_env)

    as_json = _run(env, "plan", str(event), "--config", str(config), "--json")
    as_text = _run(env, "plan", str(event), "--config", str(config))

    (warning,) = json.loads(as_json.stdout)["warnings"]
    assert f"floating tag 'latest' cannot move in {repos['immutable']}" in warning
    assert f"promoter: warning: rule release: floating tag 'latest' cannot move in {repos['immutable']}" in (
        as_text.stderr
    )


@pytest.mark.parametrize(
    ("template", "filters", "mode", "pinned"),
    [
        ("latest", (), "IMMUTABLE", True),
        ("latest", ("latest",), "IMMUTABLE_WITH_EXCLUSION", False),
        ("latest", ("lat*",), "IMMUTABLE_WITH_EXCLUSION", False),
        ("{major}", ("latest",), "IMMUTABLE_WITH_EXCLUSION", True),
        ("{major}", ("*",), "IMMUTABLE_WITH_EXCLUSION", False),
        ("v{major}", ("v*",), "IMMUTABLE_WITH_EXCLUSION", False),
        ("latest", ("latest",), "MUTABLE_WITH_EXCLUSION", True),
        ("latest", (), "MUTABLE", False),
    ],
)
def test_ecrs_four_modes_decide_whether_a_floating_tag_can_move(template, filters, mode, pinned):
    assert floating_tag_is_immutable(RepositorySettings(mode, filters), template) is pinned
    assert tag_wildcard("{major}.{minor}") == "*.*"
