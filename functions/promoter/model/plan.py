"""Planning: from an event and the rules to the list of promotion actions. Pure: no I/O.

The facts a request's plan needs from the registry are looked up by the caller and passed in (the
digest a requested tag points at; for a request by digest alone, the tags that image carries in the
source repository), so `promoter plan` and the Lambda compute the very same actions.
Only successful, tagged pushes fire `push` rules; promotion requests fire `request` rules (or the
one rule they name). Everything else is planned as nothing, with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from promoter import settings
from promoter.exceptions import InvalidRequestError, TemplateError
from promoter.model.config import TRIGGER_PUSH, TRIGGER_REQUEST, PromotionConfig, Rule, TargetRegistry
from promoter.model.events import Event, ImagePushed, ImageScanned, PromotionRequested, SweepDue
from promoter.model.templates import (
    SEMVER_FIELDS,
    ImageFacts,
    is_floating_template,
    is_valid_repository,
    is_valid_tag,
    parse_semver,
    render,
    template_fields,
)

# Cosign keeps signatures, attestations and SBOMs at tags derived from the subject's digest;
# they travel with their subject and are never promoted on their own.
COSIGN_TAG_PATTERN = re.compile(r"sha256-[0-9a-f]{64}\.(sig|att|sbom)")
TARGET_IS_SOURCE = "the target is the source itself"
# A one-off `promoter promote`: not a config trigger, but recorded as one in results and history.
TRIGGER_MANUAL = "manual"
# Template fields that come from the source tag: a request by digest alone must name one tag for them.
SOURCE_TAG_FIELDS = frozenset({"tag"}) | SEMVER_FIELDS


@dataclass(frozen=True)
class Provenance:
    """Why the actions of a plan run: the trigger, and for a request who asked and why."""

    trigger: str = TRIGGER_PUSH
    request_id: str = ""
    requested_by: str = ""  # as the requester declared it: free text, nobody checked it
    reason: str = ""
    # What AWS authenticated, kept apart from `requested_by` (see `authenticated_requester`).
    authenticated_as: str = ""
    # The request's free-form `metadata`, carried into result events and history.
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SourceImage:
    """The image being promoted: where it is and what it is."""

    repository: str
    tag: str
    digest: str


@dataclass(frozen=True)
class Action:
    """Put `source` into `target_repository` under `target_tag`, unless `skip_reason` says why not."""

    rule: str
    source: SourceImage
    target_repository: str
    target_tag: str
    skip_reason: str | None = None
    # The target's registry when it is another account or region (config.TargetRegistry); all
    # None: the promoter's own registry.
    target_account: str | None = None
    target_region: str | None = None
    target_role: str | None = None
    # Set for a floating tag (templates.is_floating_template): the version being promoted, e.g. "1.4.3";
    # the promoter moves the tag only when this is newer than the version it holds now.
    floating_version: str | None = None
    # The rule's `source.restore_archived`: an archived source is restored, then promoted once ACTIVE.
    restore_archived: bool = False
    # The skip is the rule working as meant (a pre-release never moves a floating tag): outcome `kept`.
    kept_by_design: bool = False
    # The target tag never moves to an image pushed before the one it holds (model/ordering.py):
    # every action planned from a rule (push, request, reconcile). A break-glass `promote` and a
    # rollback are explicit moves, built with False.
    forward_only: bool = True
    # The target's `create_missing` settings (config.CreateMissing.to_dict, as JSON): the promoter
    # creates the target repository with them when it is missing and no creation template covers it.
    create_missing: str | None = None
    # Issue 19: what the action's attestation says besides the action itself, set by run_plan (not
    # part of the idempotency key): the passing gates' evidence (`Evidence.to_dict`, gate order),
    # what started it (push, request, reconcile, manual, rollback), the requester as AWS
    # authenticated it ("" when unknown: a push, say), and the event's id.
    evidence: tuple[Mapping[str, Any], ...] = ()
    trigger: str = ""
    authenticated_requester: str = ""
    event_id: str = ""

    @property
    def remote_target(self) -> bool:
        """Whether the target is in another account or region (bytes must cross registries)."""
        return bool(self.target_account or self.target_region)

    @property
    def same_repository(self) -> bool:
        return not self.remote_target and self.source.repository == self.target_repository

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Action:
        evidence = tuple(data.get("evidence") or ())
        return cls(**{**data, "source": SourceImage(**data["source"]), "evidence": evidence})


@dataclass(frozen=True)
class Plan:
    """What one event asks for; `ignored_reason` is set when it asks for nothing."""

    event_id: str
    actions: tuple[Action, ...] = ()
    ignored_reason: str | None = None
    provenance: Provenance = Provenance()


def requested_digest_needed(event: Event) -> bool:
    """Whether the caller must look up the digest of the requested tag before planning."""
    return isinstance(event, PromotionRequested) and event.digest is None


def plan_event(
    event: Event,
    config: PromotionConfig,
    resolved_digest: str | None = None,
    source_tags: tuple[str, ...] = (),
) -> Plan:
    """The actions for one event. For a request by tag, pass the digest the tag points at now; for
    a request by digest alone, the tags the image carries in the source repository now."""
    if isinstance(event, ImagePushed):
        return _plan_push(event, config)
    if isinstance(event, PromotionRequested):
        return _plan_request(event, config, resolved_digest, source_tags)
    if isinstance(event, ImageScanned):
        return Plan(event.event_id, ignored_reason="a scan only resumes promotions waiting on it")
    if isinstance(event, SweepDue):
        return Plan(event.event_id, ignored_reason="the sweep only ends scan-gate waits")
    return Plan(event.event_id, ignored_reason=event.reason)


def _plan_push(event: ImagePushed, config: PromotionConfig) -> Plan:
    if not event.tag:
        return Plan(event.event_id, ignored_reason="untagged push: children and referrers go with their tag")
    if COSIGN_TAG_PATTERN.fullmatch(event.tag):
        return Plan(event.event_id, ignored_reason="cosign signature tag: it goes along with its subject")
    rules = [r for r in config.rules_for(TRIGGER_PUSH) if r.source.matches(event.repository, event.tag)]
    if not rules:
        return Plan(event.event_id, ignored_reason=f"no push rule matches {event.repository}:{event.tag}")
    source = SourceImage(event.repository, event.tag, event.digest)
    return Plan(event.event_id, plan_actions(source, rules))


def _plan_request(
    event: PromotionRequested, config: PromotionConfig, resolved: str | None, source_tags: tuple[str, ...]
) -> Plan:
    digest = event.digest or resolved
    if digest is None:
        raise ValueError("a request by tag needs the digest the tag points at (resolved_digest)")
    # A request names a `trigger: request` rule or none (every request rule that matches); anything
    # else is a bad request, answered with a failure (the contract), never a silent no-op.
    if event.rule is not None:
        named = config.rule(event.rule)
        if named is None:
            raise InvalidRequestError(f"the request names unknown rule {event.rule!r}")
        if named.trigger != TRIGGER_REQUEST:
            raise InvalidRequestError(f"rule {event.rule!r} is a {named.trigger} rule, not a request rule")
        if named.requesters and event.source_rule != named.name:
            # The bus policy checks the poster of the rule's own source only; on the shared source
            # anyone the bus trusts could name this rule.
            raise InvalidRequestError(
                f"rule {named.name!r} takes requests only from its requesters, posted with the source "
                f"{settings.rule_request_source(named.name)!r}"
            )
        candidates: tuple[Rule, ...] = (named,)
    else:
        # On the shared source, only rules open to every trusted principal can match.
        candidates = tuple(r for r in config.rules_for(TRIGGER_REQUEST) if not r.requesters)
    provenance = request_provenance(event)
    sources = [
        (SourceImage(event.repository, tag, digest), rule)
        for rule in candidates
        if (tag := _request_tag(rule, event, source_tags)) is not None
    ]
    if not sources:
        wanted = event.tag or f"{event.digest} (tags: {', '.join(source_tags) or 'none'})"
        raise InvalidRequestError(f"no request rule matches {event.repository}:{wanted}")
    return Plan(event.event_id, _actions_for(sources), provenance=provenance)


def _request_tag(rule: Rule, event: PromotionRequested, source_tags: tuple[str, ...]) -> str | None:
    """The source tag the rule sees for this request, None when the rule does not match. A request
    by digest alone passes the tag filter only through a tag the image carries in the source
    repository (else `latest` could be put on any image of it); when the rule's targets are filled
    from the tag, exactly one carried tag may match. Raises InvalidRequestError when several do."""
    if event.tag:
        return event.tag if rule.source.matches(event.repository, event.tag) else None
    matching = [
        t
        for t in source_tags
        if not COSIGN_TAG_PATTERN.fullmatch(t) and rule.source.matches(event.repository, t)
    ]
    if not matching:
        return None
    if len(matching) == 1:
        return matching[0]
    if _needs_tag(rule):
        raise InvalidRequestError(
            f"request for {event.repository}@{event.digest} is ambiguous for rule {rule.name!r}: the image "
            f"carries {len(matching)} matching tags ({', '.join(sorted(matching))}) and the rule's targets "
            "are named from the tag; request it by tag and digest"
        )
    return ""


def _needs_tag(rule: Rule) -> bool:
    """Whether a target repository or tag of the rule is filled from the source tag."""
    captures = rule.source.captures
    for target in rule.targets:
        for template in (target.repository, *target.tags):
            try:
                if SOURCE_TAG_FIELDS.intersection(template_fields(template, captures)):
                    return True
            except TemplateError:
                return True  # validation refuses it; a plan never guesses
    return False


def authenticated_requester(event: PromotionRequested) -> str:
    """What AWS vouches for about who posted a request, as EventBridge delivers it: the envelope's
    `account` (the poster's account), and on a rule's own source that the poster is one of the
    rule's requesters (the bus policy denies that source to anyone else). Both hold only for what
    EventBridge delivered, which the handler infers from SQS's SenderId and says so (`delivery`;
    the queue policy is what AWS enforces). "" when it says nothing."""
    parts = [f"account {event.sender_account}"] if event.sender_account else []
    if event.source_rule:
        parts.append(f"a requester of rule {event.source_rule}")
    elif parts:
        parts.append("a principal the promotion bus trusts")
    if event.delivery:
        parts.append(event.delivery)
    return ", ".join(parts)


def request_provenance(event: PromotionRequested) -> Provenance:
    """The provenance of a request's actions: declared and authenticated requester side by side."""
    return Provenance(
        TRIGGER_REQUEST,
        event.event_id,
        event.requested_by,
        event.reason,
        authenticated_as=authenticated_requester(event),
        metadata=event.metadata,
    )


def plan_actions(source: SourceImage, rules: list[Rule] | tuple[Rule, ...]) -> tuple[Action, ...]:
    """One action per rule target and tag, de-duplicated on the target (first rule wins)."""
    return _actions_for([(source, rule) for rule in rules])


def _actions_for(sources: list[tuple[SourceImage, Rule]]) -> tuple[Action, ...]:
    """`plan_actions` where each rule may see the image under its own source tag."""
    actions: list[Action] = []
    seen: set[tuple[str | None, str | None, str, str]] = set()
    for source, rule in sources:
        # A `re:` source repository's named groups fill the targets' `{name}` fields.
        facts = ImageFacts(
            repository=source.repository,
            tag=source.tag,
            digest=source.digest,
            captures=rule.source.repository_pattern.captures(source.repository),
        )
        for target in rule.targets:
            for tag_template in target.tags:
                action = _in_registry(
                    _render_action(rule.name, source, facts, target.repository, tag_template),
                    target.registry,
                )
                if rule.source.restore_archived:
                    action = replace(action, restore_archived=True)
                if target.create_missing is not None:
                    created_with = json.dumps(target.create_missing.to_dict(), sort_keys=True)
                    action = replace(action, create_missing=created_with)
                key = (action.target_account, action.target_region, action.target_repository)
                key += (action.target_tag,)
                if key in seen:
                    continue
                seen.add(key)
                actions.append(action)
    return tuple(actions)


def _in_registry(action: Action, registry: TargetRegistry | None) -> Action:
    """The action aimed at the target's registry; there, the source's own name is no loop."""
    if registry is None:
        return action
    skip = None if action.skip_reason == TARGET_IS_SOURCE else action.skip_reason
    return replace(
        action,
        target_account=registry.account,
        target_region=registry.region,
        target_role=registry.role,
        skip_reason=skip,
    )


def _render_action(
    rule: str, source: SourceImage, facts: ImageFacts, repo_template: str, tag_template: str
) -> Action:
    try:
        repository = render(repo_template, facts)
        tag = render(tag_template, facts)
    except TemplateError as exc:
        return Action(rule, source, repo_template, tag_template, skip_reason=str(exc))
    except (KeyError, IndexError, ValueError) as exc:  # a template refused by validation got here anyway
        return Action(rule, source, repo_template, tag_template, skip_reason=f"bad template: {exc}")
    skip = None
    if not is_valid_repository(repository):
        skip = f"rendered repository {repository!r} is not a valid ECR repository name"
    elif not tag or not is_valid_tag(tag):
        skip = f"rendered tag {tag!r} is not a valid ECR tag"
    elif repository == source.repository and tag == source.tag:
        skip = TARGET_IS_SOURCE
    floating = None
    kept = False
    version = parse_semver(source.tag)
    if version is not None and is_floating_template(tag_template):
        floating = source.tag
        if version.prerelease and skip is None:
            skip = f"pre-release {source.tag} never moves floating tag {tag!r}"
            kept = True
    return Action(
        rule,
        source,
        repository,
        tag,
        skip_reason=skip,
        floating_version=floating,
        kept_by_design=kept,
    )
