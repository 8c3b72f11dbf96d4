"""The CDK app: read the promotion configuration, build the stack, check it with cdk-nag, synth.

`cdk synth -c config=PATH` picks another configuration file; the other `-c` keys (below, and in
infra/README.md) set the stack's options. A bad configuration ends synth with one line that names
the file and line, the rule, the field and the reason, and exit status 2 (as `promoter validate`;
no jsii traceback).
A stack that cannot be built from a valid configuration (e.g. an EventBridge pattern over its
quota) ends it with exit status 1.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.protection import check_break_glass_principals
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
RECONCILE_ROLE_CONTEXT_KEY = "reconcile_role_arn"
# The promoter stack's options (infra/README.md, "Context keys"). Lists are comma-separated with
# `-c`, or JSON lists in cdk.json.
TRUSTED_PRINCIPALS_CONTEXT_KEY = "trusted_principals"
# Who may send to the promoter's queue to redrive dead letters (exact IAM role or user ARNs).
REDRIVE_PRINCIPALS_CONTEXT_KEY = "redrive_principals"
REQUEST_SOURCE_CONTEXT_KEY = "request_source"
GATE_SWEEP_MINUTES_CONTEXT_KEY = "gate_sweep_minutes"
ALARM_EMAIL_CONTEXT_KEY = "alarm_email"
ALARM_TOPIC_ARN_CONTEXT_KEY = "alarm_topic_arn"
# Who may write protected targets besides the promoter (exact IAM role or user ARNs); the
# target-account stacks take the same list for their protected repositories.
BREAK_GLASS_PRINCIPALS_CONTEXT_KEY = "break_glass_principals"
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")
_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}")
EXIT_BAD_CONFIGURATION = 2
EXIT_CANNOT_BUILD = 1


def build_app(app: cdk.App, config: PromotionConfig) -> PromoterStack:
    """The stack with the AwsSolutions checks applied, exactly as `cdk synth` builds it."""
    stack = PromoterStack(app, STACK_NAME, config=config, **stack_options(app))
    build_target_stacks(app, config)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


def stack_options(app: cdk.App) -> dict[str, Any]:
    """PromoterStack's keyword arguments from the context keys given (absent keys keep the props'
    defaults). Raises ValueError naming the key for a value that cannot be right."""
    options: dict[str, Any] = {}
    principals = _context_list(app, TRUSTED_PRINCIPALS_CONTEXT_KEY)
    if principals:
        options["trusted_principals"] = tuple(principals)
    redrivers = _context_list(app, REDRIVE_PRINCIPALS_CONTEXT_KEY)
    if redrivers:
        options["redrive_principals"] = tuple(redrivers)
    break_glass = _context_list(app, BREAK_GLASS_PRINCIPALS_CONTEXT_KEY)
    if break_glass:
        options["break_glass_principals"] = check_break_glass_principals(break_glass)
    source = app.node.try_get_context(REQUEST_SOURCE_CONTEXT_KEY)
    if source is not None:
        options["request_source"] = str(source)
    minutes = app.node.try_get_context(GATE_SWEEP_MINUTES_CONTEXT_KEY)
    if minutes is not None:
        try:
            options["gate_sweep_minutes"] = int(minutes)
        except (TypeError, ValueError):
            raise ValueError(
                f"-c {GATE_SWEEP_MINUTES_CONTEXT_KEY} takes whole minutes, got {minutes!r}"
            ) from None
    emails = _context_list(app, ALARM_EMAIL_CONTEXT_KEY)
    for email in emails:
        if not _EMAIL.fullmatch(email):
            raise ValueError(f"-c {ALARM_EMAIL_CONTEXT_KEY} takes e-mail addresses, got {email!r}")
    if emails:
        options["alarm_emails"] = tuple(emails)
    topic_arn = app.node.try_get_context(ALARM_TOPIC_ARN_CONTEXT_KEY)
    if topic_arn is not None:
        if not _TOPIC_ARN.fullmatch(str(topic_arn)):
            raise ValueError(f"-c {ALARM_TOPIC_ARN_CONTEXT_KEY} takes an SNS topic ARN, got {topic_arn!r}")
        options["alarm_topic_arn"] = str(topic_arn)
    return options


def _context_list(app: cdk.App, key: str) -> list[str]:
    """A list context value: `a,b` from `-c key=a,b`, or a JSON list from cdk.json."""
    value = app.node.try_get_context(key)
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


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
            reconcile_role_arn=app.node.try_get_context(RECONCILE_ROLE_CONTEXT_KEY),
            source_stack_name=STACK_NAME,
            break_glass_principals=tuple(_context_list(app, BREAK_GLASS_PRINCIPALS_CONTEXT_KEY)),
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
        print(f"error: invalid promotion configuration: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIGURATION
    try:
        build_app(app, config)
    except ValueError as exc:
        print(f"error: cannot build the stack from {config_path}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_BUILD
    app.synth()
    return 0
