"""`promoter reconcile [--config F] [--dry-run]`: the scheduled sweep, once, from the command line.

It runs a whole pass (no time budget, no saved cursor: the cursor belongs to the scheduled
function) on the Lambda's code path: the same idempotency table, history and result events. `--dry-run`
reads only (ListImages, DescribeRepositories, BatchGetImage) and reports what it would promote.
Exit codes as `promoter handle`: 0 nothing failed, 1 a failure or conflict, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from promoter.exceptions import PromoterError
from promoter_cli.cmd_engine import (
    EXIT_NOT_ALL_PROMOTED,
    EXIT_OK,
    _add_config,
    config_or_exit,
)
from promoter_cli.output import add_json_flag, print_actions, print_json


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `reconcile`."""
    parser = sub.add_parser(
        "reconcile", help="promote source images whose targets are missing or behind (lost events)"
    )
    _add_config(parser)
    parser.add_argument(
        "--dry-run", action="store_true", help="report what would be promoted; make no write call at all"
    )
    add_json_flag(parser)
    parser.set_defaults(func=cmd_reconcile)


def cmd_reconcile(args: argparse.Namespace) -> int:
    from promoter.aws.history import DynamoDbHistory
    from promoter.aws.idempotency import idempotent_runner, make_persistence
    from promoter.aws.registry import EcrRegistry, make_ecr_client
    from promoter.aws.results import EventBridgeResults
    from promoter.workflows.attest import attestor_from_environment
    from promoter.workflows.out_of_band import repair_note
    from promoter.workflows.promote import Promoter
    from promoter.workflows.reconcile import reconcile
    from promoter.workflows.rollback import rollback_hold

    config = config_or_exit(args.config)
    if isinstance(config, int):
        return config
    registry = EcrRegistry(make_ecr_client())
    history = DynamoDbHistory()
    try:
        # Attested as the scheduled run attests (ATTESTATION_KEY_ARN, or --stack); in-sync targets
        # whose attestation is missing get it.
        promoter = Promoter(registry, attestor=attestor_from_environment(config))
        run = None if args.dry_run else idempotent_runner(promoter, make_persistence())
        report = reconcile(
            config,
            registry,
            run,
            attestations=promoter if promoter.attests else None,
            history=None if args.dry_run else history,
            hold_back=rollback_hold(history),
            repair_note=repair_note(history),
            results=None if args.dry_run else EventBridgeResults(),
        )
    except PromoterError as exc:
        print(f"promoter: {exc}", file=sys.stderr)
        return EXIT_NOT_ALL_PROMOTED
    if args.json:
        print_json(report.to_dict())
    else:
        print_report(report.to_dict(), report.succeeded)
    return EXIT_OK if report.succeeded else EXIT_NOT_ALL_PROMOTED


def print_report(report: dict[str, Any], succeeded: bool) -> None:
    """One line per target that was not in sync, then the errors, then the summary: last, where it
    is read, and saying `failed` when anything did (an error, a failed or conflicting target)."""
    if report["results"]:
        print_actions(report["results"])
    for error in report["errors"]:
        print(f"error: {error}")
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(report["outcomes"].items()))
    state = "complete" if report["complete"] else "incomplete (run it again to go on)"
    if not succeeded:
        what = f"{len(report['errors'])} error(s)" if report["errors"] else "failed targets"
        state = f"failed ({what} above)" + ("" if report["complete"] else f", {state}")
    print(
        f"{'dry run: ' if report['dry_run'] else ''}{report['images']} image(s) in {report['repositories']} "
        f"repository(ies) of {report['rules']} push rule(s): {report['in_sync']} target(s) in sync, "
        f"{report['superseded']} superseded{', ' + counts if counts else ''}; {state}"
    )
