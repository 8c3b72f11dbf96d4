"""The CDK app: read the promotion configuration, build the stack, check it with cdk-nag, synth.

`cdk synth -c config=PATH` picks another configuration file. A bad configuration ends synth with
one line that names the rule, the field and the reason, and exit status 1 (no jsii traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.stack import STACK_NAME, PromoterStack
from promoter import settings
from promoter.config import ConfigError, PromotionConfig, load_config

CONFIG_CONTEXT_KEY = "config"


def build_app(app: cdk.App, config: PromotionConfig) -> PromoterStack:
    """The stack with the AwsSolutions checks applied, exactly as `cdk synth` builds it."""
    stack = PromoterStack(app, STACK_NAME, config=config)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


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
