"""`promoter request | history | promote`: the release workflow from the command line (issue 5).

`request` posts an `Image Promotion Requested` event to the promoter's bus (what CI does after its
tests pass): the bus from `--bus`, `--stack` or $PROMOTION_EVENT_BUS, never `default` unless named;
`history` reads the history table; `promote` is the break-glass one-off, through the
same engine, idempotency, history and result events as the Lambda (trigger `manual`).
Exit codes as `handle`: 0 done, 1 not all promoted (or the bus refused the request), 2 bad input.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import uuid
from typing import Any

from promoter import settings
from promoter.exceptions import PromoterError
from promoter.model.templates import is_digest, is_valid_repository, is_valid_tag
from promoter_cli.cmd_engine import EXIT_NOT_ALL_PROMOTED, EXIT_OK, bad_input
from promoter_cli.output import add_json_flag, print_event_result, print_json, short_digest
from promoter_cli.output import print_table as print_columns

DEFAULT_HISTORY_LIMIT = 20
MANUAL_RULE = "manual"
# Who a CLI call is "by": CI systems name their actor; otherwise user@host.
REQUESTER_ENV_VARS = ("PROMOTER_REQUESTED_BY", "GITHUB_ACTOR", "CODEBUILD_INITIATOR", "GITLAB_USER_LOGIN")
HISTORY_COLUMNS = (
    "when",
    "outcome",
    "trigger",
    "rule",
    "source",
    "target",
    "digest",
    "attestation",
    "by",
    "authenticated",
    "reason",
)


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `request`, `history` and `promote`."""
    request = sub.add_parser("request", help="ask the promoter (its bus) to promote an image")
    request.add_argument("--repository", required=True, metavar="R", help="source repository")
    request.add_argument(
        "--tag", metavar="T", help="image tag (with --digest: promoted only if it points there when handled)"
    )
    request.add_argument("--digest", metavar="D", help="image digest (sha256:...): the image that was tested")
    request.add_argument("--rule", metavar="NAME", help="only this request rule (default: every match)")
    request.add_argument(
        "--rule-source",
        action="store_true",
        help="post on the rule's own source (<source>.rule.<NAME>): how a rule with requesters: is "
        "requested (the bus lets only its requesters post it); needs --rule",
    )
    request.add_argument("--reason", default="", metavar="TEXT", help="why (kept in the history)")
    request.add_argument(
        "--requested-by",
        default=None,
        metavar="WHO",
        help="default: $PROMOTER_REQUESTED_BY, else your principal ARN (STS GetCallerIdentity: what an "
        "approval gate compares with its approvers), else CI actor or user@host",
    )
    request.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="free-form, repeatable"
    )
    request.add_argument(
        "--bus",
        "--event-bus",
        dest="bus",
        default=None,
        metavar="BUS",
        help=f"the promoter's bus (default: the --stack output, else ${settings.EVENT_BUS_ENV}); "
        f"'{settings.DEFAULT_EVENT_BUS}' only when named",
    )
    request.set_defaults(func=cmd_request)

    history = sub.add_parser("history", help="show the promotion history (newest first)")
    history.add_argument("--repository", metavar="R", help="source or target repository")
    history.add_argument("--tag", metavar="T", help="target tag")
    history.add_argument("--digest", metavar="D", help="source or target digest")
    history.add_argument("--limit", type=int, default=DEFAULT_HISTORY_LIMIT, metavar="N")
    history.add_argument("--json", action="store_true", help="JSON instead of a table")
    history.set_defaults(func=cmd_history)

    promote = sub.add_parser(
        "promote", help="break-glass: promote one image now (trigger manual; no rules, no scan gate)"
    )
    promote.add_argument("image", metavar="REPO:TAG|REPO@DIGEST")
    promote.add_argument(
        "--to", action="append", required=True, metavar="REPO[:TAG,...]", help="target (repeatable)"
    )
    promote.add_argument("--reason", default="", metavar="TEXT", help="why (kept in the history)")
    promote.add_argument("--requested-by", default=None, metavar="WHO", help="default: user@host")
    add_json_flag(promote)
    promote.set_defaults(func=cmd_promote)


def requester(explicit: str | None) -> str:
    if explicit:
        return explicit
    for name in REQUESTER_ENV_VARS:
        if os.environ.get(name):
            return os.environ[name]
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        return "unknown"


def request_requester(explicit: str | None) -> str:
    """Who asks for a promotion: `explicit` (--requested-by) or $PROMOTER_REQUESTED_BY as given;
    else the caller's principal ARN as STS says, which is what an approval gate compares with its
    approvers (the requester may not approve their own request); else, when STS cannot say, the
    old default (`requester`: CI actor or user@host) with a one-line note on stderr."""
    chosen = explicit or os.environ.get(REQUESTER_ENV_VARS[0])
    if chosen:
        return chosen
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    try:
        return str(boto3.client("sts").get_caller_identity()["Arn"])
    except (NoCredentialsError, NoRegionError):
        raise  # no call can succeed: said as every command says it (promoter_cli.main)
    except (ClientError, BotoCoreError) as exc:
        fallback = requester(None)
        why = " ".join(str(exc).split())
        print(
            f"promoter: note: requested-by is {fallback!r}, not your principal ARN (STS GetCallerIdentity "
            f"failed: {why}); an approval gate then cannot tell you from its approvers",
            file=sys.stderr,
        )
        return fallback


def cmd_request(args: argparse.Namespace) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    if args.rule_source and not args.rule:
        return bad_input("--rule-source needs --rule NAME: the source names the rule")
    if not is_valid_repository(args.repository):
        return bad_input(f"{args.repository!r} is not a valid repository name")
    if args.tag is None and args.digest is None:
        return bad_input("name the image: --tag, --digest, or both (binds the tag to the tested digest)")
    if args.digest is not None and not is_digest(args.digest):
        return bad_input(f"{args.digest!r} is not a sha256 digest")
    if args.tag is not None and not is_valid_tag(args.tag):
        return bad_input(f"{args.tag!r} is not a valid tag")
    metadata: dict[str, str] = {}
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep or not key:
            return bad_input(f"--metadata takes KEY=VALUE, got {item!r}")
        metadata[key] = value
    from promoter.aws.history import unwritable_text
    from promoter.model.plan import Provenance

    declared = Provenance(
        requested_by=request_requester(args.requested_by), reason=args.reason or "", metadata=metadata
    )
    unwritable = unwritable_text(declared)
    if unwritable is not None:  # the promoter would refuse it: no record could hold it
        return bad_input(
            f"--{unwritable} is not Unicode text (an undecodable byte?): no record could hold it"
        )
    detail: dict[str, Any] = {
        "repository-name": args.repository,
        "requested-by": declared.requested_by,
        "reason": args.reason,
        "metadata": metadata,
    }
    if args.digest:
        detail["image-digest"] = args.digest
    if args.tag:
        detail["image-tag"] = args.tag
    if args.rule:
        detail["rule"] = args.rule
    # Never the default bus by accident: the stack's request rule listens on its own bus, and a
    # request posted elsewhere is accepted by EventBridge and then heard by nobody.
    bus = args.bus or os.environ.get(settings.EVENT_BUS_ENV)
    if not bus:
        return bad_input(
            f"which bus? pass --stack NAME (its {settings.OUTPUT_EVENT_BUS} output), --bus NAME, or set "
            f"{settings.EVENT_BUS_ENV}; a request is posted to the '{settings.DEFAULT_EVENT_BUS}' bus "
            f"only with --bus {settings.DEFAULT_EVENT_BUS}"
        )
    entry = {
        "EventBusName": bus,
        "Source": settings.rule_request_source(args.rule)
        if args.rule_source
        else settings.request_event_source(),
        "DetailType": settings.REQUEST_DETAIL_TYPE,
        "Detail": json.dumps(detail),
    }
    try:
        response = boto3.client("events").put_events(Entries=[entry])
    except (ClientError, BotoCoreError) as exc:
        print(f"promoter: the request was not posted to {bus}: {exc}", file=sys.stderr)
        return EXIT_NOT_ALL_PROMOTED
    posted = (response.get("Entries") or [{}])[0]
    if response.get("FailedEntryCount") or "EventId" not in posted:
        print(f"promoter: {bus} refused the request: {posted.get('ErrorMessage', posted)}", file=sys.stderr)
        return EXIT_NOT_ALL_PROMOTED
    json.dump({"event-id": posted["EventId"], "event-bus": bus, "detail": detail}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from promoter.aws.history import DynamoDbHistory

    if args.limit < 1:
        return bad_input("--limit must be at least 1")
    try:
        items = DynamoDbHistory().find(args.repository, args.tag, args.digest, args.limit)
    except (ClientError, BotoCoreError) as exc:
        print(f"promoter: cannot read history table {settings.history_table_name()}: {exc}", file=sys.stderr)
        return EXIT_NOT_ALL_PROMOTED
    rows = [history_row(item) for item in items]
    if args.json:
        print_json(rows)
    else:
        print_table(rows)
    return EXIT_OK


def history_row(item: dict[str, Any]) -> dict[str, Any]:
    """One history record as the CLI shows it (JSON keys = table columns, plus the details)."""
    from promoter.aws.gate_store import _plain as plain_item  # DynamoDB's Decimals as numbers

    source = str(item.get("source", ""))
    digest = source.rpartition("@")[2]
    reason = item.get("reason") or item.get("request_reason") or ""
    return {
        "when": item.get("at") or str(item.get("sk", "")).split("#", 1)[0],
        "outcome": item.get("outcome", ""),
        "trigger": item.get("trigger", ""),
        "rule": item.get("rule", ""),
        "source": source.rpartition("@")[0],
        "target": item.get("pk", ""),
        "digest": digest,
        "by": item.get("requested_by", ""),
        # What AWS authenticated, apart from the declared `by` (older records have none).
        "authenticated": item.get("authenticated_as", ""),
        "reason": reason,
        "request_id": item.get("request_id", item.get("event_id", "")),
        "request_reason": item.get("request_reason", ""),
        "target_digest": item.get("target_digest", ""),
        # The digest of the promotion's attestation in the target repository (issue 19; "" none).
        "attestation": item.get("attestation", ""),
        # The approval gate's decisions (issue 20): {wait_id, requester, min, approvals: [{by, at,
        # reason}], rejection, superseded_by, expires}; {} without one (older records have none).
        "approval": plain_item(item.get("approval") or {}),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    """History rows as the CLI's aligned table; free text with its control characters escaped
    (output.printable: a requester's text must not drive the operator's terminal)."""
    if not rows:
        print("no history")
        return
    print_columns(
        HISTORY_COLUMNS,
        [[_history_cell(r, c) for c in HISTORY_COLUMNS] for r in rows],
    )


def _history_cell(row: dict[str, Any], column: str) -> str:
    """A history row's cell as the table shows it: the digest shortened; as the reason, the one a
    person gave (`--reason`: a request's, a promotion's, a rollback's) before the engine's own."""
    if column in ("digest", "attestation"):
        return short_digest(str(row[column]))
    if column == "reason":
        given, engine = str(row["request_reason"]), str(row["reason"])
        return "; ".join(dict.fromkeys(r for r in (given, engine, *decisions_text(row["approval"])) if r))
    return str(row[column])


def decisions_text(approval: dict[str, Any]) -> list[str]:
    """Each approval-gate decision of a record in words: who, when and why (`approved by ARN at
    TIME: reason`), the rejection last."""
    said = [
        f"approved by {a.get('by', '')} at {a.get('at', '')}: {a.get('reason', '')}"
        for a in approval.get("approvals") or ()
    ]
    rejection = approval.get("rejection") or {}
    if rejection.get("by"):
        said.append(
            f"rejected by {rejection['by']} at {rejection.get('at', '')}: {rejection.get('reason', '')}"
        )
    return said


def caller_arn() -> str:
    """The caller's principal ARN as STS says (GetCallerIdentity); "" when STS cannot say."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(boto3.client("sts").get_caller_identity()["Arn"])
    except (ClientError, BotoCoreError):
        return ""


def parse_image(text: str) -> tuple[str, str, str | None]:
    """`REPO:TAG` or `REPO@DIGEST` -> (repository, tag, digest); raises ValueError."""
    if "@" in text:
        repository, _, digest = text.partition("@")
        if not is_digest(digest):
            raise ValueError(f"{digest!r} is not a sha256 digest")
        tag, ref = "", digest
    else:
        repository, sep, tag = text.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r}: give REPO:TAG or REPO@DIGEST")
        ref = None
        if not is_valid_tag(tag):
            raise ValueError(f"{tag!r} is not a valid tag")
    if not is_valid_repository(repository):
        raise ValueError(f"{repository!r} is not a valid repository name")
    return repository, tag, ref


def parse_targets(specs: list[str], source_tag: str) -> list[tuple[str, str]]:
    """`REPO[:TAG,...]` (repeatable) -> [(repository, tag)]; no tags = the source's tag."""
    targets: list[tuple[str, str]] = []
    for spec in specs:
        repository, sep, tags = spec.partition(":")
        if not is_valid_repository(repository):
            raise ValueError(f"{repository!r} is not a valid repository name")
        names = [t for t in tags.split(",") if t] if sep else []
        if not names:
            if not source_tag:
                raise ValueError(f"--to {spec}: name the tags (REPO:TAG,...) when promoting by digest")
            names = [source_tag]
        for tag in names:
            if not is_valid_tag(tag):
                raise ValueError(f"{tag!r} is not a valid tag")
            targets.append((repository, tag))
    return targets


def cmd_promote(args: argparse.Namespace) -> int:
    from promoter.aws.history import DynamoDbHistory
    from promoter.aws.idempotency import idempotent_runner, make_persistence
    from promoter.aws.registry import EcrRegistry, make_ecr_client
    from promoter.aws.results import EventBridgeResults
    from promoter.model.plan import TRIGGER_MANUAL, Action, Plan, Provenance, SourceImage
    from promoter.workflows.promote import Promoter
    from promoter.workflows.service import run_plan
    from promoter_cli.cmd_attestation import break_glass_attestor

    try:
        repository, tag, digest = parse_image(args.image)
        targets = parse_targets(args.to, tag)
    except ValueError as exc:
        return bad_input(str(exc))
    registry = EcrRegistry(make_ecr_client())
    reference = digest or tag
    try:
        image = registry.get_manifests(repository, [reference]).get(reference)
    except PromoterError as exc:
        print(f"promoter: {exc}", file=sys.stderr)
        return EXIT_NOT_ALL_PROMOTED
    if image is None:
        print(f"promoter: {args.image} does not exist", file=sys.stderr)
        return EXIT_NOT_ALL_PROMOTED
    source = SourceImage(repository, tag, image.digest)
    actions = tuple(
        Action(
            MANUAL_RULE,
            source,
            target_repo,
            target_tag,
            skip_reason="the target is the source itself"
            if (target_repo, target_tag) == (repository, tag)
            else None,
            forward_only=False,  # break-glass: the operator's explicit move, older image or not
        )
        for target_repo, target_tag in targets
    )
    run_id = f"manual-{uuid.uuid4()}"
    # The attestation names who AWS says ran it (STS), beside the requester they declared.
    provenance = Provenance(
        TRIGGER_MANUAL, run_id, requester(args.requested_by), args.reason, authenticated_as=caller_arn()
    )
    try:
        # Attested with the stack's key (ATTESTATION_KEY_ARN), on the local AWS the local stack's;
        # a caller the key policy does not let sign still promotes, unattested, said at ERROR.
        attestor = break_glass_attestor()
        run = idempotent_runner(Promoter(registry, attestor=attestor), make_persistence())
        # The audit is part of a break-glass promotion: an outcome not recorded fails it (exit 1).
        result = run_plan(
            Plan(run_id, actions, provenance=provenance),
            run,
            DynamoDbHistory(),
            EventBridgeResults(),
            audit_required=True,
        )
    except PromoterError as exc:
        print(f"promoter: {exc}", file=sys.stderr)
        return EXIT_NOT_ALL_PROMOTED
    if result.error is not None:
        print(f"promoter: {result.error}", file=sys.stderr)
    out = result.to_dict()
    out["actions"] = out.pop("results")
    if args.json:
        print_json(out)
    else:
        print_event_result(out)
    return EXIT_OK if result.succeeded else EXIT_NOT_ALL_PROMOTED
