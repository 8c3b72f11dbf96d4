"""`./dev deploy`'s checks before the CDK CLI runs, and its `--dry-run` report.

    python -m infra.preflight [--dry-run] --default-stack NAME [--stack=S ...] npx ... cdk deploy ARGS

Refuses (exit 1) an `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_<SERVICE>` that points at this machine:
that is `promoter local`'s export, and a deploy would send CloudFormation and the asset uploads to
the local AWS, then fail on a bootstrap check of its account. Then validates the configuration the
deploy would read (`-c config=PATH`, else promotion.yaml) as `promoter validate` does (exit 2 with
its message). With `--dry-run` it prints the cdk command (first line, as it would run) and what it
would deploy: the stacks, the rules and their targets. No AWS call is made: what differs from the
deployed stack is `cdk diff`'s to say, and that needs the account's credentials.

Imports no aws_cdk (a jsii start costs seconds), so a dry run stays quick.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from promoter import settings
from promoter.model.config import ConfigError, load_config

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
ENDPOINT_ENV_PREFIX = "AWS_ENDPOINT_URL"
CONFIG_CONTEXT_KEY = "config"  # infra.app.CONFIG_CONTEXT_KEY (that module imports aws_cdk)
CONTEXT_OPTIONS = ("-c", "--context")


def loopback_endpoints(environ: Mapping[str, str]) -> list[str]:
    """The `AWS_ENDPOINT_URL*` variables that point at this machine, sorted."""
    from promoter_cli.cmd_local import is_loopback_endpoint

    return sorted(
        name
        for name, value in environ.items()
        if name.startswith(ENDPOINT_ENV_PREFIX) and value and is_loopback_endpoint(value)
    )


def context_value(cdk_args: Sequence[str], key: str) -> str | None:
    """The last `-c KEY=VALUE` (or `--context KEY=VALUE`, `--context=KEY=VALUE`) among cdk's args."""
    found = None
    for index, arg in enumerate(cdk_args):
        if arg in CONTEXT_OPTIONS and index + 1 < len(cdk_args):
            pair = cdk_args[index + 1]
        elif arg.startswith("--context="):
            pair = arg.split("=", 1)[1]
        else:
            continue
        name, sep, value = pair.partition("=")
        if sep and name == key:
            found = value
    return found


def plan_lines(
    command: Sequence[str], config_path: Path, default_stack: str, stacks: Sequence[str]
) -> list[str]:
    """What the deploy would do, for --dry-run: the stacks (`stacks`, the ones the command names;
    `--all` among them for every stack), the rules and targets, how to diff."""
    from promoter_cli.local_promoter import rule_summary

    config = load_config(config_path)
    accounts = sorted({r.account for r, _ in config.remote_targets() if r.account})
    target_stacks = [f"{default_stack}Target{account}" for account in accounts]
    deploys_all = "--all" in stacks
    lines = [
        f"# configuration: {config_path} (valid: {len(config.rules)} rule(s))",
        "# stacks it would deploy: "
        + (", ".join([default_stack, *target_stacks]) + " (--all)" if deploys_all else ", ".join(stacks)),
    ]
    left_out = [s for s in target_stacks if not deploys_all and s not in stacks]
    if left_out:
        lines.append(
            f"# not deployed by this command: {', '.join(left_out)} (a target account's stack: name it, "
            "with that account's credentials)"
        )
    if deploys_all or default_stack in stacks:
        lines.append(f"# {default_stack}: the promoter (EventBridge rules -> SQS -> Lambda) for these rules:")
        lines += [f"#   {rule_summary(rule)} ({rule.trigger})" for rule in config.rules]
    diff = shlex.join(["npx", "--no-install", "cdk", "diff", *command[4:]])
    lines += [
        "# What would change in the account is cdk diff's to say; it reads the deployed stack, so it",
        f"# needs the account's credentials: {diff}",
    ]
    return lines


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point (./dev deploy); returns the exit status."""
    parser = argparse.ArgumentParser(prog="./dev deploy")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--default-stack", required=True)
    parser.add_argument("--stack", action="append", default=[], help="a stack the command deploys, or --all")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command
    environ = os.environ if environ is None else environ
    local = loopback_endpoints(environ)
    if local:
        shown = ", ".join(f"{name}={environ[name]}" for name in local)
        print(
            f"./dev deploy: {shown} points at this machine (promoter local's export?): a deploy must reach "
            f"AWS itself. Unset it first: unset {' '.join(local)}",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    config_path = Path(context_value(command, CONFIG_CONTEXT_KEY) or settings.DEFAULT_CONFIG_FILE)
    try:
        lines = plan_lines(command, config_path, args.default_stack, args.stack)
    except ConfigError as exc:
        print(f"./dev deploy: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.dry_run:
        print(shlex.join(command))
        print("\n".join(lines))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
