"""`promoter validate | plan | handle`: the engine from the command line, on the Lambda's code path.

`plan` only reads (BatchGetImage, and DescribeRepositories and DescribeRepositoryCreationTemplates
for its warnings; never a write: the tests count the calls); `handle` promotes,
through the same idempotency table as the Lambda. Exit codes: 0 every action promoted or already
present (or nothing to do), 1 otherwise, 2 unreadable input or configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from promoter import settings
from promoter.exceptions import ConfigError, EventError, PromoterError
from promoter.model.config import PromotionConfig, Rule, TargetRegistry, load_config
from promoter.model.events import Event, parse_json_event
from promoter_cli.output import add_json_flag, print_event_result, print_json

# The CLI's exit codes, shared by every command (README, "The command line").
EXIT_OK = 0
EXIT_NOT_ALL_PROMOTED = 1
EXIT_BAD_INPUT = 2
# Ctrl-C (SIGINT), as shells report it: 128 + the signal's number.
EXIT_INTERRUPTED = 130


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `validate`, `plan` and `handle`."""
    validate = sub.add_parser("validate", help="check the promotion configuration")
    _add_config(validate)
    validate.set_defaults(func=cmd_validate)

    plan = sub.add_parser("plan", help="show what an event would promote (reads only, writes nothing)")
    plan.add_argument("event_file", metavar="EVENT_FILE", help="an EventBridge event as JSON ('-' = stdin)")
    _add_config(plan)
    add_json_flag(plan)
    plan.set_defaults(func=cmd_plan)

    handle = sub.add_parser("handle", help="promote what an event asks for, as the Lambda does")
    handle.add_argument("event_file", metavar="EVENT_FILE", help="an EventBridge event as JSON ('-' = stdin)")
    _add_config(handle)
    add_json_flag(handle)
    handle.set_defaults(func=cmd_handle)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=settings.DEFAULT_CONFIG_FILE,
        metavar="PATH",
        help=f"promotion rules, YAML or JSON (default: ./{settings.DEFAULT_CONFIG_FILE})",
    )


def cmd_validate(args: argparse.Namespace) -> int:
    """Checks the configuration; on success lists each rule and every target with its registry."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return bad_input(f"invalid configuration: {exc}")
    print(f"{args.config}: {len(config.rules)} rule(s) valid")
    for rule in config.rules:
        source = f"{rule.source.repository}:{'|'.join(rule.source.tags)}"
        print(f"  {rule.name} [{rule.trigger}] {source}")
        if rule.requesters:
            print(f"    requested by: {', '.join(rule.requesters)}")
        for gate in _gate_lines(rule):
            print(f"    gate: {gate}")
        for target in rule.targets:
            where = _registry_text(target.registry) + (", protected" if target.protect else "")
            print(f"    -> {target.repository}:{'|'.join(target.tags)} ({where})")
    from promoter_cli.mutability import check_with_credentials, warning_lines

    for line in warning_lines(check_with_credentials(config)):  # floating tags the repository pins
        print(f"  {line}")
    return EXIT_OK


def _gate_lines(rule: Rule) -> list[str]:
    """Each gate of the rule with its settings, as `validate` lists them (PEM keys and certificates
    counted, not printed; an approval gate's approvers in full, `notify nobody` without a topic)."""
    lines = []
    if rule.scan_gate is not None:
        scan = rule.scan_gate
        lines.append(f"scan: max_severity {scan.max_severity}, timeout_minutes {scan.timeout_minutes}")
    signature = rule.signature_gate
    if signature is not None:
        verifiers = []
        if signature.cosign_keys:
            kms = list(signature.kms_key_arns)
            pem = len(signature.cosign_keys) - len(kms)
            keys = [*(f"awskms:///{arn}" for arn in kms), *([f"{pem} PEM key(s)"] if pem else [])]
            verifiers.append(f"cosign keys {', '.join(keys)}")
        verifiers += [f"sigstore {i.issuer} {i.subject}" for i in signature.sigstore_identities]
        if signature.notation:
            profiles = ", ".join(signature.notation_signing_profiles) or "any signing profile"
            roots = len(signature.notation_trust_roots)
            verifiers.append(
                f"notation {profiles}, " + (f"{roots} trust root(s)" if roots else "AWS Signer's roots")
            )
        lines.append(f"signature: {'; or '.join(verifiers)}")
    approval = rule.approval_gate
    if approval is not None:
        from promoter.model.approvals import format_duration

        lines.append(
            f"approval: min {approval.min} of {', '.join(approval.approvers)}; requester "
            f"{'may' if approval.requester_may_approve else 'may not'} approve; expires_after "
            f"{format_duration(approval.expires_after)}; notify {approval.notify or 'nobody'}"
        )
    return lines


def _registry_text(registry: TargetRegistry | None) -> str:
    """Where a target lives, as an operator reads it: account, region, and the role assumed."""
    if registry is None:
        return "this account, this region"
    parts = [
        f"account {registry.account}" if registry.account else "this account",
        f"region {registry.region}" if registry.region else "this region",
    ]
    if registry.role:
        parts.append(f"as {registry.role}")
    return ", ".join(parts)


def cmd_plan(args: argparse.Namespace) -> int:
    from promoter.aws.registry import EcrRegistry, make_ecr_client
    from promoter.workflows.service import preview_event

    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    config, event = loaded
    result = preview_event(event, config, EcrRegistry(make_ecr_client()))
    document = result.to_dict()
    for action in document["results"]:  # which targets only the promoter may write (`protect: true`)
        action["protected"] = config.protects(
            action["target_repository"], action["target_account"], action["target_region"]
        )
    from promoter_cli.mutability import check_with_credentials, warning_lines

    check = check_with_credentials(config)  # floating tags the target repositories would pin
    document["warnings"], document["notes"] = list(check.warnings), list(check.notes)
    _print(document, args.json)
    if not args.json:
        for line in warning_lines(check):
            print(f"promoter: {line}", file=sys.stderr)
    return EXIT_OK if result.error is None else EXIT_NOT_ALL_PROMOTED


def cmd_handle(args: argparse.Namespace) -> int:
    from promoter.aws.gate_store import DynamoDbGates
    from promoter.aws.history import DynamoDbHistory
    from promoter.aws.idempotency import idempotent_runner, make_persistence
    from promoter.aws.ledger import IdempotencyLedger
    from promoter.aws.registry import EcrRegistry, make_ecr_client
    from promoter.aws.results import EventBridgeResults
    from promoter.workflows.attest import attestor_from_environment
    from promoter.workflows.out_of_band import push_check
    from promoter.workflows.promote import Promoter
    from promoter.workflows.service import handle_delivered

    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    config, event = loaded
    registry = EcrRegistry(make_ecr_client())
    try:
        persistence = make_persistence()
        # Attested as the Lambda attests, with the key ATTESTATION_KEY_ARN (or --stack) names.
        promoter = Promoter(registry, attestor=attestor_from_environment(config))
        run = idempotent_runner(promoter, persistence)
        history = DynamoDbHistory()
        # The same history, result events, scan-gate waits, out-of-band check and carrying of late
        # trust material as the Lambda.
        result = handle_delivered(
            event,
            config,
            registry,
            promoter,
            run,
            history,
            EventBridgeResults(),
            DynamoDbGates(),
            out_of_band=push_check(config, IdempotencyLedger(persistence), history),
        )
    except PromoterError as exc:
        print(f"promoter: {exc}", file=sys.stderr)
        return EXIT_NOT_ALL_PROMOTED
    _print(result.to_dict(), args.json)
    return EXIT_OK if result.succeeded else EXIT_NOT_ALL_PROMOTED


def _load(args: argparse.Namespace) -> tuple[PromotionConfig, Event] | int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return bad_input(f"invalid configuration: {exc}")
    try:
        text = (
            sys.stdin.read() if args.event_file == "-" else Path(args.event_file).read_text(encoding="utf-8")
        )
    except (OSError, UnicodeDecodeError) as exc:
        return bad_input(f"cannot read event file {args.event_file}: {exc}")
    try:
        event = parse_json_event(text)
    except EventError as exc:
        return bad_input(f"bad event in {args.event_file}: {exc}")
    return config, event


def config_or_exit(path: str | Path) -> PromotionConfig | int:
    """The configuration at `path`, or EXIT_BAD_INPUT after saying why it cannot be used."""
    try:
        return load_config(path)
    except ConfigError as exc:
        return bad_input(f"invalid configuration {path}: {exc}")


def bad_input(message: str) -> int:
    """Says what is wrong with the input on stderr; returns EXIT_BAD_INPUT for the command to exit with."""
    print(f"promoter: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _print(result: dict[str, Any], as_json: bool) -> None:
    """The event's result: the action table, or with `--json` the whole document (`actions`)."""
    result["actions"] = result.pop("results")
    if as_json:
        print_json(result)
    else:
        print_event_result(result)
