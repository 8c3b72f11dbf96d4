"""`./dev deploy` builds the cdk command it runs (checked with --dry-run, which installs and deploys
nothing), and the real CDK CLI synthesizes with the stack's `-c` keys as a deploy would pass them."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import yaml

from infra.stack import STACK_NAME
from promoter import settings

REPO_ROOT = Path(__file__).parents[2]
DEV = REPO_ROOT / "dev"


def dev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DEV), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def dry_run(*args: str) -> list[str]:
    result = dev("deploy", "--dry-run", *args)
    assert result.returncode == 0, result.stderr
    return shlex.split(result.stdout)


def test_deploy_help_explains_the_options_and_the_one_time_bootstrap():
    result = dev("deploy", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: ./dev deploy")
    assert "cdk bootstrap aws://ACCOUNT/REGION" in result.stdout
    assert "--trust PROMOTER_ACCOUNT" in result.stdout
    for key in ("config", "trusted_principals", "request_source", "gate_sweep_minutes", "alarm_email"):
        assert key in result.stdout


def test_deploy_without_a_stack_name_deploys_the_promoter_stack():
    assert dry_run() == ["npx", "--no-install", "cdk", "deploy", STACK_NAME]


def test_deploy_passes_the_context_options_through_as_synth_takes_them():
    command = dry_run(
        "-c", "config=other.yaml", "-c", "alarm_email=ops@example.com", "--require-approval", "never"
    )
    assert command == [
        "npx", "--no-install", "cdk", "deploy",
        "-c", "config=other.yaml", "-c", "alarm_email=ops@example.com", "--require-approval", "never",
        STACK_NAME,
    ]  # fmt: skip


def test_deploy_of_a_named_stack_or_all_adds_no_default_stack():
    target = f"{STACK_NAME}Target210987654321"
    assert dry_run(target, "--profile", "target") == [
        "npx", "--no-install", "cdk", "deploy", target, "--profile", "target"
    ]  # fmt: skip
    assert dry_run("--all") == ["npx", "--no-install", "cdk", "deploy", "--all"]


def test_a_context_value_with_spaces_stays_one_argument():
    assert dry_run("-c", "request_source=acme ci")[-3:] == ["-c", "request_source=acme ci", STACK_NAME]


def test_cdk_cli_synth_takes_every_stack_context_key(tmp_path, test_config_data):
    config = tmp_path / "alt.yaml"
    config.write_text(yaml.safe_dump(test_config_data))
    out = tmp_path / "cdk.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDK_")}
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    context = {
        "config": str(config),
        "trusted_principals": "210987654321",
        "request_source": "acme.ci",
        "gate_sweep_minutes": "20",
        "alarm_email": "ops@example.com",
    }
    options = [arg for key, value in context.items() for arg in ("-c", f"{key}={value}")]
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "-q", "--no-notices", "-o", str(out), *options],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    template = json.loads((out / f"{STACK_NAME}.template.json").read_text())
    assert template["Outputs"][settings.OUTPUT_REQUEST_SOURCE]["Value"] == "acme.ci"
    (subscription,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SNS::Subscription"]
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"
    bus_policies = json.dumps(
        [r for r in template["Resources"].values() if r["Type"] == "AWS::Events::EventBusPolicy"]
    )
    assert "210987654321" in bus_policies


def test_cdk_cli_synth_refuses_a_bad_context_value_naming_the_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDK_")}
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "-q", "--no-notices", "-o", str(tmp_path / "out"),
         "-c", "gate_sweep_minutes=often"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "gate_sweep_minutes takes whole minutes" in result.stderr
    assert "Traceback" not in result.stderr
