"""How commands print: a compact table for people by default, the full JSON with `--json`.

Every command that runs or previews promotion actions (`plan`, `handle`, `promote`, `reconcile`,
`rollback`) prints one line per action, `OUTCOME TARGET DIGEST REASON`, through `print_actions`;
`--json` prints the whole result document instead (what scripts and tests parse).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

# `sha256:` and the first 12 hex digits: enough to tell images apart, as `docker images` does.
SHORT_DIGEST_CHARS = len("sha256:") + 12
ACTION_COLUMNS = ("outcome", "target", "digest", "reason")
# Outcomes of `plan` after every gate passed; a stopped action's reason is its gate's already.
PASSED_GATE_OUTCOMES = frozenset({"would-promote", "already-present"})
# What a terminal would obey rather than show: C0 and C1 control characters (ESC, CR, BEL, CSI...),
# Unicode's bidirectional marks, overrides and isolates and its line separators (they reorder or
# break what follows), and lone surrogates (not text: a UTF-8 terminal cannot even be sent one).
# Stored free text (a requester's reason or metadata, an event id, a certificate's name) is printed
# with these escaped (`\x1b`, `\u202e`); `--json` is safe as it is (JSON escapes them).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """`--json`: the full result document instead of the table."""
    parser.add_argument("--json", action="store_true", help="the full result as JSON instead of a table")


def print_json(document: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(document, out, indent=2, default=str)
    out.write("\n")


def short_digest(digest: str | None) -> str:
    """`sha256:3f1c2a9e0b7d` for a sha256 digest; anything else as it is ('' for None)."""
    if not digest:
        return ""
    return digest[:SHORT_DIGEST_CHARS] if digest.startswith("sha256:") else digest


def qualified(repository: str, account: str | None = None, region: str | None = None) -> str:
    """A repository, with its registry when that is another account or region (`app@eu-west-1`)."""
    registry = ",".join(part for part in (account, region) if part)
    return f"{repository}@{registry}" if registry else repository


def printable(text: str) -> str:
    """The text with every character a terminal would obey escaped (`\\x1b`, `\\u202e`, `\\ud800`)."""
    return _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[str]], out: TextIO | None = None, indent: str = ""
) -> None:
    """Aligned columns under an upper-case header, each line after `indent`; trailing blanks trimmed.
    Every cell is `printable`."""
    out = out or sys.stdout
    shown = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [max([len(c), *(len(row[i]) for row in shown)]) for i, c in enumerate(columns)]
    lines = [[c.upper() for c in columns], *shown]
    for row in lines:
        out.write(indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")


def action_row(result: Mapping[str, Any]) -> list[str]:
    """One `ActionResult.to_dict()` as a table row: outcome, target, the source digest, the reason."""
    target = qualified(result["target_repository"], result.get("target_account"), result.get("target_region"))
    reason = result.get("reason") or ""
    held = result.get("target_digest")
    if not reason and held and held != result.get("source_digest"):
        reason = f"target holds {short_digest(held)}"
    signature = result.get("signature")
    if signature and not reason:  # passed a signature gate: who vouched for the digest
        reason = f"signed: {signature.get('verifier')} {signature.get('identity')}"
    if result.get("gates") and result["outcome"] in PASSED_GATE_OUTCOMES:  # `plan`: each gate's say
        reason = "; ".join([*([reason] if reason else []), *(f"{g} {s}" for g, s in result["gates"].items())])
    if result.get("replayed"):
        reason = f"{reason} (answered from the idempotency record)".strip()
    digest = short_digest(result["source_digest"])
    protected = " (protected)" if result.get("protected") else ""  # `plan`: a `protect: true` target
    return [result["outcome"], f"{target}:{result['target_tag']}{protected}", digest, reason]


def print_actions(results: Sequence[Mapping[str, Any]], out: TextIO | None = None) -> None:
    """The action table; a single line saying so when there is none."""
    out = out or sys.stdout
    if not results:
        out.write("no actions\n")
        return
    print_table(ACTION_COLUMNS, [action_row(r) for r in results], out)


def print_event_result(document: Mapping[str, Any], out: TextIO | None = None) -> None:
    """`plan`, `handle` and `promote`: why nothing happened (ignored, error), else the actions."""
    out = out or sys.stdout
    if document.get("error"):
        out.write(f"error: {printable(str(document['error']))}\n")
    if document.get("ignored_reason"):
        out.write(f"nothing to do: {printable(str(document['ignored_reason']))}\n")
    if document.get("actions") or not (document.get("error") or document.get("ignored_reason")):
        print_actions(document.get("actions") or (), out)
