"""`promoter rollback --repository R --tag T [--to DIGEST]`: move a release tag back.

Without `--to`, to the digest the tag had before (from the promotion history); with it, to a digest
the history recorded under that tag. Refused with the reason (exit 1) for an immutable tag, an
unknown digest, or a tag the history never saw move. Exit codes as `promoter handle`: 0 moved (or
already there), 1 refused or failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from promoter.exceptions import PromoterError, RollbackRefusedError
from promoter.model.templates import is_digest, is_valid_repository, is_valid_tag
from promoter_cli.cmd_engine import EXIT_BAD_INPUT, EXIT_NOT_ALL_PROMOTED, EXIT_OK
from promoter_cli.output import ACTION_COLUMNS, add_json_flag, print_json, print_table, short_digest


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `rollback`."""
    parser = sub.add_parser("rollback", help="move a release tag back to its previous (or a known) digest")
    parser.add_argument("--repository", required=True, metavar="R", help="the repository holding the tag")
    parser.add_argument("--tag", required=True, metavar="T", help="the tag to move back")
    parser.add_argument(
        "--to", metavar="DIGEST", help="a digest the history knows (default: the one the tag had before)"
    )
    add_json_flag(parser)
    parser.set_defaults(func=cmd_rollback)


def cmd_rollback(args: argparse.Namespace) -> int:
    from promoter.aws.history import DynamoDbHistory
    from promoter.aws.registry import EcrRegistry, make_ecr_client
    from promoter.workflows.promote import Promoter
    from promoter.workflows.rollback import rollback

    if not is_valid_repository(args.repository):
        return _fail(EXIT_BAD_INPUT, f"{args.repository!r} is not a valid ECR repository name")
    if not is_valid_tag(args.tag):
        return _fail(EXIT_BAD_INPUT, f"{args.tag!r} is not a valid ECR tag")
    if args.to is not None and not is_digest(args.to):
        return _fail(EXIT_BAD_INPUT, f"--to {args.to!r} is not a sha256 digest")
    registry = EcrRegistry(make_ecr_client())
    try:
        result = rollback(
            args.repository, args.tag, registry, Promoter(registry), DynamoDbHistory(), to=args.to
        )
    except RollbackRefusedError as exc:
        return _fail(EXIT_NOT_ALL_PROMOTED, f"rollback refused: {exc}")
    except PromoterError as exc:
        return _fail(EXIT_NOT_ALL_PROMOTED, f"rollback failed: {exc}")
    if args.json:
        print_json(result.to_dict())
    else:
        print_table(
            ACTION_COLUMNS,
            [
                [
                    result.outcome,
                    f"{result.repository}:{result.tag}",
                    short_digest(result.to_digest),
                    f"from {short_digest(result.from_digest) or 'no digest'}",
                ]
            ],
        )
    return EXIT_OK


def _fail(code: int, message: str) -> int:
    print(f"promoter: {message}", file=sys.stderr)
    return code
