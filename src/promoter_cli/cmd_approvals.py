"""`promoter approvals | approve | reject`: the people's side of the approval gate.

`approvals` lists the promotions waiting for people (the gates table's approval waits): rule, image
and digest, requester, the gates already passed, approvals so far out of the rule's `min`, expiry
and the wait id. Reads only.

`approve ID --reason TEXT` and `reject ID --reason TEXT` send one decision to the approval channel,
an HTTPS endpoint with AWS IAM authorization (a Lambda function URL): the call is signed with the
caller's own credentials (SigV4, service `lambda`), so AWS, not the CLI, says who decided. The URL
is `--url`, else the stack's `ApprovalUrl` output (`--stack NAME`), else $PROMOTER_APPROVAL_URL,
else the local AWS's channel when AWS_ENDPOINT_URL points at it.
Exit codes: 0 decided (or listed), 1 refused (not an approver, the requester, already decided,
expired, superseded, approved twice) or the channel failed, 2 bad input (a malformed or unknown
wait id, no reason, no URL). A refusal changes nothing: the channel records a decision with one
conditional write or not at all.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from promoter.model.approvals import APPROVE, REJECT
from promoter.model.verdicts import APPROVAL_GATE, WAIT_ID_CHARS
from promoter_cli.cmd_engine import (
    EXIT_BAD_INPUT,
    EXIT_NOT_ALL_PROMOTED,
    EXIT_OK,
    _add_config,
    bad_input,
    config_or_exit,
)
from promoter_cli.output import add_json_flag, print_json, print_table, printable, short_digest

# Where `--stack NAME` puts the stack's `ApprovalUrl` output, and where a person may set it by hand.
from promoter_cli.resources import APPROVAL_URL_ENV

if TYPE_CHECKING:
    from collections.abc import Sequence

    from promoter.model.approvals import ApprovalGate
    from promoter.model.config import PromotionConfig
    from promoter.model.verdicts import Waiting

# A wait id as the gates table keeps it (promoter.model.verdicts: lowercase hex).
WAIT_ID_RE = re.compile(rf"[0-9a-f]{{{WAIT_ID_CHARS}}}")
# Lambda function URLs are signed for the `lambda` service in the function's region; the region is
# in the URL's host (`<id>.lambda-url.<region>.on.aws`).
SIGNING_SERVICE = "lambda"
FUNCTION_URL_HOST_RE = re.compile(r"[a-z0-9]+\.lambda-url\.(?P<region>[a-z0-9-]+)\.on\.aws")
CHANNEL_TIMEOUT_SECONDS = 30
APPROVALS_COLUMNS = ("wait id", "rule", "image", "requester", "gates passed", "approvals", "expires")
# The channel's answers and the CLI's exit codes (design, "Approval gate"): bad input or an unknown
# wait is the caller's mistake (2); a refusal is a decision the gate made (1).
BAD_INPUT_STATUSES = frozenset({400, 404})
REFUSED_STATUSES = frozenset({403, 409})


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `approvals`, `approve` and `reject`."""
    approvals = sub.add_parser(
        "approvals", help="the promotions waiting for approval: image, requester, approvals so far, expiry"
    )
    _add_config(approvals)
    approvals.add_argument("--rule", metavar="R", help="only this rule's waits")
    add_json_flag(approvals)
    approvals.set_defaults(func=cmd_approvals)
    for decision, verb in ((APPROVE, "approve"), (REJECT, "reject")):
        parser = sub.add_parser(
            decision,
            help=f"{verb} a waiting promotion (signed with your own AWS credentials)",
            description=f"Sends your decision to {verb} wait ID to the approval channel, signed with "
            "your AWS credentials: AWS authenticates who you are. Exit 0 recorded, 1 refused, 2 bad input.",
        )
        parser.add_argument("wait_id", metavar="ID", help="the wait id (`promoter approvals` lists them)")
        parser.add_argument("--reason", required=True, metavar="TEXT", help="why (kept in the history)")
        parser.add_argument(
            "--url",
            metavar="URL",
            help=f"the approval channel (default: the --stack ApprovalUrl output, else ${APPROVAL_URL_ENV}, "
            "else the local AWS's)",
        )
        add_json_flag(parser)
        parser.set_defaults(func=cmd_decide, decision=decision)


@dataclass(frozen=True)
class ChannelAnswer:
    """What the approval channel answered: the HTTP status and its JSON body (or its text)."""

    status: int
    body: dict[str, Any]

    @property
    def message(self) -> str:
        for key in ("message", "Message", "text"):
            if isinstance(self.body.get(key), str) and self.body[key]:
                return str(self.body[key])
        return json.dumps(self.body) if self.body else f"HTTP {self.status}"


def cmd_decide(args: argparse.Namespace) -> int:
    """`approve` / `reject`: one signed POST; the answer mapped to the CLI's exit codes."""
    wait_id = args.wait_id.strip()
    if not WAIT_ID_RE.fullmatch(wait_id):
        return bad_input(
            f"{printable(args.wait_id)!r} is not a wait id ({WAIT_ID_CHARS} lowercase hex characters, "
            "as `promoter approvals` and the notification show them)"
        )
    reason = args.reason.strip()
    if not reason:
        return bad_input(f"--reason must say why you {args.decision} (it is kept in the history)")
    url = approval_url(args.url)
    if url is None:
        return bad_input(
            f"where is the approval channel? pass --stack NAME (its ApprovalUrl output), --url URL, or "
            f"set {APPROVAL_URL_ENV}"
        )
    try:
        answer = post_decision(url, {"wait_id": wait_id, "decision": args.decision, "reason": reason})
    except ChannelUnreachableError as exc:
        print(f"promoter: the approval channel {url} did not answer: {exc}", file=sys.stderr)
        return EXIT_NOT_ALL_PROMOTED
    return report_answer(args.decision, wait_id, answer, args.json, url)


def report_answer(decision: str, wait_id: str, answer: ChannelAnswer, as_json: bool, url: str) -> int:
    """Prints the channel's answer and returns the exit code it stands for. The channel answers
    JSON with a `message`; a 404 without one is no channel at all (a wrong URL, or no rule with an
    approval gate, so nothing serves one)."""
    if answer.status == 200:
        if as_json:
            print_json(answer.body)
        else:
            done = "approved" if decision == APPROVE else "rejected"
            count = answer.body.get("approvals")
            needed = answer.body.get("min")
            tally = f": {count}/{needed} approvals" if count is not None and needed is not None else ""
            state = answer.body.get("state")
            print(printable(f"{done} {wait_id}{tally}" + (f" ({state})" if state else "")))
        return EXIT_OK
    if answer.status == 404 and "message" not in answer.body:
        print(
            f"promoter: no approval channel at {url} (HTTP 404): the stack (and `promoter local "
            "--config`) serves one only when some rule has `require: approval:`",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if answer.status in BAD_INPUT_STATUSES:
        print(f"promoter: {printable(answer.message)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if answer.status in REFUSED_STATUSES:
        why = answer.message
        if "message" not in answer.body:  # Lambda's own refusal, before the channel ran
            why = (
                f"{why}: AWS did not let your credentials call the approval channel (its resource "
                "policy admits only principals that match some rule's approvers)"
            )
        print(f"promoter: refused: {printable(why)}", file=sys.stderr)
        return EXIT_NOT_ALL_PROMOTED
    print(
        f"promoter: the approval channel failed (HTTP {answer.status}): {printable(answer.message)}",
        file=sys.stderr,
    )
    return EXIT_NOT_ALL_PROMOTED


class ChannelUnreachableError(RuntimeError):
    """The approval channel could not be reached (connection refused, DNS, TLS, timeout)."""


def approval_url(explicit: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The approval channel's URL: `--url`, else $PROMOTER_APPROVAL_URL (which `--stack` sets from
    the `ApprovalUrl` output), else the local AWS's channel when AWS_ENDPOINT_URL is on this machine."""
    environ = dict(os.environ) if environ is None else environ
    if explicit:
        return explicit
    if environ.get(APPROVAL_URL_ENV):
        return environ[APPROVAL_URL_ENV]
    endpoint = environ.get("AWS_ENDPOINT_URL", "")
    from promoter_cli.cmd_local import is_loopback_endpoint

    if endpoint and is_loopback_endpoint(endpoint):
        return local_approval_url(endpoint)
    return None


def local_approval_url(endpoint: str) -> str:
    """The local AWS's approval channel (the same authentication: its principals decide who calls)."""
    from local_aws.approvals import approval_url_of  # the local AWS's route for the channel

    return approval_url_of(endpoint)


def signing_region(url: str) -> str:
    """The region to sign for: a function URL's own, else the session's (the local AWS's)."""
    import boto3

    match = FUNCTION_URL_HOST_RE.fullmatch(urlsplit(url).hostname or "")
    if match:
        return match["region"]
    region = boto3.session.Session().region_name
    if not region:
        from botocore.exceptions import NoRegionError

        raise NoRegionError()
    return region


def post_decision(url: str, body: dict[str, str]) -> ChannelAnswer:
    """POSTs `body` as JSON to `url`, signed with the caller's credentials (SigV4, service lambda).
    Raises NoCredentialsError without credentials, ChannelUnreachableError when nothing answers."""
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError, NoCredentialsError
    from botocore.httpsession import URLLib3Session

    credentials = boto3.session.Session().get_credentials()
    if credentials is None:
        raise NoCredentialsError()
    request = AWSRequest(
        method="POST",
        url=url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(credentials.get_frozen_credentials(), SIGNING_SERVICE, signing_region(url)).add_auth(request)
    try:
        response = URLLib3Session(timeout=CHANNEL_TIMEOUT_SECONDS).send(request.prepare())
    except (HTTPClientError, BotoConnectionError) as exc:  # refused, DNS, TLS, timeouts
        raise ChannelUnreachableError(str(exc)) from exc
    return ChannelAnswer(response.status_code, _json_object(response.content))


def _json_object(content: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(content or b"{}")
    except ValueError:
        return {"text": content.decode("utf-8", errors="replace").strip()[:500]}
    return parsed if isinstance(parsed, dict) else {"text": str(parsed)}


def cmd_approvals(args: argparse.Namespace) -> int:
    """`approvals`: the approval waits still open (not decided, superseded or expired), soonest
    expiry first. Exit 0 listed (none included), 1 the gates table could not be read, 2 bad input."""
    import time

    from promoter.aws.gate_store import DynamoDbGates
    from promoter.exceptions import PromoterError

    config = config_or_exit(args.config)
    if isinstance(config, int):
        return config
    if args.rule and config.rule(args.rule) is None:
        return bad_input(f"no rule {args.rule!r} in {args.config}")
    try:
        waiting = DynamoDbGates().all_waiting()
    except PromoterError as exc:
        print(f"promoter: {exc}", file=sys.stderr)
        return EXIT_NOT_ALL_PROMOTED
    now = time.time()
    rows = [
        pending_approval(wait, config, waiting)
        for wait in sorted(waiting, key=lambda w: (w.deadline, w.wait_id))
        if wait.gate == APPROVAL_GATE
        and (not args.rule or wait.rule == args.rule)
        and is_open(wait, config, now)
    ]
    if args.json:
        print_json(rows)
    elif not rows:
        print("no promotion waits for approval")
    else:
        print_table(APPROVALS_COLUMNS, [_approval_cells(row) for row in rows])
    return EXIT_OK


def is_open(wait: Waiting, config: PromotionConfig, now: float) -> bool:
    """Whether people can still decide the wait: not past its deadline, not superseded, not
    rejected, and (while its rule still has the gate) not approved by the quorum already."""
    from promoter.model.approvals import SUPERSEDED_BY_KEY, quorum_reached, rejection_of

    if now >= wait.deadline or wait.data.get(SUPERSEDED_BY_KEY) or rejection_of(wait) is not None:
        return False
    gate = _gate_of(wait, config)
    return gate is None or not quorum_reached(gate, wait)


def pending_approval(
    wait: Waiting, config: PromotionConfig, waiting: Sequence[Waiting] = ()
) -> dict[str, Any]:
    """One open wait as `approvals --json` shows it (the table's columns come from these keys).
    The rule's other gates passed unless they wait too (`waiting`: every wait of the table): a
    request holds an approval wait beside a pending scan's, and people may decide in either order."""
    from promoter.gates.base import gate_names
    from promoter.model.approvals import TARGET_KEY, requester_of, tally

    gate = _gate_of(wait, config)
    rule = config.rule(wait.rule)
    counted = tally(gate, wait) if gate is not None else ()
    targets = wait.data.get(TARGET_KEY) or ()
    others = [name for name in gate_names(rule) if name != APPROVAL_GATE] if rule else []
    still_pending = {
        other.gate
        for other in waiting
        if (other.repository, other.digest, other.rule, other.event.event_id)
        == (wait.repository, wait.digest, wait.rule, wait.event.event_id)
    }
    return {
        "wait_id": wait.wait_id,
        "rule": wait.rule,
        "repository": wait.repository,
        "digest": wait.digest,
        "targets": [targets] if isinstance(targets, str) else [str(t) for t in targets],
        "requester": requester_of(wait),
        "gates_passed": [name for name in others if name not in still_pending],
        "gates_pending": [name for name in others if name in still_pending],
        "approvals": [a.to_dict() for a in counted],
        "min": gate.min if gate is not None else None,
        "expires": _iso(wait.deadline),
    }


def _gate_of(wait: Waiting, config: PromotionConfig) -> ApprovalGate | None:
    """The wait's rule's approval gate as configured now (None: the rule or its gate is gone)."""
    rule = config.rule(wait.rule)
    return rule.approval_gate if rule is not None else None


def _approval_cells(row: dict[str, Any]) -> list[str]:
    needed = "?" if row["min"] is None else str(row["min"])
    return [
        row["wait_id"],
        row["rule"],
        f"{row['repository']}@{short_digest(row['digest'])}",
        row["requester"] or "unknown",
        ", ".join([*row["gates_passed"], *(f"({g} pending)" for g in row["gates_pending"])]) or "-",
        f"{len(row['approvals'])}/{needed}",
        row["expires"],
    ]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if epoch else ""
