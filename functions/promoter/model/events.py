"""Event models: what arrives from EventBridge (directly or as an SQS body), as typed values.

Parsing is tolerant where AWS is (optional fields such as `image-tag` or `manifest-media-type`
may be missing or empty) and strict where the engine needs a field: a push without a repository
or digest, or a request without a repository, is an `EventError` (bad input, never retried).
A message that is not an EventBridge event at all is a `MalformedMessageError`.
Events the promoter does not act on are still parsed, into `IgnoredEvent`, so the reason can be
logged instead of guessed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from promoter import settings
from promoter.exceptions import EventError, MalformedMessageError
from promoter.model.templates import is_digest

ECR_SOURCE = "aws.ecr"
ECR_IMAGE_ACTION = "ECR Image Action"
ECR_IMAGE_SCAN = "ECR Image Scan"
# An OCI 1.1 referrer (signature, SBOM, attestation) pushed, restored or deleted
# (events/ecr-referrer-action.json).
ECR_REFERRER_ACTION = "ECR Referrer Action"
# A referrer restored from the archive is pullable again: trust material that arrives, like a push.
UPDATE_STORAGE_CLASS_ACTION = "UPDATE_STORAGE_CLASS"
STANDARD_STORAGE_CLASS = "STANDARD"
# Enhanced scanning: Inspector reports on the default bus; its repository-name is the repository ARN.
INSPECTOR_SOURCE = "aws.inspector2"
INSPECTOR_SCAN = "Inspector2 Scan"
SCHEDULE_SOURCE = "aws.events"
SCHEDULED_EVENT = "Scheduled Event"
PUSH_ACTION = "PUSH"
SUCCESS_RESULT = "SUCCESS"
# The approval channel (promoter.aws.approvals) announces each recorded decision on the promoter's
# own bus; the stack routes it into the queue, and the waiting promotion runs again.
APPROVAL_SOURCE = "image-promoter.approvals"
APPROVAL_DECIDED = "Promotion Approval Decided"


@dataclass(frozen=True)
class ImagePushed:
    """ECR Image Action, PUSH, SUCCESS: an image (tagged or not) arrived in a repository."""

    event_id: str
    repository: str
    digest: str
    tag: str  # "" for an untagged push (index children, referrers)
    media_type: str | None = None
    time: str = ""  # the envelope's `time`: when ECR took the push


@dataclass(frozen=True)
class ImageScanned:
    """ECR Image Scan or Inspector2 Scan: a scan finished; promotions waiting on it resume."""

    event_id: str
    repository: str
    digest: str
    status: str


@dataclass(frozen=True)
class PromotionRequested:
    """A person or pipeline asks to promote an image: by tag, by digest, or both (digest wins)."""

    event_id: str
    repository: str
    tag: str
    digest: str | None = None
    rule: str | None = None  # only this rule, else every request rule that matches
    requested_by: str = ""
    reason: str = ""
    metadata: Mapping[str, Any] | None = None  # free-form, carried into results and history
    # What AWS vouches for, apart from the declared `requested_by`: the envelope's `account` (the
    # account whose principal called PutEvents) and, for a per-rule source, the rule whose
    # requesters alone the bus policy lets post it.
    sender_account: str = ""
    source_rule: str | None = None
    # Set only by the engine, never parsed from a request: the digest is the one `tag` pointed at
    # when the request was first handled (a promotion waiting on a scan keeps what was tested), so
    # the tag is not bound to it again when the wait resumes.
    tag_resolved: bool = False
    # Set only by the handler, from SQS's SenderId (promoter.model.senders.delivery_note): how the
    # request reached the queue, and that it is an inference; "" when SQS named no sender.
    delivery: str = ""


@dataclass(frozen=True)
class ReferrerArrived:
    """ECR Referrer Action, PUSH (or restored to STANDARD), SUCCESS: a referrer is pullable in a
    repository. The event does not name its subject: the referrer's manifest does
    (workflows.late_trust reads it)."""

    event_id: str
    repository: str
    digest: str  # the referrer's own digest
    artifact_type: str = ""

    @property
    def reason(self) -> str:
        """Why the promotion planner passes it by: the late-trust workflow handles it."""
        return "a referrer's arrival carries trust material to promoted images (workflows.late_trust)"


@dataclass(frozen=True)
class ApprovalDecided:
    """Promotion Approval Decided: a decision was recorded on the wait `wait_id` (the decision
    itself is on the wait's record, not in the event: the event only says when to look again)."""

    event_id: str
    wait_id: str
    repository: str
    digest: str

    @property
    def reason(self) -> str:
        """Why the promotion planner passes it by: it only resumes the wait it names."""
        return f"a decision only resumes the promotion waiting as {self.wait_id}"


@dataclass(frozen=True)
class SweepDue:
    """The scheduled tick (EventBridge schedule): end scan-gate waits that passed their deadline."""

    event_id: str


@dataclass(frozen=True)
class IgnoredEvent:
    """Any other event: kept with the reason it is ignored."""

    event_id: str
    reason: str


Event = (
    ImagePushed
    | ImageScanned
    | PromotionRequested
    | SweepDue
    | ReferrerArrived
    | ApprovalDecided
    | IgnoredEvent
)


def parse_json_event(body: str) -> Event:
    """Parses an SQS message body that holds an EventBridge event."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise MalformedMessageError(f"the message body is not JSON: {exc}") from exc
    return parse_event(data)


def parse_event(data: object) -> Event:
    """Parses an EventBridge event envelope (a dict)."""
    if not isinstance(data, Mapping):
        raise MalformedMessageError(f"an event must be a JSON object, got {type(data).__name__}")
    event_id = _text(data, "id") or ""
    source = _text(data, "source")
    detail_type = _text(data, "detail-type")
    detail = data.get("detail")
    if source is None or detail_type is None:
        raise MalformedMessageError(
            f"event {event_id!r} has no 'source' or 'detail-type': not an EventBridge event"
        )
    if not isinstance(detail, Mapping):
        raise MalformedMessageError(f"event {event_id!r} has no 'detail' object")
    if source == ECR_SOURCE and detail_type == ECR_IMAGE_ACTION:
        pushed = _parse_image_action(event_id, detail)
        return replace(pushed, time=_text(data, "time") or "") if isinstance(pushed, ImagePushed) else pushed
    if source == ECR_SOURCE and detail_type == ECR_IMAGE_SCAN:
        return ImageScanned(
            event_id=event_id,
            repository=_required(detail, "repository-name", event_id),
            digest=_required(detail, "image-digest", event_id),
            status=_text(detail, "scan-status") or "",
        )
    if source == ECR_SOURCE and detail_type == ECR_REFERRER_ACTION:
        return _parse_referrer_action(event_id, detail)
    if source == SCHEDULE_SOURCE and detail_type == SCHEDULED_EVENT:
        return SweepDue(event_id)
    if source == APPROVAL_SOURCE and detail_type == APPROVAL_DECIDED:
        return ApprovalDecided(
            event_id=event_id,
            wait_id=_required(detail, "wait-id", event_id),
            repository=_required(detail, "repository", event_id),
            digest=_required(detail, "digest", event_id),
        )
    if source == INSPECTOR_SOURCE and detail_type == INSPECTOR_SCAN:
        arn = _required(detail, "repository-name", event_id)
        return ImageScanned(
            event_id=event_id,
            repository=arn.split(":repository/", 1)[-1],
            digest=_required(detail, "image-digest", event_id),
            status=_text(detail, "scan-status") or "",
        )
    if detail_type == settings.REQUEST_DETAIL_TYPE and (
        source == settings.request_event_source() or settings.rule_of_request_source(source)
    ):
        request = _parse_request(event_id, detail, _text(data, "account") or "")
        source_rule = settings.rule_of_request_source(source)
        if source_rule is None:
            return request
        if request.rule not in (None, source_rule):
            raise EventError(
                f"promotion request {event_id!r} was posted for rule {source_rule!r} (source {source!r}) "
                f"but names rule {request.rule!r}"
            )
        return replace(request, rule=source_rule, source_rule=source_rule)
    return IgnoredEvent(event_id, f"{source} / {detail_type!r} events do not trigger promotions")


def _parse_image_action(event_id: str, detail: Mapping[str, Any]) -> Event:
    action = _text(detail, "action-type")
    result = _text(detail, "result")
    if action != PUSH_ACTION:
        return IgnoredEvent(event_id, f"ECR image action {action!r} is not a push")
    if result != SUCCESS_RESULT:
        return IgnoredEvent(event_id, f"push result is {result!r}, not SUCCESS")
    digest = _required(detail, "image-digest", event_id)
    if not is_digest(digest):
        raise EventError(f"event {event_id!r}: image-digest {digest!r} is not a sha256 digest")
    return ImagePushed(
        event_id=event_id,
        repository=_required(detail, "repository-name", event_id),
        digest=digest,
        tag=_text(detail, "image-tag") or "",
        media_type=_text(detail, "manifest-media-type"),
    )


def _parse_referrer_action(event_id: str, detail: Mapping[str, Any]) -> Event:
    action = _text(detail, "action-type")
    result = _text(detail, "result")
    storage_class = _text(detail, "target-storage-class")
    restored = action == UPDATE_STORAGE_CLASS_ACTION and storage_class == STANDARD_STORAGE_CLASS
    if action != PUSH_ACTION and not restored:
        return IgnoredEvent(event_id, f"ECR referrer action {action!r} brings no trust material")
    if result != SUCCESS_RESULT:
        return IgnoredEvent(event_id, f"referrer action result is {result!r}, not SUCCESS")
    digest = _required(detail, "image-digest", event_id)
    if not is_digest(digest):
        raise EventError(f"event {event_id!r}: image-digest {digest!r} is not a sha256 digest")
    return ReferrerArrived(
        event_id=event_id,
        repository=_required(detail, "repository-name", event_id),
        digest=digest,
        artifact_type=_text(detail, "artifact-media-type") or "",
    )


def _parse_request(event_id: str, detail: Mapping[str, Any], sender_account: str = "") -> PromotionRequested:
    repository = _required(detail, "repository-name", event_id)
    tag = _text(detail, "image-tag") or ""
    digest = _text(detail, "image-digest") or None
    if not tag and not digest:
        raise EventError(f"promotion request {event_id!r} names neither image-tag nor image-digest")
    if digest is not None and not is_digest(digest):
        raise EventError(f"promotion request {event_id!r}: image-digest {digest!r} is not a sha256 digest")
    metadata = detail.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise EventError(f"promotion request {event_id!r}: metadata must be an object")
    return PromotionRequested(
        event_id,
        repository,
        tag,
        digest,
        _text(detail, "rule") or None,
        requested_by=_text(detail, "requested-by") or "",
        reason=_text(detail, "reason") or "",
        metadata=dict(metadata) if metadata else None,
        sender_account=sender_account,
    )


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _required(data: Mapping[str, Any], key: str, event_id: str) -> str:
    value = _text(data, key)
    if not value:
        raise EventError(f"event {event_id!r} lacks detail field {key!r}")
    return value
