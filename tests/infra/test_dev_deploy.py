"""`./dev deploy` builds the cdk command it runs (checked with --dry-run, which validates the
configuration and deploys nothing), refuses the local AWS's endpoint, and the real CDK CLI
synthesizes with the stack's `-c` keys as a deploy would pass them."""

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


SAMPLE_CONFIG = REPO_ROOT / settings.DEFAULT_CONFIG_FILE


def dev(
    *args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`./dev ARGS` in an environment without AWS endpoints (the session's local AWS sets one)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    return subprocess.run(
        [str(DEV), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def dry_run(*args: str) -> list[str]:
    """The cdk command a deploy would run: the dry run's first line."""
    result = dev("deploy", "--dry-run", *args)
    assert result.returncode == 0, result.stderr
    return shlex.split(result.stdout.splitlines()[0])


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
        "-c", "config=promotion.yaml", "-c", "alarm_email=ops@example.com", "--require-approval", "never"
    )
    assert command == [
        "npx", "--no-install", "cdk", "deploy",
        "-c", "config=promotion.yaml", "-c", "alarm_email=ops@example.com", "--require-approval", "never",
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


def test_deploy_refuses_an_endpoint_on_this_machine_saying_to_unset_it():
    """`promoter local`'s exports left in the shell would send the deploy to the emulator."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    for name, url in (
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        ("AWS_ENDPOINT_URL_SQS", "http://localhost:9"),
    ):
        for dry in (["--dry-run"], []):
            result = dev("deploy", *dry, env={**base, name: url})
            assert result.returncode == 1, result.stdout + result.stderr
            assert f"{name}={url} points at this machine" in result.stderr
            assert f"unset {name}" in result.stderr
            assert "cdk deploy" not in result.stdout
    remote = dev("deploy", "--dry-run", env={**base, "AWS_ENDPOINT_URL": "https://ecr.example.com"})
    assert remote.returncode == 0, remote.stderr


def test_deploy_dry_run_refuses_a_missing_or_invalid_configuration_with_the_validators_message(tmp_path):
    missing = dev("deploy", "--dry-run", "-c", f"config={tmp_path / 'none.yaml'}")
    assert missing.returncode == 2
    assert "none.yaml" in missing.stderr and "cannot read" in missing.stderr
    assert missing.stdout == ""
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: r\n    trigger: sometimes\n    source: {repository: a}\n"
                   "    targets: [{repository: b}]\n")  # fmt: skip
    invalid = dev("deploy", "--dry-run", "-c", f"config={bad}")
    assert invalid.returncode == 2
    assert "./dev deploy: invalid configuration:" in invalid.stderr
    assert "sometimes" in invalid.stderr
    assert "Traceback" not in invalid.stderr


def test_deploy_dry_run_says_what_it_would_deploy_and_that_cdk_diff_needs_credentials(
    tmp_path, test_config_data
):
    config = tmp_path / "alt.yaml"
    config.write_text(yaml.safe_dump(test_config_data))
    result = dev("deploy", "--dry-run", "-c", f"config={config}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert shlex.split(lines[0]) == [
        "npx",
        "--no-install",
        "cdk",
        "deploy",
        "-c",
        f"config={config}",
        STACK_NAME,
    ]
    report = "\n".join(lines[1:])
    assert f"configuration: {config} (valid: {len(test_config_data['rules'])} rule(s))" in report
    assert f"stacks it would deploy: {STACK_NAME}" in report
    for rule in test_config_data["rules"]:
        assert f"#   {rule['name']}: {rule['source']['repository']}:" in report
    assert "team/*:v* -> release/{repository}:{tag},latest (push)" in report
    assert "needs the account's credentials: npx --no-install cdk diff" in report


def test_deploy_reads_a_relative_configuration_from_the_callers_directory(tmp_path, test_config_data):
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(test_config_data))
    result = dev("deploy", "--dry-run", "-c", "config=mine.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"config={tmp_path / 'mine.yaml'}" in shlex.split(result.stdout.splitlines()[0])


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
