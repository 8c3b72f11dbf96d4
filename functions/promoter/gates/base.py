"""Gates: what must hold of an image before a rule promotes it. One interface for every kind.

A gate looks at the source image (for an index, the index digest: what the tag names) and answers
with a `Verdict` (`promoter.model.verdicts`, where every verdict value is imported from). A rule's
gates run in `GATE_ORDER` (signature, scan, approval; then any other registered kind), before any
write:
- a final refusal (blocked, unverified, rejected, expired, failed) decides the action's outcome at
  once, and the gates after it are not asked;
- a gate that answers `pending` holds its own wait (one record per image, rule, gate and request,
  with its own deadline) and the gates after it are still asked, so two waiting gates wait side by
  side and either may be decided first;
- only when every gate passed does the action run.

A waiting gate says which event resumes it (`resumed_by`) and which waits an event of that type
resumes (`waits_resumed_by`): the scan gate's `ImageScanned` resumes the waits on that image, an
approval gate's `ApprovalDecided` the wait it names. Resuming runs the waiting event through the
normal path again (promoter.workflows.gating).

Dependencies are given at construction (`GateDeps`: the source registry, a clock, the gates table,
a KMS client factory), never reached for. A gate raises only retryable `PromoterError`s (the event
is handed back); anything it cannot fix by waiting is a verdict: a missing grant or an unusable key
is `failed`, with a reason naming the gate and what is missing.

Adding a gate: one module in `promoter.gates` defining `make_gate(config, deps) -> Gate`, its
configuration parsed into `Rule.<name>_gate` (model/config.py), and its `GateKind` in `GATE_KINDS`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from promoter.aws.registry import Registry
from promoter.model.config import PromotionConfig, Rule
from promoter.model.events import Event
from promoter.model.verdicts import (
    APPROVAL_GATE,
    SCAN_GATE,
    SIGNATURE_GATE,
    GateStore,
    Verdict,
    Waiting,
)

__all__ = [
    "GATE_KINDS",
    "Gate",
    "GateDeps",
    "GateImage",
    "GateKind",
    "WaitingGate",
    "gate_names",
    "gates_of",
    "waiting_gate_names",
    "waits",
]


@dataclass(frozen=True)
class GateImage:
    """The image a gate decides on: the source repository and the digest being promoted."""

    repository: str
    digest: str

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class GateDeps:
    """What gates may use, given once: the source `registry`; `clock` (epoch seconds, read at call
    time); the gates table `store` (None: nothing is held, as in `promoter plan`); `kms_client`, a
    factory of the KMS client for `awskms:///` keys (None: one client per process, from the
    environment)."""

    registry: Registry
    clock: Callable[[], float] = time.time
    store: GateStore | None = None
    kms_client: Callable[[], Any] | None = None


class Gate(Protocol):
    """One kind of gate, configured for one rule. `timeout_minutes`: how long a `pending` verdict
    may wait (None: this gate never answers `pending`)."""

    name: str
    timeout_minutes: int | None

    def decide(self, image: GateImage, waiting: Waiting | None = None) -> Verdict:
        """The verdict for `image`. `waiting` is this gate's wait record as held (its deadline and
        data) when a promotion runs with a gates table; None when nothing is held (plan, the
        reconciliation sweep). Raises only retryable `PromoterError`s; everything else is a verdict."""
        ...


class WaitingGate(Gate, Protocol):
    """A gate that may answer `pending`: the event type that resumes its waits, and which waits an
    event of that type resumes."""

    resumed_by: type

    def waits_resumed_by(self, event: Event, store: GateStore) -> list[Waiting]: ...


@dataclass(frozen=True)
class GateKind:
    """One kind of gate in the registry: its name, the module that implements it (imported only
    for a rule that has such a gate: `make_gate(config, deps) -> Gate`), whether it may wait (hold
    a wait: the stack then sweeps), and where a rule keeps its configuration (`config_of`;
    default: the rule's `<name>_gate`, None when it has none)."""

    name: str
    module: str
    waits: bool = False
    config_of: Callable[[Rule], Any] | None = None

    def configured(self, rule: Rule) -> Any:
        if self.config_of is not None:
            return self.config_of(rule)
        return getattr(rule, f"{self.name}_gate", None)

    def build(self, config: Any, deps: GateDeps) -> Gate:
        module = importlib.import_module(self.module)
        return module.make_gate(config, deps)  # type: ignore[no-any-return]


# Every kind of gate, in GATE_ORDER; a kind registered later runs after these.
GATE_KINDS: dict[str, GateKind] = {
    SIGNATURE_GATE: GateKind(SIGNATURE_GATE, "promoter.gates.signature"),
    SCAN_GATE: GateKind(SCAN_GATE, "promoter.gates.scan", waits=True),
    APPROVAL_GATE: GateKind(APPROVAL_GATE, "promoter.gates.approval", waits=True),
}


def gate_names(rule: Rule) -> tuple[str, ...]:
    """The names of the rule's gates, in order, without building them (nothing imported)."""
    return tuple(kind.name for kind in GATE_KINDS.values() if kind.configured(rule) is not None)


def waiting_gate_names(config: PromotionConfig) -> tuple[str, ...]:
    """The kinds of waiting gate any rule of the configuration has (the stack sweeps when any)."""
    return tuple(
        kind.name
        for kind in GATE_KINDS.values()
        if kind.waits and any(kind.configured(rule) is not None for rule in config.rules)
    )


def gates_of(rule: Rule, deps: GateDeps) -> tuple[Gate, ...]:
    """The rule's gates, in order (GATE_ORDER, then other registered kinds). A gate's module (the
    signature gate's verifiers and their heavy dependencies) is imported only for a rule that has
    one."""
    gates: list[Gate] = []
    for kind in GATE_KINDS.values():
        config = kind.configured(rule)
        if config is not None:
            gates.append(kind.build(config, deps))
    return tuple(gates)


def waits(gate: Gate) -> bool:
    """The gate may answer `pending` and hold a wait."""
    return gate.timeout_minutes is not None and hasattr(gate, "resumed_by")
