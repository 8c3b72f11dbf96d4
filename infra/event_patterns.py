"""EventBridge patterns for the promoter, built from the repository globs of the rules.

Pure data (no CDK): the construct hands these to `events.EventPattern`, and the tests feed the
same dicts to a real pattern matcher. EventBridge narrows the traffic; the Lambda still matches
every event against the rules, so a pattern may be wider than a glob but never narrower.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from promoter import settings
from promoter.model.config import TRIGGER_PUSH, PromotionConfig
from promoter.model.events import APPROVAL_DECIDED, APPROVAL_SOURCE

ECR_EVENT_SOURCE = "aws.ecr"
ECR_IMAGE_ACTION = "ECR Image Action"
# A referrer (signature, SBOM, attestation) pushed or restored: trust material that follows its
# image (workflows.late_trust). Its detail names the referrer, its `artifact-media-type` and no tag.
ECR_REFERRER_ACTION = "ECR Referrer Action"
PUSH_ACTION = "PUSH"
SUCCESS_RESULT = "SUCCESS"
UPDATE_STORAGE_CLASS_ACTION = "UPDATE_STORAGE_CLASS"
# cosign's tags: sha256-<hex>.sig / .att / .sbom (EventBridge's prefix filter is the cheapest).
COSIGN_TAG_PREFIX = "sha256-"

# fnmatch metacharacters a repository glob may use. EventBridge's `wildcard` knows only `*`.
_GLOB_SINGLE = re.compile(r"\?|\[[^\]]*\]")
_GLOB_META = re.compile(r"[*?\[]")

# EventBridge's default quota on an event pattern's size, in characters (adjustable to 4096).
EVENT_PATTERN_MAX_CHARS = 2048

RepositoryFilter = str | dict[str, str]


def repository_filter(glob: str) -> RepositoryFilter | None:
    """The EventBridge filter for one repository glob; None when the glob matches every name.

    `team/api` -> exact match, `team/*` -> `prefix` (cheapest for EventBridge), anything else ->
    `wildcard`, where `?` and `[...]` widen to `*` (EventBridge has no single-character wildcard).
    """
    if not glob:
        raise ValueError("repository glob must not be empty")
    if not _GLOB_META.search(glob):
        return glob
    stem = glob[:-1]
    if glob.endswith("*") and not _GLOB_META.search(stem):
        return {"prefix": stem} if stem else None
    widened = re.sub(r"\*+", "*", _GLOB_SINGLE.sub("*", glob))
    return None if widened == "*" else {"wildcard": widened}


def repository_filters(globs: Iterable[str]) -> list[RepositoryFilter] | None:
    """One OR-list of filters for all globs, de-duplicated and sorted; None if any matches all."""
    filters: dict[str, RepositoryFilter] = {}
    for glob in globs:
        flt = repository_filter(glob)
        if flt is None:
            return None
        filters[repr(flt)] = flt
    return [filters[key] for key in sorted(filters)]


def _in_account(pattern: dict[str, Any], account: str | None) -> dict[str, Any]:
    """The pattern limited to events of `account` (None: any). A default bus can receive another
    account's ECR events (an organization's forwarding rule, a bus policy); their `account` is the
    account the push happened in, which EventBridge sets and nobody can forge."""
    return {**pattern, "account": [account]} if account is not None else pattern


def watched_repository_globs(config: PromotionConfig) -> tuple[str, ...]:
    """The repositories whose tagged pushes the promoter receives, sorted: the push rules' sources
    (a push there fires promotions) and every target in the promoter's own registry (a push there
    that no promotion of ours explains is a write behind its back: workflows.out_of_band)."""
    sources = (rule.source.repository_glob for rule in config.rules_for(TRIGGER_PUSH))
    return tuple(sorted({*sources, *config.target_repository_globs()}))


def trust_material_globs(config: PromotionConfig) -> tuple[str, ...]:
    """The repositories where trust material of promoted images arrives, sorted: every rule's source
    (a signature pushed there after a promotion follows the image: workflows.late_trust)."""
    return tuple(sorted({rule.source.repository_glob for rule in config.rules}))


def push_event_pattern(push_source_globs: Iterable[str], account: str | None = None) -> dict[str, Any]:
    """The default-bus pattern: successful tagged ECR pushes into the push rules' source repositories
    of `account` (the stack's own; None matches any account's, for tests of the pattern alone).
    A cosign tag (`sha256-<hex>.sig`) is a tagged push: in these repositories its late arrival
    reaches the promoter through this pattern (workflows.late_trust).

    Untagged pushes (index children, referrers, attestations) carry `"image-tag": ""` or no tag at
    all; `anything-but [""]` rejects both, because a filter on a field never matches a missing field.
    Raises ValueError when the pattern would exceed EventBridge's size quota.
    """
    detail: dict[str, Any] = {
        "action-type": [PUSH_ACTION],
        "result": [SUCCESS_RESULT],
        "image-tag": [{"anything-but": [""]}],
    }
    filters = repository_filters(push_source_globs)
    if filters is not None:
        detail["repository-name"] = filters
    pattern = _in_account(
        {"source": [ECR_EVENT_SOURCE], "detail-type": [ECR_IMAGE_ACTION], "detail": detail}, account
    )
    size = len(json.dumps(pattern, separators=(",", ":")))
    if size > EVENT_PATTERN_MAX_CHARS:
        raise ValueError(
            f"the push rules' sources and the targets are {len(filters or ())} repository filters and "
            f"the EventBridge pattern for them is {size} characters, over the {EVENT_PATTERN_MAX_CHARS} "
            "EventBridge accepts: cover related repositories with one glob (e.g. 'team/*')"
        )
    return pattern


def trust_material_event_pattern(
    trust_source_globs: Iterable[str], account: str | None = None
) -> dict[str, Any]:
    """The default-bus pattern for trust material arriving in the rules' sources of `account`
    (`trust_material_globs`; workflows.late_trust): a referrer pushed or restored from the archive
    (`ECR Referrer Action`: it names no tag, and its artifact type), or a push of one of cosign's
    tags (`ECR Image Action`, tag `sha256-<hex>.sig/.att/.sbom`). An untagged image push without a
    tag field and restores to ARCHIVE match too; the Lambda passes them by.
    Raises ValueError when the pattern would exceed EventBridge's size quota."""
    in_sources: dict[str, Any] = {}
    filters = repository_filters(trust_source_globs)
    if filters is not None:
        in_sources["repository-name"] = filters
    cosign_tag = {"action-type": [PUSH_ACTION], "image-tag": [{"prefix": COSIGN_TAG_PREFIX}]}
    referrer_pushed = {
        "action-type": [PUSH_ACTION, UPDATE_STORAGE_CLASS_ACTION],
        "image-tag": [{"exists": False}],
        "artifact-media-type": [{"exists": True}],
    }
    referrer = _in_account(
        {
            "source": [ECR_EVENT_SOURCE],
            "detail-type": [ECR_REFERRER_ACTION, ECR_IMAGE_ACTION],
            "detail": {"$or": [cosign_tag, referrer_pushed], "result": [SUCCESS_RESULT], **in_sources},
        },
        account,
    )
    size = len(json.dumps(referrer, separators=(",", ":")))
    if size > EVENT_PATTERN_MAX_CHARS:
        raise ValueError(
            f"the rules' sources are {len(filters or ())} repository filters and the EventBridge pattern "
            f"for their trust material is {size} characters, over the {EVENT_PATTERN_MAX_CHARS} "
            "EventBridge accepts: cover related repositories with one glob (e.g. 'team/*')"
        )
    return referrer


def request_event_pattern(
    source: str = settings.DEFAULT_REQUEST_EVENT_SOURCE, rules_with_requesters: Iterable[str] = ()
) -> dict[str, Any]:
    """Promotion requests on the promotion bus: the shared source, and the own source of each rule
    that names its requesters (`settings.rule_request_source`); results published there (same
    source, detail-types `settings.RESULT_DETAIL_TYPES`) never match it."""
    own = sorted(settings.rule_request_source(rule, source) for rule in rules_with_requesters)
    sources = [source, *own]
    return {"source": sources, "detail-type": [settings.REQUEST_DETAIL_TYPE]}


ECR_IMAGE_SCAN = "ECR Image Scan"
INSPECTOR_EVENT_SOURCE = "aws.inspector2"
INSPECTOR_SCAN = "Inspector2 Scan"


def basic_scan_event_pattern(gated_source_globs: Iterable[str], account: str | None = None) -> dict[str, Any]:
    """Default bus: finished basic scans of the source repositories of gated rules (of `account`)."""
    detail: dict[str, Any] = {}
    filters = repository_filters(gated_source_globs)
    if filters is not None:
        detail["repository-name"] = filters
    pattern: dict[str, Any] = _in_account(
        {"source": [ECR_EVENT_SOURCE], "detail-type": [ECR_IMAGE_SCAN]}, account
    )
    return {**pattern, "detail": detail} if detail else pattern


def inspector_scan_event_pattern(
    gated_source_globs: Iterable[str], account: str | None = None
) -> dict[str, Any]:
    """Default bus: Inspector (enhanced) scans of those repositories (of `account`); its
    `repository-name` is the repository ARN, so each glob is matched after `:repository/`."""
    filters: list[RepositoryFilter] = []
    for glob in sorted(set(gated_source_globs)):
        widened = re.sub(r"\*+", "*", _GLOB_SINGLE.sub("*", glob))
        filters.append({"wildcard": f"arn:*:ecr:*:*:repository/{widened}"})
    pattern = _in_account({"source": [INSPECTOR_EVENT_SOURCE], "detail-type": [INSPECTOR_SCAN]}, account)
    return {**pattern, "detail": {"repository-name": filters}} if filters else pattern


def approval_decided_event_pattern(account: str | None = None) -> dict[str, Any]:
    """The promotion bus: the approval channel's `Promotion Approval Decided` (of `account`: the
    stack's own channel puts it); the decision itself is on the wait's record, the event only says
    when to run the waiting promotion again."""
    return _in_account({"source": [APPROVAL_SOURCE], "detail-type": [APPROVAL_DECIDED]}, account)
