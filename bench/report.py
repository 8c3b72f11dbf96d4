"""The arithmetic of the bench and how its table looks: medians, ratios, goals, one row per figure.

Kept apart from the measuring code so it can be unit-tested without a local AWS.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

MIB = 1024 * 1024


def median(values: Sequence[float]) -> float:
    """The median of repeated measurements (others share the 2 cores: one run proves little)."""
    if not values:
        raise ValueError("median of no measurements")
    return float(statistics.median(values))


def ratio(ours: float, reference: float) -> float | None:
    """ours / reference; None when the reference is zero (a count that must stay at zero)."""
    if reference == 0:
        return None
    return ours / reference


@dataclass(frozen=True)
class Goal:
    """A pass mark. `on="ratio"` compares ours/reference with `limit`; `on="ours"` compares our
    value itself (a peak in bytes, a failure count)."""

    limit: float
    on: str = "ratio"
    strict: bool = False  # "<" instead of "<="

    def met(self, ours: float, reference: float) -> bool:
        value = ratio(ours, reference) if self.on == "ratio" else ours
        if value is None:  # a zero reference: only zero is as good
            value = 0.0 if ours == 0 else float("inf")
        return value < self.limit if self.strict else value <= self.limit

    def describe(self, unit: str) -> str:
        sign = "<" if self.strict else "<="
        if self.on == "ratio":
            return f"ratio {sign} {self.limit:g}"
        return f"{sign} {format_value(self.limit, unit)}"


@dataclass(frozen=True)
class Row:
    """One figure's line: our value and the reference measured (or derived) in the same run."""

    figure: str
    case: str
    ours: float
    reference: float
    unit: str  # "calls", "s", "bytes", "count"
    reference_name: str
    goal: Goal | None = None
    notes: tuple[str, ...] = ()
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return ratio(self.ours, self.reference)

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.ours, self.reference)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(ratio=self.ratio, met=self.met)
        return out


def format_value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "bytes":
        return f"{value / MIB:.1f} MiB"
    return f"{value:g}"


def format_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render(rows: Iterable[Row]) -> str:
    """A plain-text table (one line per row, notes indented below it)."""
    rows = list(rows)
    header = ("figure", "case", "ours", "reference", "ratio", "goal", "met")
    lines: list[tuple[str, ...]] = []
    for row in rows:
        met = {None: "-", True: "yes", False: "NO"}[row.met]
        lines.append(
            (
                row.figure,
                row.case,
                format_value(row.ours, row.unit),
                f"{format_value(row.reference, row.unit)} ({row.reference_name})",
                format_ratio(row.ratio),
                row.goal.describe(row.unit) if row.goal else "-",
                met,
            )
        )
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    for row, line in zip(rows, lines, strict=True):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        out.extend(f"      {note}" for note in row.notes)
    return "\n".join(out)


def to_json(rows: Iterable[Row], meta: dict[str, Any]) -> str:
    return json.dumps({"meta": meta, "rows": [r.to_dict() for r in rows]}, indent=2, default=str)
