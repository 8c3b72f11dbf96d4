"""`promoter rollback --repository R --tag T [--to DIGEST] [--reason TEXT] [--requested-by WHO]
[--account ID] [--region REGION] [--role ARN]`: move a release tag back.

Without `--to`, to the digest the tag had before (from the promotion history); with it, to a digest
the history recorded under that tag. `--account`/`--region` name a target in another registry (the
history keys it `repo@account,region:tag`), written with `--role` when given (assumed from the
caller's credentials), else with the caller's own. Refused with the reason (exit 1) for an immutable
tag, an unknown digest, a tag the history never saw move, or a tag a promotion moved while the
rollback ran (that promotion wins); exit 1 too when the tag moved but the history did not take the
record. Exit codes as `promoter handle`: 0 moved (or already there), 1 refused or failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import re
import sys

from promoter.exceptions import HistoryWriteError, PromoterError, RollbackRefusedError
from promoter.model.templates import is_digest, is_valid_repository, is_valid_tag
from promoter_cli.cmd_engine import EXIT_BAD_INPUT, EXIT_NOT_ALL_PROMOTED, EXIT_OK
from promoter_cli.output import ACTION_COLUMNS, add_json_flag, print_json, print_table, short_digest

ACCOUNT_PATTERN = re.compile(r"[0-9]{12}")
REGION_PATTERN = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `rollback`."""
    parser = sub.add_parser("rollback", help="move a release tag back to its previous (or a known) digest")
    parser.add_argument("--repository", required=True, metavar="R", help="the repository holding the tag")
    parser.add_argument("--tag", required=True, metavar="T", help="the tag to move back")
    parser.add_argument(
        "--to", metavar="DIGEST", help="a digest the history knows (default: the one the tag had before)"
    )
    add_json_flag(parser)
    parser.add_argument("--reason", default="", metavar="TEXT", help="why (kept in the history)")
    parser.add_argument("--requested-by", default=None, metavar="WHO", help="default: user@host")
    parser.add_argument("--account", metavar="ID", help="the target's account (default: the caller's)")
    parser.add_argument("--region", metavar="REGION", help="the target's region (default: the caller's)")
    parser.add_argument("--role", metavar="ARN", help="role to assume for a target in another account")
    parser.set_defaults(func=cmd_rollback)


def cmd_rollback(args: argparse.Namespace) -> int:
    from promoter.aws.history import DynamoDbHistory
    from promoter.aws.registry import EcrRegistry, make_ecr_client
    from promoter.aws.remote import TargetRegistries
    from promoter.workflows.attest import attestor_from_environment
    from promoter.workflows.promote import Promoter
    from promoter.workflows.rollback import RollbackTarget, rollback
    from promoter_cli.cmd_release import caller_arn, requester

    if not is_valid_repository(args.repository):
        return _fail(EXIT_BAD_INPUT, f"{args.repository!r} is not a valid ECR repository name")
    if not is_valid_tag(args.tag):
        return _fail(EXIT_BAD_INPUT, f"{args.tag!r} is not a valid ECR tag")
    if args.to is not None and not is_digest(args.to):
        return _fail(EXIT_BAD_INPUT, f"--to {args.to!r} is not a sha256 digest")
    if args.account is not None and not ACCOUNT_PATTERN.fullmatch(args.account):
        return _fail(EXIT_BAD_INPUT, f"--account {args.account!r} is not a 12-digit account id")
    if args.region is not None and not REGION_PATTERN.fullmatch(args.region):
        return _fail(EXIT_BAD_INPUT, f"--region {args.region!r} is not an AWS region")
    if args.role is not None and args.account is None:
        return _fail(EXIT_BAD_INPUT, "--role needs --account (the account the role writes to)")
    target = RollbackTarget(args.repository, args.tag, args.account, args.region)
    attestor = attestor_from_environment(None, required=False)
    try:
        if args.account or args.region:
            registry = TargetRegistries().registry_for(args.account, args.region, args.role)
        else:
            registry = EcrRegistry(make_ecr_client())
        result = rollback(
            target,
            registry,
            DynamoDbHistory(),
            to=args.to,
            requested_by=requester(args.requested_by),
            reason=args.reason,
            # Attested with the stack's key when one is configured (ATTESTATION_KEY_ARN, --stack);
            # a caller the key policy does not let sign still rolls back, unattested, said at ERROR.
            attest=Promoter(registry, attestor=attestor).attach_attestation if attestor else None,
            authenticated_as=caller_arn(),
        )
    except RollbackRefusedError as exc:
        return _fail(EXIT_NOT_ALL_PROMOTED, f"rollback refused: {exc}")
    except HistoryWriteError as exc:
        return _fail(EXIT_NOT_ALL_PROMOTED, f"rollback not recorded: {exc}")
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
