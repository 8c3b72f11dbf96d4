"""`cdk synth` says nothing to ignore: cdk.json sets the feature flags `cdk init` writes for the
pinned aws-cdk-lib (none left unconfigured), the stacks use no deprecated CDK API, and what the CLI
synthesizes with those flags stays cdk-nag clean (synth fails otherwise) and cfn-lint clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from cfnlint.api import lint

from infra.stack import STACK_NAME

REPO_ROOT = Path(__file__).parents[2]
# What `cdk init` writes into a new project's cdk.json: the CLI's copy of aws-cdk-lib's recommended
# flags (cx-api's CURRENTLY_RECOMMENDED_FLAGS; the same 89 for aws-cdk-lib 2.275.0).
RECOMMENDED_FLAGS = (
    REPO_ROOT / "node_modules" / "aws-cdk" / "lib" / "init-templates" / ".recommended-feature-flags.json"
)
TARGET_ACCOUNT = "210987654321"
# A remote target with a role too, so the TargetAccountStack is built (with the role) as well.
CROSS_ACCOUNT_RULE = {
    "name": "to-prod-account",
    "source": {"repository": "app", "tags": ["v*"]},
    "targets": [
        {
            "repository": "app",
            "account": TARGET_ACCOUNT,
            "role": f"arn:aws:iam::{TARGET_ACCOUNT}:role/promoter",
        }
    ],
}


def _env() -> dict[str, str]:
    """The caller's environment without the variables these checks are about."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDK_", "JSII_DEPRECATED"))}
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    return env


def test_cdk_json_sets_every_recommended_feature_flag_of_the_pinned_cdk():
    recommended = json.loads(RECOMMENDED_FLAGS.read_text())
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    assert {k: context.get(k) for k in recommended} == recommended


def test_cdk_synth_prints_no_deprecation_nor_unconfigured_flags_and_stays_cfn_lint_clean(
    tmp_path, test_config_data
):
    test_config_data["rules"].append(CROSS_ACCOUNT_RULE)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(test_config_data))
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "-q", "--no-notices", "-o", str(out),
         "-c", f"config={config}", "-c", "source_account=111111111111", "-c", "source_region=us-east-1"],
        cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    output = result.stdout + result.stderr
    assert result.returncode == 0, output  # cdk-nag's findings fail synth
    assert "deprecated" not in output.lower(), output
    assert "feature flags are not configured" not in output, output
    for stack in (STACK_NAME, f"{STACK_NAME}Target{TARGET_ACCOUNT}"):
        matches = lint((out / f"{stack}.template.json").read_text())
        assert matches == [], "\n".join(f"{stack}: {m.rule.id} {m.message} at {m.path}" for m in matches)


# Builds both stacks as infra.app does but without cdk-nag (whose EventBusOpenAccess rule itself reads
# the deprecated CfnEventBusPolicy#principal), with cdk.json's context and every deprecated API an error.
_BUILD_WITHOUT_NAG = """
import json, sys
import aws_cdk as cdk
from infra.app import build_target_stacks, stack_options
from infra.stack import STACK_NAME, PromoterStack
from promoter.model.config import load_config

context = json.load(open("cdk.json"))["context"]
context.update(source_account="111111111111", source_region="us-east-1")
app = cdk.App(outdir=sys.argv[2], context=context)
config = load_config(sys.argv[1])
PromoterStack(app, STACK_NAME, config=config, **stack_options(app))
build_target_stacks(app, config)
app.synth()
"""


def test_the_stacks_use_no_deprecated_cdk_api(tmp_path, test_config_data):
    test_config_data["rules"].append(CROSS_ACCOUNT_RULE)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(test_config_data))
    result = subprocess.run(
        [sys.executable, "-c", _BUILD_WITHOUT_NAG, str(config), str(tmp_path / "out")],
        cwd=REPO_ROOT, env={**_env(), "JSII_DEPRECATED": "fail"}, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower()
