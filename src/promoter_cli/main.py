"""`promoter`: the command line. Each sub-command lives in its own module with a `register`."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from promoter_cli import (
    cmd_demo,
    cmd_engine,
    cmd_event,
    cmd_local,
    cmd_reconcile,
    cmd_redrive,
    cmd_release,
    cmd_rollback,
    cmd_status,
)
from promoter_cli.resources import StackOutputsError, use_stack

# Each module adds its sub-commands to the parser and sets `func` (args -> exit code).
COMMAND_MODULES = (
    cmd_engine,
    cmd_event,
    cmd_status,
    cmd_local,
    cmd_demo,
    cmd_reconcile,
    cmd_rollback,
    cmd_release,
    cmd_redrive,
)
# The commands that use deployed resources (tables, bus, queues): they take `--stack NAME`.
STACK_COMMANDS = ("handle", "promote", "request", "history", "reconcile", "rollback", "redrive", "status")
EXIT_BAD_INPUT = cmd_engine.EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promoter", description="Event-driven promotion of container images inside AWS ECR."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    for name in STACK_COMMANDS:
        sub.choices[name].add_argument(
            "--stack",
            metavar="NAME",
            help="use the deployed stack's resources (its CloudFormation outputs); "
            "a flag naming a resource still wins, and the stack's outputs win over the environment",
        )
    return parser


def quiet_library_warnings() -> None:
    """Library warnings (Powertools' UserWarning outside Lambda, for one) are for developers of
    those libraries, not for the people running a command: not printed, unless asked for with
    `python -W` or PYTHONWARNINGS (the pattern the `warnings` documentation gives applications)."""
    if not sys.warnoptions:
        warnings.simplefilter("ignore")


def main(argv: Sequence[str] | None = None) -> int:
    quiet_library_warnings()
    # AWS_REGION counts as the region; the local AWS's endpoint alone is enough (its region and
    # keys are filled in when unset).
    os.environ.update(cmd_local.aws_region_default(os.environ))
    os.environ.update(cmd_local.local_aws_defaults(os.environ))
    args = build_parser().parse_args(argv)
    if getattr(args, "stack", None):
        try:
            use_stack(args.stack)
        except StackOutputsError as exc:
            print(f"promoter: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    from botocore.exceptions import NoCredentialsError, NoRegionError

    try:
        return int(args.func(args) or 0)
    except NoRegionError:
        print(
            "promoter: no AWS region: set AWS_REGION or AWS_DEFAULT_REGION (or a profile's region); "
            "against the local AWS, AWS_ENDPOINT_URL=http://127.0.0.1:PORT alone is enough",
            file=sys.stderr,
        )
    except NoCredentialsError:
        print(
            "promoter: no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; "
            "against the local AWS, AWS_ENDPOINT_URL=http://127.0.0.1:PORT alone is enough",
            file=sys.stderr,
        )
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
