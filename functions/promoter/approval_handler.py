"""The approval channel's Lambda entry point: a function URL with `AuthType: AWS_IAM` (issue 20).

Who decides is established by AWS, never by what a caller writes: Lambda verifies the request's
SigV4 signature, applies the function's resource policy (`lambda:InvokeFunctionUrl` and
`lambda:InvokeFunction` only for principals matching some rule's approvers; infra/approvals.py),
and hands the function the caller's ARN in `requestContext.authorizer.iam.userArn` (for a role,
the session: `arn:aws:sts::<account>:assumed-role/<role>/<session>`, one person). A field in the
body claiming an identity counts for nothing: it is logged at WARNING and ignored.

Request: `POST /` with `{"wait_id": "<12 hex>", "decision": "approve" | "reject", "reason": "..."}`,
signed for the service `lambda`. Answers (JSON):
- 200 `{wait_id, decision, approvals, min, state}` (`state`: pending, approved or rejected);
- 400 a body that is not that object; 405 another method;
- 403 the caller is no approver of the wait's rule, or requested it and may not approve it;
- 404 no wait with this id (unknown, or ended and removed);
- 409 the wait was rejected, superseded, approved, has expired, or the caller approved it already;
- 500 an unexpected error (logged at ERROR with its traceback; nothing was recorded, or the
  decision was recorded but not announced: the message says which, and calling again announces it).

A decision is recorded with one conditional UpdateItem (promoter.aws.approvals), then announced on
the promoter's bus as `Promotion Approval Decided` (source `image-promoter.approvals`, detail
`{wait-id, repository, digest}`); the stack routes it into the promoter's queue and the waiting
promotion runs again (quorum: promotes the wait's digest; rejection: `rejected`). A refused
decision changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from promoter import settings
from promoter.aws.approvals import NOT_FOUND, ApprovalRefusedError, ApprovalStore
from promoter.model.approvals import (
    APPROVALS_KEY,
    APPROVE,
    CONFLICT,
    DECISIONS,
    REJECT,
    ApprovalGate,
    quorum_reached,
    refusal,
    rejection_of,
    tally,
)
from promoter.model.config import PromotionConfig, load_config
from promoter.model.events import APPROVAL_DECIDED, APPROVAL_SOURCE
from promoter.model.verdicts import APPROVAL_GATE, WAIT_ID_CHARS, Waiting

logger = Logger(service=settings.SERVICE_NAME)

BODY_KEYS = frozenset({"wait_id", "decision", "reason"})
WAIT_ID_RE = re.compile(rf"[0-9a-f]{{{WAIT_ID_CHARS}}}")
MAX_REASON_CHARS = 1024
# The states a decision leaves the wait in (the answer's `state`).
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


class BadRequestError(Exception):
    """The request is not a decision this channel reads (400, or `status`)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class NotAnnouncedError(Exception):
    """The decision was recorded, but its event could not be put on the bus."""


@dataclass(frozen=True)
class Decision:
    """What the body asks: `decision` ("approve" or "reject") of the wait `wait_id`, and why."""

    wait_id: str
    decision: str
    reason: str


@dataclass(frozen=True)
class Runtime:
    """What a warm Lambda keeps between invocations."""

    config: PromotionConfig
    store: ApprovalStore
    events: Any


@cache
def runtime() -> Runtime:
    """Built once per container: the configuration the promoter runs with, and the clients."""
    session = boto3.session.Session()
    return Runtime(
        config=load_config(settings.config_path()),
        store=ApprovalStore(resource=session.resource("dynamodb")),
        events=session.client("events"),
    )


@logger.inject_lambda_context(clear_state=True)
def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Function URL -> Lambda entry point: one decision in, its HTTP answer out."""
    try:
        return _handle(event, runtime(), time.time())
    except Exception:
        logger.exception("unexpected error: nothing was decided")
        return _answer(500, {"message": "internal error: nothing was recorded; see the function's log"})


def _handle(event: dict[str, Any], state: Runtime, now: float) -> dict[str, Any]:
    caller = caller_of(event)
    if caller is None:  # only a function URL without AWS_IAM would call us so: a stack bug
        logger.error("no caller ARN in the request: the function URL must use AuthType AWS_IAM")
        return _answer(403, {"message": "Forbidden: the caller is not authenticated by AWS"})
    logger.append_keys(caller=caller)
    try:
        asked = parse_decision(event)
    except BadRequestError as exc:
        logger.info("bad request refused", status=exc.status, error=str(exc))
        return _answer(exc.status, {"message": str(exc)})
    logger.append_keys(wait_id=asked.wait_id, decision=asked.decision)
    try:
        wait = decide(state, asked, caller, now)
    except ApprovalRefusedError as exc:
        logger.info("decision refused", status=exc.code, error=exc.reason)
        return _answer(exc.code, {"message": exc.reason, "wait_id": asked.wait_id})
    except NotAnnouncedError as exc:
        logger.exception("decision recorded but not announced: the promotion resumes only when called again")
        return _answer(500, {"message": str(exc), "wait_id": asked.wait_id})
    gate = _gate(state.config, wait)
    counted = len(tally(gate, wait)) if gate else 0
    answer = {
        "wait_id": asked.wait_id,
        "decision": asked.decision,
        "approvals": counted,
        "min": gate.min if gate else 0,
        "state": (
            REJECTED if rejection_of(wait) else APPROVED if gate and quorum_reached(gate, wait) else PENDING
        ),
    }
    logger.info(
        "decision recorded",
        rule=wait.rule,
        repository=wait.repository,
        digest=wait.digest,
        reason=asked.reason,
        result=answer,
    )
    return _answer(200, answer)


def caller_of(event: dict[str, Any]) -> str | None:
    """The caller's ARN as Lambda hands it (`requestContext.authorizer.iam.userArn`), else None."""
    context = event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, dict) else None
    iam = authorizer.get("iam") if isinstance(authorizer, dict) else None
    arn = iam.get("userArn") if isinstance(iam, dict) else None
    return arn if isinstance(arn, str) and arn else None


def parse_decision(event: dict[str, Any]) -> Decision:
    """The decision the body asks for. Raises BadRequestError (400; 405 for a method other than
    POST). Keys other than `wait_id`, `decision` and `reason` (an `approver`, say) are ignored
    and logged at WARNING: who decides is the signed caller, nothing a body says."""
    method = ((event.get("requestContext") or {}).get("http") or {}).get("method", "POST")
    if method != "POST":
        raise BadRequestError(f"{method} is not served: POST a decision", 405)
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise BadRequestError("the body is not valid base64 UTF-8") from exc
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequestError('the body must be JSON: {"wait_id", "decision", "reason"}') from exc
    if not isinstance(body, dict):
        raise BadRequestError('the body must be a JSON object: {"wait_id", "decision", "reason"}')
    ignored = sorted(str(k) for k in body if k not in BODY_KEYS)
    if ignored:
        logger.warning(
            "body fields ignored: who decides is the caller AWS authenticated, not the body",
            ignored_fields=ignored,
        )
    wait_id, decision, reason = body.get("wait_id"), body.get("decision"), body.get("reason")
    if not isinstance(wait_id, str) or not WAIT_ID_RE.fullmatch(wait_id):
        raise BadRequestError(
            f"wait_id must be the wait's {WAIT_ID_CHARS} lowercase hex characters, got {wait_id!r}"
        )
    if decision not in DECISIONS:
        raise BadRequestError(f"decision must be {APPROVE!r} or {REJECT!r}, got {decision!r}")
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequestError("reason must say why (a non-empty string): it goes into the audit trail")
    if len(reason) > MAX_REASON_CHARS:
        raise BadRequestError(f"reason must be at most {MAX_REASON_CHARS} characters, got {len(reason)}")
    return Decision(wait_id, decision, reason.strip())


def decide(state: Runtime, asked: Decision, caller: str, now: float) -> Waiting:
    """Checks and records `caller`'s decision, then announces it; returns the wait as recorded.
    Raises ApprovalRefusedError, NotAnnouncedError, and GateStoreError when the table fails.

    A caller who approved already is refused (409: it counts once), but the decision is announced
    again: a decision whose announcement failed (a 500 after the write) reaches the promoter when
    its approver calls once more, and a promotion resumed twice runs the same path twice."""
    wait = state.store.find(asked.wait_id)
    if wait is None or wait.gate != APPROVAL_GATE:
        raise ApprovalRefusedError(f"no approval wait {asked.wait_id}: unknown, or it has ended", NOT_FOUND)
    gate = _gate(state.config, wait)
    if gate is None:
        raise ApprovalRefusedError(
            f"rule {wait.rule!r} no longer requires approval: this wait will not be resumed", CONFLICT
        )
    refused = refusal(gate, wait, caller, now, asked.decision)
    if refused is not None:
        if asked.decision == APPROVE and refused.code == CONFLICT and _has_approved(wait, caller):
            _announce_recorded(state.events, wait)
        raise ApprovalRefusedError(refused.reason, refused.code)
    wait = state.store.record(wait, caller, asked.decision, asked.reason, now)
    _announce_recorded(state.events, wait)
    return wait


def _announce_recorded(events: Any, wait: Waiting) -> None:
    try:
        announce(events, wait)
    except (ClientError, BotoCoreError) as exc:
        raise NotAnnouncedError(
            f"the decision is recorded, but the promoter was not told ({exc}); call again to tell it"
        ) from exc


def announce(events: Any, wait: Waiting) -> None:
    """`Promotion Approval Decided` on the promoter's bus. Raises botocore's errors, including a
    failed entry (PutEvents answers those in its result, not as an error)."""
    detail = {"wait-id": wait.wait_id, "repository": wait.repository, "digest": wait.digest}
    response = events.put_events(
        Entries=[
            {
                "Source": APPROVAL_SOURCE,
                "DetailType": APPROVAL_DECIDED,
                "Detail": json.dumps(detail),
                "EventBusName": settings.event_bus_name(),
            }
        ]
    )
    if response.get("FailedEntryCount"):
        entry = (response.get("Entries") or [{}])[0]
        raise ClientError(
            {
                "Error": {
                    "Code": entry.get("ErrorCode", "FailedEntry"),
                    "Message": entry.get("ErrorMessage", ""),
                }
            },
            "PutEvents",
        )


def _has_approved(wait: Waiting, caller: str) -> bool:
    approvals = wait.data.get(APPROVALS_KEY)
    return isinstance(approvals, dict) and caller in approvals


def _gate(config: PromotionConfig, wait: Waiting) -> ApprovalGate | None:
    rule = config.rule(wait.rule)
    return rule.approval_gate if rule is not None else None


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """A function URL response object."""
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
