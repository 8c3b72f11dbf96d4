"""Resource policies on moto's EventBridge and SQS, for the principal behind each request (issue 18).

- `PutEvents`: the bus's policy decides, entry by entry, with `events:source` and
  `events:detail-type` (one entry refused refuses the call: AccessDeniedException, as EventBridge
  answers a denied PutEvents). The envelope's `account` is the caller's account, as EventBridge sets
  it (moto writes its own).
- `SendMessage`/`SendMessageBatch`: the queue's policy decides for the caller; EventBridge's
  delivery to a rule's SQS target is decided the same way, for the service principal with the
  rule as `aws:SourceArn` (a denied delivery is dropped and logged, as EventBridge does once its
  retries are spent, when the target has no dead-letter queue).
- Every message records who sent it: SQS's `SenderId` is the sender's IAM unique id (the account id
  for the root, `AROA...:<session>` for a role, EventBridge's own id for what it delivers; see
  local_aws.principals). SQS's own move to a dead-letter queue keeps the message, SenderId included.
- STS `GetCallerIdentity` answers that principal (a user's or root's ARN, a role's session ARN,
  its unique id and account), as AWS answers its caller; moto answered `user/moto` for any key it
  did not make.

Principals of the queue's or bus's own account act as their administrator would (no identity
policies exist locally): allowed unless a statement denies them. A queue or bus without any policy
stays open to everyone, EventBridge and other accounts included, as before enforcement (on AWS
they would need an Allow): the stack's queues and bus have policies, and those are decided as IAM
would. `apply()` patches moto once.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape as xml_escape

from local_aws import policy
from local_aws.policy import Principal
from local_aws.principals import eventbridge

LOG = logging.getLogger(__name__)
StartResponse = Any

# The principal whose request moto is serving on this thread (None: an in-process caller, such
# as the ECR events the local ECR emits).
_caller: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("local_aws_caller", default=None)
SEND_OPERATIONS = frozenset({"AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch"})
PUT_EVENTS = "AWSEvents.PutEvents"
CHECKED_TARGETS = SEND_OPERATIONS | {PUT_EVENTS}
# The keys of an event EventBridge delivers (its "event structure" reference); moto adds others.
ENVELOPE_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")
# The UserId moto's GetCallerIdentity gives a key it does not know (with `arn:...:user/moto`).
MOTO_UNKNOWN_KEY_USER_ID = "AKIAIOSFODNN7EXAMPLE"
_applied = False


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Moto calls made inside are `principal`'s (its SenderId, its account in events)."""
    token = _caller.set(principal)
    try:
        yield
    finally:
        _caller.reset(token)


def refusal(
    target: str, params: dict[str, Any], principal: Principal, account: str, region: str
) -> str | None:
    """Why the request is refused (AccessDenied's message), or None when the policies allow it.
    `account` and `region` are where moto keeps what the request names by name."""
    if target == PUT_EVENTS:
        return _put_events_refusal(params, principal, account, region)
    if target in SEND_OPERATIONS:
        url = params.get("QueueUrl")
        if isinstance(url, str):
            return _send_refusal(url, principal, region, {})
    return None


def request_of(target: str, raw: bytes, query_string: str, path: str) -> tuple[str, dict[str, Any]]:
    """The operation (as an X-Amz-Target) and parameters of a JSON request, or of an SQS request in
    the query protocol (`Action=SendMessage&QueueUrl=...`, or the queue's URL as the path), which
    SQS still serves beside JSON: both are checked alike."""
    if target:
        try:
            params = json.loads(raw or b"{}")
        except ValueError:
            params = {}
        return target, params if isinstance(params, dict) else {}
    form = parse_qs(query_string)
    with contextlib.suppress(UnicodeDecodeError):
        form.update(parse_qs(raw.decode()))
    action = (form.get("Action") or [""])[0]
    return f"AmazonSQS.{action}", {"QueueUrl": (form.get("QueueUrl") or [path])[0]}


def refused_reply(
    start_response: StartResponse, target: str, message: str, query: bool = False
) -> list[bytes]:
    """AccessDenied in the JSON protocols' shape (SQS also names its query code, `AccessDenied`),
    or in the query protocol's XML for a query request."""
    request_id = str(uuid.uuid4())
    if query:
        body = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
            f"<Message>{xml_escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    else:
        body = json.dumps(
            {"__type": "com.amazon.coral.service#AccessDeniedException", "message": message}
        ).encode()
        content_type = "application/x-amz-json-1.0"
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", request_id),
    ]
    if target in SEND_OPERATIONS and not query:
        headers.append(("x-amzn-query-error", "AccessDenied;Sender"))
    start_response("400 Bad Request", headers)
    return [body]


def _denied_message(principal: Principal, action: str, resource: str, explicit: bool) -> str:
    who = principal.service or principal.session_arn or principal.arn
    why = (
        "with an explicit deny in a resource-based policy"
        if explicit
        else "because no resource-based policy allows it"
    )
    return f"User: {who} is not authorized to perform: {action} on resource: {resource} {why}"


def _decide(
    document: str | None, principal: Principal, action: str, resource: str, owner: str, keys: dict
) -> str | None:
    if not document or policy.allows(document, principal, action, resource, owner, keys):
        return None
    explicit = policy.evaluate(document, principal, action, resource, keys) is policy.Decision.DENY
    return _denied_message(principal, action, resource, explicit)


def _put_events_refusal(
    params: dict[str, Any], principal: Principal, account: str, region: str
) -> str | None:
    from moto.events.models import events_backends

    entries = params.get("Entries")
    if not isinstance(entries, list):
        return None  # moto answers the malformed request
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        bus = str(entry.get("EventBusName") or "default")
        bus_account, bus_region, name = account, region, bus
        if bus.startswith("arn:"):
            parts = bus.split(":", 5)
            bus_account, bus_region, name = parts[4], parts[3], parts[5].removeprefix("event-bus/")
        try:
            found = events_backends[bus_account][bus_region].describe_event_bus(name)
        except Exception:  # moto answers a bus that does not exist with its own error
            continue
        keys = {
            "events:source": str(entry.get("Source", "")),
            "events:detail-type": str(entry.get("DetailType", "")),
        }
        why = _decide(found.policy, principal, "events:PutEvents", found.arn, bus_account, keys)
        if why is not None:
            return why
    return None


def _send_refusal(queue_url: str, principal: Principal, region: str, keys: dict[str, str]) -> str | None:
    path = urlparse(queue_url).path.strip("/").split("/")
    if len(path) != 2:
        return None
    owner, name = path
    queue = _queue(owner, region, name)
    if queue is None:
        return None  # moto answers NonExistentQueue
    return _decide(queue.policy, principal, "sqs:SendMessage", queue.queue_arn, owner, keys)


def _queue(account: str, region: str, name: str) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[account][region].queues.get(name)


def _delivery_refusal(rule: Any, account: str, region: str, queue_name: str) -> str | None:
    """Why the queue's policy refuses EventBridge delivering for `rule`, or None."""
    queue = _queue(account, region, queue_name)
    if queue is None:
        return None
    keys = {"aws:SourceArn": rule.arn, "aws:SourceAccount": rule.account_id}
    return _decide(queue.policy, eventbridge(), "sqs:SendMessage", queue.queue_arn, account, keys)


def _send(account: str, region: str, queue_name: str, body: str, attributes: dict[str, str]) -> str:
    from moto.sqs.models import sqs_backends

    with acting_as(eventbridge()):
        message = sqs_backends[account][region].send_message(
            queue_name=queue_name,
            message_body=body,
            message_attributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
    return str(message.id)


def deliver_as_eventbridge(queue_url: str, body: str, attributes: dict[str, str] | None = None) -> str:
    """Puts `body` into a queue of the in-process local AWS as EventBridge delivers (its SenderId,
    no policy check), for tests and the demo standing for a delivery that EventBridge made (again);
    nothing reaches this over the network. Returns the message id."""
    path = urlparse(queue_url).path.strip("/").split("/")
    if len(path) != 2:
        raise ValueError(f"not a queue URL: {queue_url!r}")
    account, name = path
    return _send(account, _queue_region(account, name), name, body, attributes or {})


def _queue_region(account: str, name: str) -> str:
    from moto.sqs.models import sqs_backends

    for region, backend in sqs_backends[account].items():
        if name in backend.queues:
            return region
    raise ValueError(f"no queue {name!r} in account {account}")


def apply() -> None:
    """Patches moto once per process (idempotent): events' envelope account and SQS delivery, every
    sent message's SenderId, and STS GetCallerIdentity for the principal behind the keys."""
    global _applied
    if _applied:
        return
    from moto.events.models import Rule
    from moto.sqs.models import SQSBackend
    from moto.sts.models import STSBackend

    send_to_targets = Rule.send_to_targets
    send_to_sqs_queue = Rule._send_to_sqs_queue
    send_message = SQSBackend.send_message
    caller_identity = STSBackend.get_caller_identity

    def rule_send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        caller = _caller.get()
        if caller is not None and caller.account:
            # A PutEvents: the envelope as EventBridge sets it (the caller's account), delivered
            # as is unless a target transforms it (moto's default template drops `account`).
            original_event = {k: v for k, v in original_event.items() if k in ENVELOPE_KEYS}
            original_event["account"] = caller.account
            transform_input = any("InputTransformer" in t for t in self.targets)
        with acting_as(eventbridge()):
            send_to_targets(self, original_event, transform_input)

    def rule_send_to_sqs_queue(
        self: Any, resource_id: str, event: dict[str, Any], group_id: str | None = None
    ) -> None:
        why = _delivery_refusal(self, self.account_id, self.region_name, resource_id)
        if why is None:
            send_to_sqs_queue(self, resource_id, event, group_id)
            return
        # EventBridge does not retry a permission error: the event goes to the target's
        # dead-letter queue at once, with why (EventBridge user guide, "Using dead-letter queues").
        LOG.warning("EventBridge could not deliver to %s for rule %s: %s", resource_id, self.name, why)
        target = next((t for t in self.targets if t["Arn"].endswith(f":{resource_id}")), None)
        dead_letters = (target or {}).get("DeadLetterConfig", {}).get("Arn")
        if not dead_letters:
            return
        _, _, _, region, account, name = dead_letters.split(":", 5)
        if _delivery_refusal(self, account, region, name) is not None:
            LOG.warning("EventBridge could not put the event into the dead-letter queue %s either", name)
            return
        attributes = {
            "RULE_ARN": self.arn,
            "TARGET_ARN": target["Arn"],
            "ERROR_CODE": "NO_PERMISSIONS",
            "ERROR_MESSAGE": why,
        }
        _send(account, region, name, json.dumps(event), attributes)

    def sqs_send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        message = send_message(self, *args, **kwargs)
        sender = _caller.get()
        if sender is not None and sender.user_id:
            message.sender_id = sender.user_id
        return message

    def sts_get_caller_identity(self: Any, access_key_id: str, region: str) -> tuple[str, str, str]:
        # moto reads only 20-character keys (`promoter local credentials --principal`'s are
        # longer) and answers `user/moto` for a key it did not make: the caller then is the
        # principal the local AWS found for the keys, answered as AWS answers (a role as its
        # session). Keys moto made (AssumeRole) keep moto's answer.
        user_id, arn, account = caller_identity(self, access_key_id, region)
        caller = _caller.get()
        if caller is None or caller.is_service or user_id != MOTO_UNKNOWN_KEY_USER_ID:
            return user_id, arn, account
        return caller.user_id, caller.session_arn or caller.arn, caller.account

    Rule.send_to_targets = rule_send_to_targets
    Rule._send_to_sqs_queue = rule_send_to_sqs_queue
    SQSBackend.send_message = sqs_send_message
    STSBackend.get_caller_identity = sts_get_caller_identity
    _applied = True
