"""Faults on demand for the local AWS: per-operation rates, injected failures, call counts.

Tests use these to prove retry and back-off paths and to count ECR calls per promotion. ECR
operations are named as ECR names them (`PutImage`); the moto services behind the same port as
`<Service>.<Operation>` (`DynamoDB.PutItem`, `SQS.ReceiveMessage`), for failures only: their calls
are not counted, so `calls()` stays the ECR bill. A failure may be limited to requests whose
parameters match (`match={"imageTag": "v1"}`), and may last for a time window (`fail_for`).
In-process hooks (`before`) run an action just before a matching call, e.g. deleting the source
image between a promotion's planning and its copying.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local_aws.errors import EcrError, ThrottlingException, error_class


@dataclass
class _Bucket:
    rate: float
    tokens: float
    stamp: float


@dataclass(frozen=True)
class InjectedFailure:
    exception: str
    message: str
    match: Mapping[str, Any] = field(default_factory=dict)
    until: float | None = None  # a window (clock time) instead of a single call

    def applies(self, params: Mapping[str, Any] | None) -> bool:
        return all((params or {}).get(k) == v for k, v in self.match.items())


@dataclass(frozen=True)
class _Hook:
    match: Mapping[str, Any]
    action: Callable[[], None]


class Faults:
    """Thread-safe: token bucket per op (burst = one second's worth), fail-next queues, counts."""

    def __init__(self, rates: dict[str, float] | None = None, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._failures: dict[str, list[InjectedFailure]] = {}
        self._calls: Counter[str] = Counter()
        self._repository_calls: Counter[tuple[str, str]] = Counter()
        self._windows: dict[str, list[InjectedFailure]] = {}
        self._hooks: dict[str, list[_Hook]] = {}
        for op, rate in (rates or {}).items():
            self.set_rate(op, rate)

    def set_rate(self, op: str, rate: float | None) -> None:
        """Limit `op` to `rate` calls a second; None or <= 0 removes the limit."""
        with self._lock:
            if rate is None or rate <= 0:
                self._buckets.pop(op, None)
            else:
                self._buckets[op] = _Bucket(rate=float(rate), tokens=float(rate), stamp=self._clock())

    def rates(self) -> dict[str, float]:
        with self._lock:
            return {op: b.rate for op, b in self._buckets.items()}

    def fail_next(
        self,
        op: str,
        exception: str,
        count: int = 1,
        message: str = "",
        match: Mapping[str, Any] | None = None,
    ) -> None:
        """The next `count` calls of `op` (whose parameters match `match`) fail with `exception`."""
        failure = InjectedFailure(exception, message or f"{exception} (injected)", dict(match or {}))
        with self._lock:
            self._failures.setdefault(op, []).extend([failure] * count)

    def fail_for(
        self,
        op: str,
        exception: str,
        seconds: float,
        message: str = "",
        match: Mapping[str, Any] | None = None,
    ) -> None:
        """Every call of `op` fails with `exception` for the next `seconds` (a service outage)."""
        until = self._clock() + seconds
        failure = InjectedFailure(exception, message or f"{exception} (injected)", dict(match or {}), until)
        with self._lock:
            self._windows.setdefault(op, []).append(failure)

    def before(
        self, op: str, action: Callable[[], None], match: Mapping[str, Any] | None = None, count: int = 1
    ) -> None:
        """In-process only: run `action` just before the next `count` matching calls of `op`."""
        with self._lock:
            self._hooks.setdefault(op, []).extend([_Hook(dict(match or {}), action)] * count)

    def clear(self) -> None:
        """Drop injected failures, windows, hooks and rate limits (counts stay)."""
        with self._lock:
            self._failures.clear()
            self._windows.clear()
            self._hooks.clear()
            self._buckets.clear()

    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls)

    def calls_by_repository(self) -> dict[str, dict[str, int]]:
        """ECR calls per operation and repository (`repositoryName`), e.g. PutImage per target."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (op, repository), n in self._repository_calls.items():
                out.setdefault(op, {})[repository] = n
            return out

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()
            self._repository_calls.clear()

    def injected(self, op: str, params: Mapping[str, Any] | None = None) -> InjectedFailure | None:
        """The failure due for this call of `op`, if any (consumes a fail-next entry); runs the
        hooks due first. Not counted: used as is for the moto services."""
        hooks: list[_Hook] = []
        try:
            with self._lock:
                for hook in list(self._hooks.get(op, ())):
                    if hook.match and not _matches(hook.match, params):
                        continue
                    self._hooks[op].remove(hook)
                    hooks.append(hook)
                    break
                return self._due(op, params)
        finally:
            for hook in hooks:  # outside the lock: the action may call the local AWS itself
                hook.action()

    def _due(self, op: str, params: Mapping[str, Any] | None) -> InjectedFailure | None:
        queue = self._failures.get(op)
        for failure in list(queue or ()):
            if failure.applies(params):
                queue.remove(failure)  # type: ignore[union-attr]
                return failure
        now = self._clock()
        windows = self._windows.get(op)
        if windows:
            windows[:] = [w for w in windows if w.until is None or w.until > now]
            for failure in windows:
                if failure.applies(params):
                    return failure
        return None

    def admit(self, op: str, params: Mapping[str, Any] | None = None) -> None:
        """Count the call, then raise an injected failure or ThrottlingException if due."""
        repository = (params or {}).get("repositoryName")
        with self._lock:
            self._calls[op] += 1
            if isinstance(repository, str):
                self._repository_calls[(op, repository)] += 1
        failure = self.injected(op, params)
        if failure is not None:
            raise error_class(failure.exception)(failure.message)
        with self._lock:
            bucket = self._buckets.get(op)
            if bucket is None:
                return
            now = self._clock()
            bucket.tokens = min(bucket.rate, bucket.tokens + (now - bucket.stamp) * bucket.rate)
            bucket.stamp = now
            if bucket.tokens < 1:
                raise ThrottlingException("Rate exceeded")
            bucket.tokens -= 1


def _matches(match: Mapping[str, Any], params: Mapping[str, Any] | None) -> bool:
    return all((params or {}).get(k) == v for k, v in match.items())


def parse_rate(spec: str) -> tuple[str, float]:
    """`PutImage=10` -> ("PutImage", 10.0); ValueError with a clear message otherwise."""
    op, sep, value = spec.partition("=")
    if not sep or not op.strip():
        raise ValueError(f"rate {spec!r} is not OP=N (e.g. PutImage=10)")
    try:
        rate = float(value)
    except ValueError:
        raise ValueError(f"rate {spec!r}: {value!r} is not a number") from None
    if rate <= 0:
        raise ValueError(f"rate {spec!r} must be > 0")
    return op.strip(), rate


__all__ = ["EcrError", "Faults", "InjectedFailure", "parse_rate"]
