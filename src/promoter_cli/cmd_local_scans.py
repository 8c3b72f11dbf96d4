"""`promoter local scan-findings REPO@DIGEST --critical 1 ...`: what the local ECR's scanner finds.

The local ECR has no vulnerability scanner: a scan (on push, or `StartImageScan`) completes at once
with the findings set for the image, or with none. This sets them on a running local AWS (its
control API, at AWS_ENDPOINT_URL or `--endpoint`): for an image in the repository its scan
completes now and the `ECR Image Scan` event is sent, so a promotion waiting on the scan gate
resumes; for an image not pushed yet, its scan reports them when it runs.
Exit codes: 0 set, 1 no local AWS answered, 2 bad input.
"""

from __future__ import annotations

import argparse
import os

from promoter.model.config import SEVERITIES
from promoter_cli.cmd_engine import EXIT_NOT_ALL_PROMOTED, EXIT_OK, bad_input

SCAN_FINDINGS_COMMAND = "scan-findings"


def add_scan_findings_command(local: argparse.ArgumentParser) -> None:
    """Adds `scan-findings` under `promoter local` (beside the sub-commands already there)."""
    commands = next(
        (a for a in local._actions if isinstance(a, argparse._SubParsersAction)),
        None,
    ) or local.add_subparsers(dest="local_command")
    commands.metavar = "{" + ",".join(commands.choices) + ("," if commands.choices else "")
    commands.metavar += SCAN_FINDINGS_COMMAND + "}"
    parser = commands.add_parser(
        SCAN_FINDINGS_COMMAND,
        help="set what the local ECR's scan of an image finds; its scan completes and sends its event",
        description="Sets the vulnerability findings of REPOSITORY@DIGEST on a running local AWS. An "
        "image in the repository is scanned again at once with them and its 'ECR Image Scan' event "
        "is sent (a promotion waiting on a scan gate resumes); for an image not pushed yet, its scan "
        "on push reports them.",
    )
    parser.add_argument("image", metavar="REPOSITORY@DIGEST", help="e.g. team/api@sha256:<64 hex>")
    for severity in SEVERITIES:
        parser.add_argument(
            f"--{severity.lower()}",
            type=int,
            default=0,
            metavar="N",
            help=f"how many {severity} findings (default 0)",
        )
    parser.add_argument(
        "--endpoint",
        default=None,
        metavar="URL",
        help="the local AWS (default: AWS_ENDPOINT_URL)",
    )
    parser.add_argument(
        "--account", default=None, help="the registry's account (default: the local AWS's own)"
    )
    parser.add_argument("--region", default=None, help="the registry's region (default: the local AWS's own)")
    parser.set_defaults(func=cmd_scan_findings)


def cmd_scan_findings(args: argparse.Namespace) -> int:
    from local_aws.control import ControlClient, ControlError
    from local_aws.manifests import DIGEST_RE, REPOSITORY_RE
    from promoter_cli.cmd_local import is_loopback_endpoint

    repository, _, digest = str(args.image).partition("@")
    if not REPOSITORY_RE.match(repository) or not DIGEST_RE.match(digest):
        return bad_input(f"{args.image!r} is not REPOSITORY@sha256:<64 lower-case hex digits>")
    counts = {s: getattr(args, s.lower()) for s in SEVERITIES}
    negative = [f"--{s.lower()}" for s, n in counts.items() if n < 0]
    if negative:
        return bad_input(f"{', '.join(negative)} must be 0 or more")
    endpoint = args.endpoint or os.environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint or not is_loopback_endpoint(endpoint):
        return bad_input(
            "scan findings are set on a local AWS: pass --endpoint or set AWS_ENDPOINT_URL to the URL "
            "`promoter local` printed"
        )
    findings = [
        {"name": f"LOCAL-{severity}-{n}", "severity": severity, "description": "set by promoter local"}
        for severity, count in counts.items()
        for n in range(1, count + 1)
    ]
    try:
        scanned = ControlClient(endpoint).set_scan_findings(
            repository, digest, findings, account=args.account, region=args.region
        )
    except (ControlError, OSError) as exc:
        print(f"promoter: the local AWS at {endpoint} did not take the findings: {exc}")
        return EXIT_NOT_ALL_PROMOTED
    found = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    if scanned:
        print(f"scan of {repository}@{digest} complete: {found} (ECR Image Scan event sent)")
    else:
        print(f"{repository}@{digest} is not pushed yet: its scan will report {found}")
    return EXIT_OK
