"""app.py end to end: the real CDK CLI synth, the sample configuration, and a bad configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.stack import STACK_NAME

REPO_ROOT = Path(__file__).parents[2]
CDK_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"
NODE_BANNER = "end-of-life"


def _env(outdir: Path, context: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without jsii's silencers (app.py must set them itself)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSII_SILENCE")}
    env["CDK_OUTDIR"] = str(outdir)
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    if context is not None:
        env["CDK_CONTEXT_JSON"] = json.dumps(context)  # how the CLI hands `-c key=value` to the app
    return env


def _run_app(tmp_path: Path, context: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env=_env(tmp_path / "out", context),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def bad_config(tmp_path: Path, test_config_data) -> Path:
    data = test_config_data
    data["rules"].append(
        {
            "name": "broken-rule",
            "trigger": "sometimes",
            "source": {"repository": "app-dev"},
            "targets": [{"repository": "app-qa"}],
        }
    )
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_configuration_fails_synth_naming_the_rule_and_the_reason(tmp_path, bad_config):
    result = _run_app(tmp_path, {"config": str(bad_config)})
    assert result.returncode == 2
    assert "broken-rule" in result.stderr
    assert "trigger" in result.stderr and "sometimes" in result.stderr
    assert "Traceback" not in result.stderr and "jsii" not in result.stderr
    assert not (tmp_path / "out" / f"{STACK_NAME}.template.json").exists()


def test_missing_configuration_file_fails_synth_with_a_clear_message(tmp_path):
    result = _run_app(tmp_path, {"config": str(tmp_path / "nowhere.yaml")})
    assert result.returncode == 2
    assert "nowhere.yaml" in result.stderr and "cannot read" in result.stderr
    assert "Traceback" not in result.stderr


def test_oversized_push_pattern_fails_synth_with_a_clear_message(tmp_path):
    rules = [
        {
            "name": f"r{i}",
            "source": {"repository": f"svc-{i:04d}"},
            "targets": [{"repository": f"prod-{i:04d}"}],
        }
        for i in range(200)
    ]
    config = tmp_path / "many.yaml"
    config.write_text(yaml.safe_dump({"rules": rules}))
    result = _run_app(tmp_path, {"config": str(config)})
    assert result.returncode == 1
    assert "over the 2048" in result.stderr
    assert "Traceback" not in result.stderr


def test_sample_configuration_synthesizes_without_the_node_banner(tmp_path):
    result = _run_app(tmp_path)
    assert result.returncode == 0, result.stderr
    assert NODE_BANNER not in result.stderr
    staged = next((tmp_path / "out").glob("asset.*/promoter/promotion.json"))
    sample = yaml.safe_load((REPO_ROOT / "promotion.yaml").read_text())
    staged_rules = json.loads(staged.read_text())["rules"]
    assert {r["name"] for r in staged_rules} == {r["name"] for r in sample["rules"]}


def test_cdk_cli_synth_uses_the_config_given_with_dash_c(tmp_path, test_config_data):
    assert CDK_CLI.exists(), "the pinned CDK CLI is missing: run `npm ci` (./dev setup does)"
    config = tmp_path / "alt.yaml"
    config.write_text(yaml.safe_dump(test_config_data))
    out = tmp_path / "cdk.out"
    env = _env(out)
    del env["CDK_OUTDIR"]
    command = ["npx", "--no-install", "cdk", "synth", "-q", "--no-notices", "-o", str(out)]
    result = subprocess.run(
        [*command, "-c", f"config={config}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert NODE_BANNER not in result.stderr
    template = json.loads((out / f"{STACK_NAME}.template.json").read_text())
    patterns = [
        r["Properties"]["EventPattern"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Events::Rule"
        and "EventBusName" not in r["Properties"]
        and "EventPattern" in r["Properties"]
    ]
    # The push rules' sources and (issue 18: writes behind the promoter's back) every target.
    assert patterns[0]["detail"]["repository-name"] == [
        "app-prod",
        "my-repository-name",
        "my-repository-name-prod",
        {"prefix": "release/team/"},
        {"prefix": "team/"},
        {"wildcard": "mirror/svc-*-api"},
        {"wildcard": "svc-*-api"},
    ]


# Configurations refused for what they would let a pusher do, or for fighting over a tag: each
# named by file and line in one line of output, exit 2, as `promoter validate` refuses them.
ABUSABLE_CONFIGS = {
    "tag-names-repository": (
        "rules:\n  - name: open\n    source: {repository: app-dev}\n    targets:\n"
        '      - repository: "{tag}"\n',
        5,
        "comes from the pushed tag",
    ),
    "duplicate-key": (
        "rules:\n  - name: dup\n    source: {repository: app-dev}\n    targets: [{repository: app-qa}]\n"
        "    targets: [{repository: app-prod}]\n",
        5,
        "duplicate key 'targets'",
    ),
    "two-rules-one-tag": (
        "rules:\n  - name: a\n    source: {repository: app-a}\n"
        "    targets: [{repository: prod, tags: [latest]}]\n"
        "  - name: b\n    source: {repository: app-b}\n    targets: [{repository: prod, tags: [latest]}]\n",
        7,
        "can write the same tag",
    ),
    "backreference": (
        "rules:\n  - name: slow\n    source:\n      repository: app-dev\n      tags: ['re:(a)\\1']\n"
        "    targets: [{repository: app-qa}]\n",
        5,
        "backreference",
    ),
    "over-deep": ("rules: " + "[" * 100 + "]" * 100 + "\n", 1, "nested deeper"),
}


@pytest.mark.parametrize("case", sorted(ABUSABLE_CONFIGS))
def test_abusable_configurations_fail_synth_and_validate_with_file_and_line(tmp_path, case):
    text, line, reason = ABUSABLE_CONFIGS[case]
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    synth = _run_app(tmp_path, {"config": str(config)})
    validate = subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", "validate", "--config", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    for result in (synth, validate):
        assert result.returncode == 2, result.stderr
        assert f"{config}:{line}" in result.stderr and reason in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1  # one line: never the file echoed
    assert not (tmp_path / "out" / f"{STACK_NAME}.template.json").exists()


def test_cdk_cli_synth_refuses_an_abusable_configuration_with_file_and_line(tmp_path):
    text, line, reason = ABUSABLE_CONFIGS["tag-names-repository"]
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    out = tmp_path / "cdk.out"
    env = _env(out)
    del env["CDK_OUTDIR"]
    result = subprocess.run(
        [
            "npx",
            "--no-install",
            "cdk",
            "synth",
            "-q",
            "--no-notices",
            "-o",
            str(out),
            "-c",
            f"config={config}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert f"{config}:{line}" in result.stderr and reason in result.stderr
    assert "exited with error 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_lists_every_target_with_its_registry(tmp_path):
    config = tmp_path / "promotion.yaml"
    config.write_text(
        "rules:\n"
        "  - name: services\n"
        "    source: {repository: 're:svc/(?P<service>[a-z0-9-]+)-dev', tags: ['sha-*']}\n"
        "    targets:\n"
        "      - repository: 'svc/{service}-staging'\n"
        "      - repository: 'svc/{service}-prod'\n"
        "        account: '210987654321'\n"
        "        region: eu-west-1\n"
        "        role: arn:aws:iam::210987654321:role/image-promoter-target\n"
        "  - name: release\n"
        "    trigger: request\n"
        "    requesters: ['arn:aws:iam::210987654321:role/release-*']\n"
        "    source: {repository: app-staging, tags: ['v*']}\n"
        "    targets: [{repository: app-prod, region: us-west-2}]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", "validate", "--config", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "-> svc/{service}-staging:{tag} (this account, this region)" in lines
    assert (
        "-> svc/{service}-prod:{tag} (account 210987654321, region eu-west-1, "
        "as arn:aws:iam::210987654321:role/image-promoter-target)"
    ) in lines
    assert "-> app-prod:{tag} (this account, region us-west-2)" in lines
    assert "requested by: arn:aws:iam::210987654321:role/release-*" in lines
