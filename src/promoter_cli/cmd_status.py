"""`promoter status` and `promoter graph`: where every version is, and how the rules connect.

`status` reads, for each rule, its source repositories (DescribeImages), plans every image as its
event would be planned and reads what each target tag holds: the very functions reconciliation uses
(`workflows.reconcile.desired_targets`, `current_digests`, `target_state`), so status and the
sweep cannot disagree about what a target should hold. The history adds when and how each shown
target tag last changed; the gates table adds what waits on a scan. With an attestation key
configured (`ATTESTATION_KEY_ARN`, which `--stack` sets from the stack's output), each shown target
that holds what it should, and each shown target of a request rule that holds an image, is checked
for its attestation (issue 19: one referrers listing each); a missing one is shown (`attestation
missing`) until reconciliation attaches it, or with the reason it will not: an approval rule (no
sweep can approve), or a digest the rule's source does not hold (`workflows.reconcile.
promoted_from_source`, the test the sweep applies). Reads only.
Exit codes: 0 read, 1 something could not be read (said in the output), 2 bad configuration.

`graph` prints the rules as a Mermaid flowchart (GitHub renders it in Markdown).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from promoter import settings
from promoter.exceptions import PromoterError
from promoter.model.config import TRIGGER_PUSH, PromotionConfig, Rule, TargetSpec
from promoter_cli.cmd_engine import (
    EXIT_BAD_INPUT,
    EXIT_NOT_ALL_PROMOTED,
    EXIT_OK,
    _add_config,
    config_or_exit,
)
from promoter_cli.output import add_json_flag, print_json, print_table, printable, qualified, short_digest

if TYPE_CHECKING:
    from collections.abc import Callable

    from promoter.aws.registry import ListedImage
    from promoter.model.approvals import ApprovalGate
    from promoter.model.outcomes import ActionResult
    from promoter.model.plan import Action
    from promoter.model.verdicts import Waiting
    from promoter.workflows.reconcile import DesiredTargets, SourceRegistry, TargetKey
    from promoter.workflows.rollback import HistoryReader

    # The rule's gates for one action: (the result that stops it, or None; the signature that passed).
    GateCheck = Callable[[Action], tuple[ActionResult | None, dict[str, str] | None]]
    # Our attestation of an in-sync target (its digest; None: missing).
    AttestationCheck = Callable[[Action], str | None]

DEFAULT_STATUS_IMAGES = 5
STATUS_COLUMNS = ("stage", "tags", "digest", "state", "last change")
# The states status shows beside reconciliation's own (workflows.reconcile: IN_SYNC, MISSING,
# BEHIND, AHEAD): a missing or behind target is `held` after a rollback, `not-requested` on a
# request rule.
SOURCE_STATE = "source"
HELD_STATE = "held"  # rolled back on purpose: reconciliation leaves it
# Written outside the promoter (its newest record is an out-of-band write of the digest it holds):
# the same word as that record's outcome (promoter.model.outcomes.FOREIGN).
FOREIGN_STATE = "foreign"
# How a protected target (`protect: true`) is marked in the table, the heading and the graph.
PROTECTED_MARK = " (protected)"
NOT_REQUESTED = "not-requested"  # a request rule's target: it moves only when asked


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `status` and `graph`."""
    status = sub.add_parser(
        "status", help="where each version is: what every stage of each rule holds, what is behind or waits"
    )
    _add_config(status)
    status.add_argument("--rule", metavar="R", help="only this rule")
    status.add_argument("--repository", metavar="R", help="only rules with this source or target repository")
    status.add_argument(
        "--images",
        type=int,
        default=DEFAULT_STATUS_IMAGES,
        metavar="N",
        help=f"newest source images shown per rule (default {DEFAULT_STATUS_IMAGES}; "
        "targets behind are always shown)",
    )
    add_json_flag(status)
    status.set_defaults(func=cmd_status)

    graph = sub.add_parser("graph", help="the rule graph as a Mermaid flowchart (GitHub renders it)")
    _add_config(graph)
    graph.set_defaults(func=cmd_graph)


def cmd_status(args: argparse.Namespace) -> int:
    from promoter.aws.gate_store import DynamoDbGates
    from promoter.aws.history import DynamoDbHistory
    from promoter.aws.registry import EcrRegistry, make_ecr_client
    from promoter.workflows.service import sweep_gate_check

    config = config_or_exit(args.config)
    if isinstance(config, int):
        return config
    if args.images < 1:
        print("promoter: --images must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    rules = [r for r in config.rules if _selected(r, args.rule, args.repository)]
    if args.rule and not rules:
        print(f"promoter: no rule {args.rule!r} in {args.config}", file=sys.stderr)
        return EXIT_BAD_INPUT
    registry = EcrRegistry(make_ecr_client())
    history = DynamoDbHistory()
    errors: list[str] = []
    try:
        waiting = DynamoDbGates().all_waiting()
    except PromoterError as exc:
        waiting = []
        errors.append(str(exc))
    gate = sweep_gate_check(config, registry)
    attested = attestation_check(registry) if settings.attestation_key_arn() else None
    document = {
        "rules": [
            _rule_status_or_error(
                rule, config, registry, history, waiting, args.repository, args.images, gate, attested
            )
            for rule in rules
        ],
        "errors": errors,
    }
    if args.json:
        print_json(document)
    else:
        print_status(document)
    unreadable = errors or any(r["errors"] for r in document["rules"])
    return EXIT_NOT_ALL_PROMOTED if unreadable else EXIT_OK


def _selected(rule: Rule, name: str | None, repository: str | None) -> bool:
    if name is not None and rule.name != name:
        return False
    if repository is None:
        return True
    return rule.source.repository_pattern.matches(repository) or any(
        t.repository == repository for t in rule.targets
    )


def _rule_status_or_error(
    rule: Rule,
    config: PromotionConfig,
    registry: SourceRegistry,
    history: HistoryReader,
    waiting: Sequence[Waiting],
    repository: str | None,
    shown_images: int,
    gate: GateCheck | None,
    attested: AttestationCheck | None = None,
) -> dict[str, Any]:
    """`rule_status`, or the rule's heading with the error that stopped it: one rule that cannot
    be shown never takes the other rules' rows with it."""
    try:
        return rule_status(rule, config, registry, history, waiting, repository, shown_images, gate, attested)
    except PromoterError as exc:
        empty: dict[str, Any] = {"images": [], "targets": [], "states": {}, "waiting": []}
        return {**_rule_heading(rule), **empty, "errors": [str(exc)]}


def _rule_heading(rule: Rule) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "trigger": rule.trigger,
        "source": {"repository": rule.source.repository, "tags": list(rule.source.tags)},
        "targets_spec": [_target_text(t) for t in rule.targets],
        "gates": _gates_text(rule),
    }


def rule_status(
    rule: Rule,
    config: PromotionConfig,
    registry: SourceRegistry,
    history: HistoryReader,
    waiting: Sequence[Waiting],
    repository: str | None,
    shown_images: int,
    gate: GateCheck | None = None,
    attested: AttestationCheck | None = None,
) -> dict[str, Any]:
    """One rule's chain: the newest source images, what each target tag holds against what the
    rule says it should hold, and the promotions waiting on this rule's gate. A target that is
    missing or behind names what it would get only when `gate` (the rule's gates, as the sweep
    decides them: `workflows.service.sweep_gate_check`) lets that image through; else the gate's
    outcome and reason (`gate`). With `attested`, a target that holds what it should says whether
    its attestation is there (`attestation`: its digest, or None: missing)."""
    from promoter.exceptions import RegistryError
    from promoter.workflows.out_of_band import repair_note
    from promoter.workflows.reconcile import (
        BEHIND,
        DEFAULT_PAGE_SIZE,
        IN_SYNC,
        MISSING,
        current_digests,
        desired_targets,
        source_repositories,
        target_state,
    )
    from promoter.workflows.rollback import rollback_hold

    errors: list[str] = []
    sources: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()  # every target tag, listed or not
    try:
        repositories = source_repositories(rule, registry)
    except RegistryError as exc:
        repositories = []
        errors.append(f"listing the source {rule.source.repository}: {exc}")
    if repository is not None and rule.source.repository_pattern.matches(repository):
        repositories = [r for r in repositories if r == repository]
    # The waits of this rule's sources (of `repository` when it is one): the gates table may hold
    # waits of a rule by this name for repositories its source no longer takes (or another
    # configuration's), which this rule would never promote.
    waits = [
        w
        for w in waiting
        if w.rule == rule.name
        and rule.source.repository_pattern.matches(w.repository)
        and (
            repository is None
            or w.repository == repository
            or not rule.source.repository_pattern.matches(repository)
        )
    ]
    hold_back = rollback_hold(history)
    written_outside = repair_note(history)
    for source_repository in repositories:
        try:
            images = _all_tagged_images(registry, source_repository, DEFAULT_PAGE_SIZE)
        except RegistryError as exc:
            errors.append(f"listing {source_repository}: {exc}")
            continue
        taken = [i for i in images if rule.source.matches(source_repository, i.tag)]
        newest = sorted({i.digest: i.pushed_at for i in taken}.items(), key=lambda d: d[1], reverse=True)
        shown = {digest for digest, _ in newest[:shown_images]}
        for digest, pushed_at in newest[:shown_images]:
            sources.append(
                {
                    "repository": source_repository,
                    "digest": digest,
                    "tags": sorted(i.tag for i in taken if i.digest == digest),
                    "pushed_at": _iso(pushed_at),
                }
            )
        desired = desired_targets(rule, config, source_repository, images)
        try:
            held = current_digests([d.action for d in desired.targets.values()], registry)
        except RegistryError as exc:
            errors.append(f"reading the targets of {source_repository}: {exc}")
            continue
        for key, target in desired.targets.items():
            action, holds = target.action, held.get(key)
            state = target_state(target, holds, registry, source_repository)
            offered = state in (MISSING, BEHIND) and isinstance(holds, str | None)
            if offered:
                # A rolled-back tag is held whatever the trigger: a request would move it, but
                # nothing will on its own (reconciliation leaves it, and so does no request yet).
                if hold_back(action, holds if isinstance(holds, str) else None):
                    state = HELD_STATE
                elif isinstance(holds, str) and written_outside(action, holds):
                    state = FOREIGN_STATE
                elif rule.trigger != TRIGGER_PUSH:
                    state = NOT_REQUESTED
            counts[state] += 1
            if target.image.digest not in shown and state in (IN_SYNC, NOT_REQUESTED):
                continue  # an older image in its place: counted, not listed
            # What it would get passes the rule's gates as the sweep decides them (reads only).
            stopped = gate(action)[0] if offered and gate is not None else None
            if isinstance(holds, RegistryError):
                errors.append(f"reading {action.target_repository}:{action.target_tag}: {holds}")
            attestation: dict[str, Any] = {}
            checked = state == IN_SYNC or rule.trigger != TRIGGER_PUSH
            if attested is not None and checked and isinstance(holds, str):
                try:
                    attestation = _attestation_status(rule, desired, key, holds, attested, history)
                except RegistryError as exc:
                    errors.append(f"attestation of {action.target_repository}:{action.target_tag}: {exc}")
            targets.append(
                {
                    "repository": action.target_repository,
                    "account": action.target_account,
                    "region": action.target_region,
                    "tag": action.target_tag,
                    "protected": config.protects(
                        action.target_repository, action.target_account, action.target_region
                    ),
                    "should_hold": action.source.digest,
                    "holds": holds if isinstance(holds, str) else None,
                    "state": state,
                    "source_tag": action.source.tag,
                    "last_change": _last_change(history, action),
                    # The gate that would stop `should_hold` now (None: it would get it).
                    "gate": {"outcome": stopped.outcome, "reason": stopped.reason} if stopped else None,
                    # Checked (issue 19): the attestation's digest, or None when it is missing;
                    # `attestation_note`: why reconciliation will not attach a missing one.
                    **attestation,
                }
            )
    return {
        **_rule_heading(rule),
        "images": sources,
        "targets": targets,
        "states": dict(counts),
        "waiting": [_wait_status(rule, w) for w in waits],
        "errors": errors,
    }


def _attestation_status(
    rule: Rule,
    desired: DesiredTargets,
    key: TargetKey,
    holds: str,
    attested: AttestationCheck,
    history: HistoryReader,
) -> dict[str, Any]:
    """Our attestation of the digest the target tag holds, for this rule and target: its digest or
    None, and when None why reconciliation will not attach it (`attestation_note`): the same test
    the sweep applies (`promoted_from_source`; an approval gate answers pending to a sweep)."""
    from promoter.workflows.reconcile import promoted_from_source

    fed = promoted_from_source(desired, key, holds)
    action = desired.targets[key].action
    if fed is None:  # not from the rule's source: checked as what it holds, never repaired
        found = attested(replace(action, source=replace(action.source, digest=holds)))
        note = "the rule's source holds it under no tag the rule takes: reconcile does not attach it"
    else:
        found = attested(fed.action)
        note = _approval_note(rule, fed.action, history) if rule.approval_gate is not None else None
    return {"attestation": found, **({"attestation_note": note} if found is None and note else {})}


def _approval_note(rule: Rule, action: Action, history: HistoryReader) -> str:
    """Why an approval rule's missing attestation stays missing, and what attaches it: a sweep
    cannot approve (the gate answers pending and holds nothing); a new request that people approve
    does, once the idempotency record of the promotion expired (until then it answers from the
    record, after asking people). A break-glass promote attests as rule `manual`, not this rule."""
    if rule.trigger != TRIGGER_PUSH:
        when = _record_expiry(history, action)
        return (
            f"approval rule: request it again after {when} and approve it; "
            "a break-glass promote attests as rule manual"
        )
    return "approval rule: reconcile cannot approve it"


def _record_expiry(history: HistoryReader, action: Action) -> str:
    """When the idempotency record of the promotion that put the digest there expires: the newest
    recorded run of this rule writing it (promoted or already there) plus the records' lifetime."""
    from botocore.exceptions import BotoCoreError, ClientError

    from promoter.model.outcomes import ALREADY_PRESENT, PROMOTED, ActionResult

    days = settings.IDEMPOTENCY_TTL_SECONDS // 86400
    location = ActionResult.for_action(action, "").target_location
    try:
        records = history.for_target(location, action.target_tag)
    except (ClientError, BotoCoreError):
        records = []
    runs = [
        str(r.get("at", ""))
        for r in records
        if r.get("rule") == action.rule
        and r.get("outcome") in (PROMOTED, ALREADY_PRESENT)
        and str(r.get("source", "")).endswith(f"@{action.source.digest}")
    ]
    if not runs or not max(runs):
        return f"its record expires ({days} days after its promotion)"
    at = datetime.strptime(max(runs)[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return _iso(at.timestamp() + settings.IDEMPOTENCY_TTL_SECONDS)


def attestation_check(registry: Any) -> AttestationCheck:
    """Whether an in-sync target holds our attestation for its rule (its digest, None: missing),
    read in the target's own registry."""
    from promoter.aws.remote import target_registry_of
    from promoter.workflows.attest import our_attestations

    def attested(action: Action) -> str | None:
        found = our_attestations(target_registry_of(action, registry), action, action.source.digest)
        return found[0] if found else None

    return attested


def _wait_status(rule: Rule, wait: Waiting) -> dict[str, Any]:
    """One wait of the rule: the image, its gate, its deadline; an approval wait also how many of
    the rule's approvers approved so far (`tally`: distinct people who count) out of its `min`."""
    from promoter.model.approvals import tally
    from promoter.model.verdicts import APPROVAL_GATE

    shown: dict[str, Any] = {
        "repository": wait.repository,
        "digest": wait.digest,
        "gate": wait.gate,
        "wait_id": wait.wait_id,
        "until": _iso(wait.deadline),
    }
    if wait.gate == APPROVAL_GATE and rule.approval_gate is not None:
        shown["approvals"] = len(tally(rule.approval_gate, wait))
        shown["min"] = rule.approval_gate.min
    return shown


def _all_tagged_images(registry: SourceRegistry, repository: str, page_size: int) -> list[ListedImage]:
    """Every tagged image of the repository (DescribeImages, all pages)."""
    images: list[ListedImage] = []
    token: str | None = None
    while True:
        page = registry.list_tagged_images(repository, page_size, token)
        images.extend(page.images)
        token = page.next_token
        if token is None:
            return images


def _last_change(history: HistoryReader, action: Action) -> dict[str, str] | None:
    """The newest history record of the target tag (its key as the history writes it)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from promoter.model.outcomes import ActionResult

    location = ActionResult.for_action(action, "").target_location
    try:
        records = history.for_target(location, action.target_tag)
    except (ClientError, BotoCoreError):
        return None
    if not records:
        return None
    last = max(records, key=lambda r: str(r.get("sk", "")))
    return {
        "at": str(last.get("at") or str(last.get("sk", "")).split("#", 1)[0]),
        "outcome": str(last.get("outcome", "")),
        "trigger": str(last.get("trigger", "")),
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if epoch else ""


def _target_text(target: TargetSpec) -> str:
    registry = target.registry
    where = qualified(target.repository, registry.account, registry.region) if registry else target.repository
    return f"{where}:{','.join(target.tags)}" + (PROTECTED_MARK if target.protect else "")


def _gates_text(rule: Rule, people: bool = True) -> list[str]:
    """The rule's gates in words; `people=False` leaves the approval gate out (the graph draws it)."""
    gates = []
    if rule.scan_gate is not None:
        gates.append(f"scan up to {rule.scan_gate.max_severity}")
    if rule.signature_gate is not None:
        gates.append("signature")
    if people and rule.approval_gate is not None:
        gates.append(_approval_text(rule.approval_gate))
    return gates


def _approval_text(gate: ApprovalGate) -> str:
    """`approval: 2 of user/alice, user/bob within 1d`: the quorum, the approver entries (their
    resource part: the account is the rule's reader's to know) and the expiry."""
    from promoter.model.approvals import format_duration

    names = ", ".join(entry.split(":", 5)[-1] for entry in gate.approvers)
    return f"approval: {gate.min} of {names} within {format_duration(gate.expires_after)}"


def print_status(document: dict[str, Any]) -> None:
    """Per rule: a heading with the chain, one row per source image and per target tag group."""
    for index, rule in enumerate(document["rules"]):
        if index:
            print()
        gates = f", gates: {'; '.join(rule['gates'])}" if rule["gates"] else ""
        source = f"{rule['source']['repository']}:{','.join(rule['source']['tags'])}"
        print(f"{rule['rule']} ({rule['trigger']}{gates}): {source} -> {' + '.join(rule['targets_spec'])}")
        rows = [
            [
                image["repository"],
                ",".join(image["tags"]),
                short_digest(image["digest"]),
                SOURCE_STATE,
                f"pushed {image['pushed_at']}",
            ]
            for image in rule["images"]
        ]
        rows += _target_rows(rule["targets"])
        if rows:
            print_table(STATUS_COLUMNS, rows, indent="  ")
        else:
            print("  no source image yet")
        for wait in rule["waiting"]:
            image = f"{wait['repository']}@{short_digest(wait['digest'])}"
            if "min" in wait:  # an approval wait: people decide it (`promoter approve <wait id>`)
                said = f"awaiting approval {wait['approvals']}/{wait['min']} until {wait['until']}"
                print(printable(f"  {said}: {image} (wait {wait['wait_id']})"))
            else:
                print(printable(f"  waiting on the {wait['gate']} gate: {image} until {wait['until']}"))
        if rule["states"]:
            print("  " + ", ".join(f"{n} {state}" for state, n in sorted(rule["states"].items())))
        for error in rule["errors"]:
            print(f"  error: {printable(error)}")
    for error in document["errors"]:
        print(f"error: {printable(error)}")


def _target_rows(targets: list[dict[str, Any]]) -> list[list[str]]:
    """Target tags of one repository holding one digest in one state share a row. A missing
    attestation says why reconciliation will not attach it, when it will not (`attestation_note`)."""
    from promoter.model.outcomes import GATE_PENDING
    from promoter.workflows.reconcile import IN_SYNC

    grouped: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for target in targets:
        stage = qualified(target["repository"], target["account"], target["region"])
        stage += PROTECTED_MARK if target.get("protected") else ""
        missing = ""
        if "attestation" in target and target["attestation"] is None:
            missing = ", attestation missing"  # issue 19: reconciliation attaches it, unless noted
            if target.get("attestation_note"):
                missing += f" ({target['attestation_note']})"
        grouped.setdefault((stage, target["holds"] or "", target["state"], missing), []).append(target)
    rows = []
    for (stage, holds, state, missing), group in grouped.items():
        shown_state = state
        should_hold, gate = group[0]["should_hold"], group[0].get("gate")
        if state != IN_SYNC and should_hold != holds:
            if gate and gate["outcome"] == GATE_PENDING:  # a scan still to come decides it
                shown_state = f"{state}: would get {short_digest(should_hold)} once its gate passes"
            elif gate:  # never offered: its gate refuses it (the reason is in --json)
                shown_state = f"{state}: {short_digest(should_hold)} stopped by a gate ({gate['outcome']})"
            else:
                shown_state = f"{state}: would get {short_digest(should_hold)}"
        shown_state += missing
        last = group[0]["last_change"]
        rows.append(
            [
                stage,
                ",".join(t["tag"] for t in group),
                short_digest(holds) or "-",
                shown_state,
                f"{last['at'][:19]}Z {last['outcome']} ({last['trigger']})" if last else "",
            ]
        )
    return rows


def cmd_graph(args: argparse.Namespace) -> int:
    config = config_or_exit(args.config)
    if isinstance(config, int):
        return config
    print(mermaid_graph(config))
    return EXIT_OK


def mermaid_graph(config: PromotionConfig) -> str:
    """The rules as a left-to-right Mermaid flowchart: a node per repository (pattern or template,
    with its registry when another account or region), an edge per rule target labelled with the
    rule, its trigger, tags and gates; request rules dashed. A rule with an approval gate passes
    through a hexagon that names its quorum, approvers and expiry."""
    nodes: dict[str, str] = {}

    def node(label: str) -> str:
        if label not in nodes:
            nodes[label] = f"n{len(nodes)}_{re.sub(r'[^A-Za-z0-9]', '_', label)[:40]}"
        return nodes[label]

    edges = []
    approvals: dict[str, str] = {}  # a hexagon per rule with an approval gate: its id -> its text
    for rule in config.rules:
        source = node(rule.source.repository)
        for target in rule.targets:
            registry = target.registry
            where = (
                qualified(target.repository, registry.account, registry.region)
                if registry
                else target.repository
            ) + (PROTECTED_MARK if target.protect else "")
            details = [
                rule.trigger,
                f"{','.join(rule.source.tags)} → {','.join(target.tags)}",
                *_gates_text(rule, people=False),
            ]
            label = _mermaid_text(f"{rule.name}<br/>{'<br/>'.join(details)}")
            arrow = "-->" if rule.trigger == TRIGGER_PUSH else "-.->"
            if rule.approval_gate is None:
                edges.append(f'  {source} {arrow}|"{label}"| {node(where)}')
                continue
            # An approval gate is a step of its own, after the machine checks (GATE_ORDER): a
            # hexagon between the source and the rule's targets, where the image stops until
            # people decide. The rule's edge leads to it; from it, one edge per target.
            gate = f"{source}_{re.sub(r'[^A-Za-z0-9]', '_', rule.name)[:40]}_approval"
            if gate not in approvals:
                approvals[gate] = _approval_text(rule.approval_gate)
                checks = [rule.trigger, *_gates_text(rule, people=False)]
                rule_label = _mermaid_text(f"{rule.name}<br/>{'<br/>'.join(checks)}")
                edges.append(f'  {source} {arrow}|"{rule_label}"| {gate}')
            tags = _mermaid_text(f"{','.join(rule.source.tags)} → {','.join(target.tags)}")
            edges.append(f'  {gate} {arrow}|"{tags}"| {node(where)}')
    lines = ["flowchart LR"]
    lines += [f'  {ident}["{_mermaid_text(label)}"]' for label, ident in nodes.items()]
    lines += [f'  {ident}{{{{"{_mermaid_text(text)}"}}}}' for ident, text in approvals.items()]
    return "\n".join([*lines, *edges])


def _mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label (quotes and braces as entities, <br/> kept)."""
    return text.replace('"', "#quot;").replace("{", "#123;").replace("}", "#125;").replace("|", "#124;")
