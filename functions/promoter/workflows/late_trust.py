"""Trust material that arrives after its image was promoted (issue 21.1).

The usual CI order is push, then sign: the push promotes the image (to staging, say) before
`cosign sign` has written anything, and a request for prod made meanwhile is `unverified`. ECR
announces the moment the signature lands: a push of a cosign tag (`sha256-<hex>.sig`, `.att`,
`.sbom`: an `ECR Image Action`) or an `ECR Referrer Action` for an OCI 1.1 referrer. On either:

1. the subject is found: a cosign tag names it; a referrer's manifest says it (`subject`), and a
   referrer of a referrer (a signature on an SBOM) is followed up to the image the history knows;
2. every target the history says the image was placed in (its newest record there `promoted` or
   `already-present`) gets the trust material it lacks, through the rule's gates like a promotion
   (a signature gate verifies, and the signature that passed is recorded), never its tag
   (`Promoter.carry_trust_material`). Each carry that wrote something is recorded and announced;
   one that found nothing missing (a duplicate event, the sweep's work) costs reads only;
3. every request whose newest record for a target is `unverified` is run again, once (its request
   id then holds two records there), through the same gates, as the request it was: the push-then-
   sign order needs no second request.

Archived trust material, a referrer listing that fails and a target that no longer holds the
image are outcomes of the carry, as they are of a promotion (workflows.promote).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from promoter.aws.history import History
from promoter.aws.registry import Registry
from promoter.aws.results import ResultSink
from promoter.exceptions import PromoterError
from promoter.model.config import PromotionConfig, Rule
from promoter.model.events import Event, ImagePushed, PromotionRequested, ReferrerArrived
from promoter.model.outcomes import ALREADY_PRESENT, PROMOTED, UNVERIFIED, ActionResult, target_location
from promoter.model.plan import (
    COSIGN_TAG_PATTERN,
    TRIGGER_REQUEST,
    Action,
    Provenance,
    SourceImage,
    plan_actions,
)
from promoter.model.verdicts import GateStore
from promoter.workflows.promote import TRUST_TREE_MAX_DEPTH, Promoter
from promoter.workflows.service import (
    ActionRunner,
    EventResult,
    handle_event,
    record_history,
    sweep_gate_check,
)

logger = logging.getLogger(__name__)

# The trigger recorded with a carry of late trust material (history `trigger`, result provenance).
TRIGGER_TRUST_MATERIAL = "trust-material"
# Newest outcomes of a target that say the image is there: its trust material follows it.
PLACED_OUTCOMES = frozenset({PROMOTED, ALREADY_PRESENT})


@dataclass(frozen=True)
class TrustArrival:
    """Trust material became pullable in `repository`: the manifest `digest`, about `subject`
    (None: a referrer, whose manifest names its subject)."""

    event_id: str
    repository: str
    digest: str
    subject: str | None = None


class PromotionRecords(History, Protocol):
    """The history, written and read by target tag (promoter.aws.history.DynamoDbHistory): one
    Query per target, what the stack grants the promoter (never a Scan)."""

    def for_target(self, repository: str, tag: str, newest_first: bool = False) -> list[dict[str, Any]]: ...


def trust_arrival(event: Event) -> TrustArrival | None:
    """The arrival an event announces: a referrer's, or a cosign tag's push; None for any other."""
    if isinstance(event, ReferrerArrived):
        return TrustArrival(event.event_id, event.repository, event.digest)
    if isinstance(event, ImagePushed) and COSIGN_TAG_PATTERN.fullmatch(event.tag):
        algorithm, _, rest = event.tag.partition("-")
        subject = f"{algorithm}:{rest.split('.')[0]}"
        return TrustArrival(event.event_id, event.repository, event.digest, subject)
    return None


def carry_late_trust_material(
    arrival: TrustArrival,
    config: PromotionConfig,
    registry: Registry,
    promoter: Promoter,
    run: ActionRunner,
    history: PromotionRecords,
    results: ResultSink | None = None,
    gates: GateStore | None = None,
) -> EventResult:
    """Carries the arrival's trust material to every target of its image and retries the requests
    it may now let through (module docstring). Retryable failures make the event come back; the
    carry is idempotent (what the target holds is never put again)."""
    try:
        subject, records = _promoted_subject(arrival, config, registry, history)
    except PromoterError as exc:
        return EventResult(arrival.event_id, error=str(exc), retry=exc.retryable)
    if subject is None:
        where = f"{arrival.repository}@{arrival.digest}"
        reason = f"no promoted image has {where} as trust material"
        return EventResult(arrival.event_id, ignored_reason=reason)
    carried = _carry(arrival, subject, records, config, registry, promoter, history, results)
    retried = [
        handle_event(request, config, registry, run, history, results, gates)
        for request in _unverified_requests(arrival, subject, records, config)
    ]
    return EventResult(
        arrival.event_id,
        (*carried.results, *(r for done in retried for r in done.results)),
        error=carried.error or next((done.error for done in retried if done.error), None),
        retry=carried.retry or any(done.retry for done in retried),
        history_failures=carried.history_failures + sum(done.history_failures for done in retried),
    )


def _promoted_subject(
    arrival: TrustArrival, config: PromotionConfig, registry: Registry, history: PromotionRecords
) -> tuple[str | None, list[dict[str, Any]]]:
    """The image the arrival is trust material of, with the history's records of it (newest first):
    the subject, or its subject in turn, up to TRUST_TREE_MAX_DEPTH levels. (None, []) when no
    level is an image the promoter placed anywhere from this repository."""
    repository, digest, subject = arrival.repository, arrival.digest, arrival.subject
    for _ in range(TRUST_TREE_MAX_DEPTH):
        if subject is None:
            manifest = registry.get_manifests(repository, [digest]).get(digest)
            subject = _subject_of(manifest.document if manifest else {})
            if subject is None:
                return None, []
        records = _records_of(repository, subject, config, registry, history)
        if records:
            return subject, records
        digest, subject = subject, None
    return None, []


def _records_of(
    repository: str, subject: str, config: PromotionConfig, registry: Registry, history: PromotionRecords
) -> list[dict[str, Any]]:
    """The history's records of `repository@subject`, newest first per target: the targets are the
    ones the rules give the image under each tag it carries in `repository` now (one DescribeImages),
    each read with one Query. An untagged manifest (a referrer) has none."""
    tags = registry.image_tags(repository, subject) or ()
    records: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for rule in config.rules:
        for tag in tags:
            if COSIGN_TAG_PATTERN.fullmatch(tag) or not rule.source.matches(repository, tag):
                continue
            for action in plan_actions(SourceImage(repository, tag, subject), [rule]):
                where = target_location(action.target_repository, action.target_account, action.target_region)
                if (where, action.target_tag) in seen:
                    continue
                seen.add((where, action.target_tag))
                records += [
                    r
                    for r in history.for_target(where, action.target_tag, newest_first=True)
                    if r.get("source_repository") == repository and r.get("source_digest") == subject
                ]
    return records


def _subject_of(document: Mapping[str, Any]) -> str | None:
    subject = document.get("subject")
    value = subject.get("digest") if isinstance(subject, Mapping) else None
    return value if isinstance(value, str) else None


def _newest_per_target(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest record of each target tag (records come newest first) that says what the target
    holds: a carry's own record (trigger `trust-material`) says what went along with it, not that."""
    newest: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("trigger") != TRIGGER_TRUST_MATERIAL:
            newest.setdefault(str(record.get("pk", "")), record)
    return newest


def _action_of(record: Mapping[str, Any], config: PromotionConfig) -> Action | None:
    """The action of the record's rule for its target, planned again from the rule (so a target in
    another registry has its role); None when the rule or that target is gone from the config."""
    rule: Rule | None = config.rule(str(record.get("rule", "")))
    if rule is None:
        return None
    source_tag = str(record.get("source", "")).partition(":")[2].rpartition("@")[0]
    source = SourceImage(str(record["source_repository"]), source_tag, str(record["source_digest"]))
    location = (record.get("target_account") or None, record.get("target_region") or None)
    return next(
        (
            action
            for action in plan_actions(source, [rule])
            if (action.target_account, action.target_region) == location
            and action.target_repository == record.get("target_repository")
            and action.target_tag == record.get("target_tag")
        ),
        None,
    )


def _carry(
    arrival: TrustArrival,
    subject: str,
    records: Sequence[dict[str, Any]],
    config: PromotionConfig,
    registry: Registry,
    promoter: Promoter,
    history: History,
    results: ResultSink | None,
) -> EventResult:
    """One carry per target repository the image was placed in (its tags share the manifests)."""
    gate_check = sweep_gate_check(config, registry)
    provenance = Provenance(trigger=TRIGGER_TRUST_MATERIAL, request_id=arrival.event_id)
    done: list[ActionResult] = []
    final: list[ActionResult] = []
    carried_to: set[str] = set()
    retry = False
    unrecorded = 0
    for record in _newest_per_target(records).values():
        if record.get("outcome") not in PLACED_OUTCOMES or record.get("target_digest") != subject:
            continue
        action = _action_of(record, config)
        if action is None:
            continue
        where = target_location(action.target_repository, action.target_account, action.target_region)
        if where in carried_to:
            continue
        carried_to.add(where)
        try:
            stopped, signature = gate_check(action)
            result = stopped or promoter.carry_trust_material(action)
        except PromoterError as exc:
            if not exc.retryable:
                raise
            logger.warning("trust material of %s not carried to %s, will retry: %s", subject, where, exc)
            retry = True
            continue
        if signature and stopped is None:
            result = replace(result, signature=signature)
        if result.outcome == PROMOTED:  # said in the history, the result event and the terminal line
            result = replace(
                result, reason=f"trust material that arrived after the promotion: {arrival.digest}"
            )
        done.append(result)
        if result.outcome == ALREADY_PRESENT:
            continue  # nothing was missing: a replay, or another event carried it first
        final.append(result)
        if not record_history(history, arrival.event_id, result, provenance):
            unrecorded += 1
    if results is not None and final:
        results.publish(final, provenance)
    return EventResult(arrival.event_id, tuple(done), retry=retry, history_failures=unrecorded)


def _unverified_requests(
    arrival: TrustArrival, subject: str, records: Sequence[dict[str, Any]], config: PromotionConfig
) -> list[PromotionRequested]:
    """The requests to run again: newest record for a target `unverified`, by a request, and that
    request tried there only once so far. One request per request id, as it was made."""
    tries: dict[tuple[str, str], int] = {}
    for record in records:
        key = (str(record.get("pk", "")), str(record.get("request_id", "")))
        tries[key] = tries.get(key, 0) + 1
    requests: dict[str, PromotionRequested] = {}
    for pk, record in _newest_per_target(records).items():
        request_id = str(record.get("request_id", ""))
        if (
            record.get("outcome") != UNVERIFIED
            or record.get("trigger") != TRIGGER_REQUEST
            or not request_id
            or tries[(pk, request_id)] > 1
            or request_id in requests
        ):
            continue
        rule = config.rule(str(record.get("rule", "")))
        if rule is None:
            continue
        source_tag = str(record.get("source", "")).partition(":")[2].rpartition("@")[0]
        first = str(record.get("authenticated_as", ""))
        requests[request_id] = PromotionRequested(
            event_id=request_id,
            repository=arrival.repository,
            tag=source_tag,
            digest=subject,
            rule=rule.name,
            requested_by=str(record.get("requested_by", "")),
            reason=str(record.get("request_reason", "")),
            metadata=_metadata(record.get("metadata")),
            # The request passed the rule's requester check when it was first handled.
            source_rule=rule.name if rule.requesters else None,
            tag_resolved=True,
        )
        logger.info(
            "request %s (%s) runs again: trust material %s of %s arrived",
            request_id,
            first or "unauthenticated",
            arrival.digest,
            subject,
        )
    return list(requests.values())


def _metadata(text: Any) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(str(text))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
