"""Faults on demand for the local ECR: per-operation rates, injected failures, call counts.

Tests use these to prove retry and back-off paths and to count ECR calls per promotion.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

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


class Faults:
    """Thread-safe: token bucket per op (burst = one second's worth), fail-next queues, counts."""

    def __init__(self, rates: dict[str, float] | None = None, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._failures: dict[str, list[InjectedFailure]] = {}
        self._calls: Counter[str] = Counter()
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

    def fail_next(self, op: str, exception: str, count: int = 1, message: str = "") -> None:
        with self._lock:
            queue = self._failures.setdefault(op, [])
            queue.extend([InjectedFailure(exception, message or f"{exception} (injected)")] * count)

    def clear(self) -> None:
        """Drop injected failures and rate limits (counts stay)."""
        with self._lock:
            self._failures.clear()
            self._buckets.clear()

    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def admit(self, op: str) -> None:
        """Count the call, then raise an injected failure or ThrottlingException if due."""
        with self._lock:
            self._calls[op] += 1
            queue = self._failures.get(op)
            if queue:
                failure = queue.pop(0)
                raise error_class(failure.exception)(failure.message)
            bucket = self._buckets.get(op)
            if bucket is None:
                return
            now = self._clock()
            bucket.tokens = min(bucket.rate, bucket.tokens + (now - bucket.stamp) * bucket.rate)
            bucket.stamp = now
            if bucket.tokens < 1:
                raise ThrottlingException("Rate exceeded")
            bucket.tokens -= 1


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
