"""The CDK app: read the promotion configuration, build the stack, check it with cdk-nag, synth.

`cdk synth -c config=PATH` picks another configuration file. A bad configuration ends synth with
one line that names the rule, the field and the reason, and exit status 1 (no jsii traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.remote_targets import TargetAccountStack
from infra.stack import STACK_NAME, PromoterStack
from promoter import settings
from promoter.model.config import ConfigError, PromotionConfig, load_config

CONFIG_CONTEXT_KEY = "config"
# Cross-account targets: where the promoter runs (its account and region), for the trust and the
# repository ARNs of each TargetAccountStack; and, once deployed, its role (`FunctionRoleArn`).
SOURCE_ACCOUNT_CONTEXT_KEY = "source_account"
SOURCE_REGION_CONTEXT_KEY = "source_region"
PROMOTER_ROLE_CONTEXT_KEY = "promoter_role_arn"


def build_app(app: cdk.App, config: PromotionConfig) -> PromoterStack:
    """The stack with the AwsSolutions checks applied, exactly as `cdk synth` builds it."""
    stack = PromoterStack(app, STACK_NAME, config=config)
    build_target_stacks(app, config)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


def build_target_stacks(app: cdk.App, config: PromotionConfig) -> list[TargetAccountStack]:
    """One `<STACK_NAME>Target<account>` per target account the rules name (deploy each with that
    account's credentials); none when the rules have no such target."""
    accounts = sorted({r.account for r, _ in config.remote_targets() if r.account})
    if not accounts:
        return []
    source_account = app.node.try_get_context(SOURCE_ACCOUNT_CONTEXT_KEY)
    source_region = app.node.try_get_context(SOURCE_REGION_CONTEXT_KEY)
    if not source_account or not source_region:
        raise ValueError(
            f"targets are in account(s) {', '.join(accounts)}: pass "
            f"-c {SOURCE_ACCOUNT_CONTEXT_KEY}=<account> -c {SOURCE_REGION_CONTEXT_KEY}=<region> "
            "(where the promoter runs) to build their TargetAccountStack"
        )
    return [
        TargetAccountStack(
            app,
            f"{STACK_NAME}Target{account}",
            config=config,
            target_account=account,
            source_account=str(source_account),
            source_region=str(source_region),
            promoter_role_arn=app.node.try_get_context(PROMOTER_ROLE_CONTEXT_KEY),
            source_stack_name=STACK_NAME,
            env=cdk.Environment(account=account, region=str(source_region)),
        )
        for account in accounts
    ]


def main() -> int:
    """Entry point of app.py; returns the process exit status."""
    app = cdk.App()
    config_path = Path(app.node.try_get_context(CONFIG_CONTEXT_KEY) or settings.DEFAULT_CONFIG_FILE)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"error: promotion configuration {config_path}: {exc}", file=sys.stderr)
        return 1
    try:
        build_app(app, config)
    except ValueError as exc:
        print(f"error: cannot build the stack from {config_path}: {exc}", file=sys.stderr)
        return 1
    app.synth()
    return 0
