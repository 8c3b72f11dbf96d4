"""`promoter local credentials --principal ARN`: keys that act as another principal on the local AWS.

The local AWS knows the principal behind each set of credentials (`local_aws.principals`): these
keys stand for `ARN` (an IAM role, user or account root of any account), so its resource policies
(a repository's, the promotion bus's, the queues') decide what that principal may do, as AWS would.
The keys are derived from the ARN, so they work on any local AWS, running or not, and are the same
every time. Keys the local AWS does not know act as the account's administrator, as before.
Exit codes: 0 printed, 2 bad input (not a role, user or root ARN).
"""

from __future__ import annotations

import argparse

from promoter_cli.cmd_engine import EXIT_OK, bad_input

EXAMPLE_PRINCIPAL = "arn:aws:iam::210987654321:role/ci"


def add_credentials_command(local: argparse.ArgumentParser) -> None:
    """Adds `credentials` under `promoter local`."""
    commands = local.add_subparsers(dest="local_command", metavar="{credentials}")
    parser = commands.add_parser(
        "credentials",
        help="print credentials that act as another principal (role, user, account) on the local AWS",
        description="Prints export lines for keys the local AWS takes for PRINCIPAL: its resource "
        "policies then decide what PRINCIPAL may do, as AWS's would. Paste them after the exports "
        "`promoter local` printed (they keep AWS_ENDPOINT_URL and the region).",
    )
    parser.add_argument(
        "--principal",
        required=True,
        metavar="ARN",
        help=f"an IAM role, user or account root ARN, e.g. {EXAMPLE_PRINCIPAL}",
    )
    parser.set_defaults(func=cmd_credentials)


def cmd_credentials(args: argparse.Namespace) -> int:
    from local_aws.principals import credentials_for

    try:
        credentials = credentials_for(args.principal)
    except ValueError as exc:
        return bad_input(str(exc))
    print("\n".join(credentials.exports()))
    return EXIT_OK
