"""`promoter local`: the local AWS in the foreground (ECR on a real registry, moto for the rest)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

DEFAULT_PORT = 4566
READY_LINE = "local AWS ready at {endpoint}"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "local",
        help="run the local AWS (ECR + /v2 registry + DynamoDB/SQS/EventBridge/STS) on one port",
        description="Serve everything the promoter talks to on one loopback port; point boto3 at it "
        "with AWS_ENDPOINT_URL. Stops cleanly on Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (0 = any free; {DEFAULT_PORT})")
    parser.add_argument("--data", type=Path, default=None, help="keep state here (default: a temp dir)")
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="OP=N",
        help="limit an ECR operation to N calls/s, e.g. PutImage=10 (repeatable)",
    )
    parser.add_argument("--account", default=None, help="account id (default 123456789012)")
    parser.add_argument("--region", default=None, help="default region (default us-east-1)")
    parser.set_defaults(func=run_local)


def run_local(args: argparse.Namespace) -> int:
    from local_aws import DEFAULT_ACCOUNT, DEFAULT_REGION, LocalAws, RegistryNotInstalledError
    from local_aws.faults import parse_rate
    from local_aws.registry import RegistryStartError

    try:
        rates = dict(parse_rate(spec) for spec in args.rate)
    except ValueError as exc:
        print(f"promoter local: {exc}", file=sys.stderr)
        return 2
    account = args.account or DEFAULT_ACCOUNT
    if not (len(account) == 12 and account.isdigit()):
        print(f"promoter local: --account must be 12 digits, got {account!r}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    local = LocalAws(
        port=args.port, data_dir=args.data, rates=rates, account=account, region=args.region or DEFAULT_REGION
    )
    try:
        local.start()
    except RegistryNotInstalledError as exc:
        print(f"promoter local: {exc}", file=sys.stderr)
        return 3
    except (RegistryStartError, OSError) as exc:
        print(f"promoter local: could not start: {exc}", file=sys.stderr)
        return 1
    try:
        print(READY_LINE.format(endpoint=local.endpoint), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        local.stop()
    return 0
