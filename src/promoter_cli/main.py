"""`promoter`: the command line. Each sub-command lives in its own module with a `register`."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from promoter_cli import (
    cmd_approvals,
    cmd_attestation,
    cmd_demo,
    cmd_engine,
    cmd_event,
    cmd_local,
    cmd_reconcile,
    cmd_redrive,
    cmd_release,
    cmd_rollback,
    cmd_schema,
    cmd_status,
)
from promoter_cli.resources import (
    NO_REGION_MESSAGE,
    StackOutputsError,
    aws_setup_problem,
    local_endpoint_down_message,
    local_endpoint_refuses,
    use_stack,
)

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
    cmd_schema,
    cmd_approvals,
    # `attestation key|verify` (and H6's `attestation policy`, registered in cmd_attestation).
    cmd_attestation,
)
# The commands that use deployed resources (tables, bus, queues): they take `--stack NAME`.
STACK_COMMANDS = (
    "handle",
    "promote",
    "request",
    "history",
    "reconcile",
    "rollback",
    "redrive",
    "status",
    "approvals",
    "approve",
    "reject",
)
# Every command that calls AWS: before it runs, a missing region or a local AWS not started is
# said in one line (exit 2), however the command would have met it. `event push` calls AWS only
# to read the digest it was not given.
AWS_COMMANDS = (*STACK_COMMANDS, "plan")
EXIT_BAD_INPUT = cmd_engine.EXIT_BAD_INPUT


def calls_aws(args: argparse.Namespace) -> bool:
    if args.command == "event":
        return args.kind == "push" and args.digest is None
    return args.command in AWS_COMMANDS


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


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments; an unknown one is refused by its sub-command, with that command's usage (exit 2),
    and `--config` given to a command that does not read the rules names the ones that do."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        command = commands[args.command]
        hint = ""
        if "--config" in unknown or any(u.startswith("--config=") for u in unknown):
            readers = sorted(name for name, p in commands.items() if "--config" in p._option_string_actions)
            hint = f" ({args.command} does not read the rules; --config is for: {', '.join(readers)})"
        command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args


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
    args = parse_args(build_parser(), argv)
    if calls_aws(args) and (problem := aws_setup_problem()):
        print(f"promoter: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if getattr(args, "stack", None):
        try:
            use_stack(args.stack)
        except StackOutputsError as exc:
            print(f"promoter: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # What the run held is released on the way out (a promotion's idempotency record).
        print("promoter: interrupted", file=sys.stderr)
        return cmd_engine.EXIT_INTERRUPTED
    except NoRegionError:
        print(f"promoter: {NO_REGION_MESSAGE}", file=sys.stderr)
    except EndpointConnectionError as exc:
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
        if not (endpoint and local_endpoint_refuses(endpoint)):
            raise
        print(f"promoter: {local_endpoint_down_message(endpoint)} ({exc})", file=sys.stderr)
    except NoCredentialsError:
        print(
            "promoter: no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; "
            "against the local AWS, AWS_ENDPOINT_URL=http://127.0.0.1:PORT alone is enough",
            file=sys.stderr,
        )
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
