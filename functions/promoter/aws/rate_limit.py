"""PutImage pacing that adapts to ECR's answers: a shared send rate, AIMD on throttling.

ECR's PutImage quota (10/s per account and region by default, adjustable) is the promoter's
bottleneck in a burst (BENCHMARKS.md, figure 4). Every worker thread of a container shares one
`AdaptiveRate` per registry (account and region): before each PutImage attempt, a retry included,
a worker takes a token from a bucket that refills at the current rate and holds at most
`burst_seconds` of the ceiling (like ECR's own bucket: a few calls in a row pass at once, a
sustained flow is spread at the rate); a worker finding it empty waits its turn. Each answer
adjusts the rate.
An admitted call raises it additively (+`increase_per_second` calls/s for every second's worth
of admitted calls, up to `ceiling`); a ThrottlingException cuts it multiplicatively (x`decrease`,
at most once per `hold_seconds`, so one burst of rejections counts once); `recovery_seconds`
after the last throttle the rate is back at the ceiling. Several containers each run their own;
like TCP flows, their AIMD rates converge to a fair share of the quota.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# ECR's default PutImage quota (ECR.md, "Rate quotas"): the most a registry admits a second.
ECR_PUT_IMAGE_QUOTA_PER_SECOND = 10.0
# AIMD parameters: +1 call/s per second of admitted calls, x0.7 on throttling (botocore's own
# adaptive mode and CUBIC use 0.7), one decrease per second (ECR's quota refills per second).
ADDITIVE_INCREASE_PER_SECOND = 1.0
MULTIPLICATIVE_DECREASE = 0.7
DECREASE_HOLD_SECONDS = 1.0
# Tokens the bucket holds at most, in seconds of the ceiling: ECR's own bucket admits a second's
# worth at once, and a single promotion's few PutImage calls never wait for a slot.
BURST_SECONDS = 1.0
MIN_RATE_PER_SECOND = 0.5
# A throttle this long ago says nothing about the quota now: the rate returns to the ceiling
# (a container that met a burst long ago does not keep crawling through the next one).
RECOVERY_SECONDS = 30.0
THROTTLING_CODES = frozenset({"ThrottlingException", "LimitExceededException", "TooManyRequestsException"})


class AdaptiveRate:
    """A token bucket whose refill rate follows AIMD. Thread-safe; `clock` and `sleep` are
    injectable so the arithmetic is tested without waiting."""

    def __init__(
        self,
        ceiling: float = ECR_PUT_IMAGE_QUOTA_PER_SECOND,
        initial: float | None = None,
        increase_per_second: float = ADDITIVE_INCREASE_PER_SECOND,
        decrease: float = MULTIPLICATIVE_DECREASE,
        hold_seconds: float = DECREASE_HOLD_SECONDS,
        floor: float = MIN_RATE_PER_SECOND,
        burst_seconds: float = BURST_SECONDS,
        recovery_seconds: float = RECOVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < floor <= ceiling:
            raise ValueError(f"need 0 < floor <= ceiling, got floor {floor}, ceiling {ceiling}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, got {decrease}")
        self.ceiling = ceiling
        self.floor = floor
        self._increase = increase_per_second
        self._decrease = decrease
        self._hold = hold_seconds
        self._recovery = recovery_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rate = min(ceiling, max(floor, initial if initial is not None else ceiling))
        self.capacity = max(1.0, ceiling * burst_seconds)
        self._tokens = self.capacity
        self._stamp = clock()
        self._last_decrease: float | None = None
        self.throttled = 0
        self.admitted = 0

    @property
    def rate(self) -> float:
        with self._lock:
            return self._rate

    def reserve(self) -> float:
        """Takes a token; returns how long to wait for it (0 when one is there now). Waiters go
        into debt in turn, so each waits for its own token and none is handed out twice."""
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    def _refill(self) -> None:
        now = self._clock()
        if self._last_decrease is not None and now - self._last_decrease >= self._recovery:
            self._rate = self.ceiling
            self._last_decrease = None
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def acquire(self) -> None:
        """Waits for a token (outside the lock: other workers queue behind it)."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)

    def on_admitted(self) -> None:
        """An attempt got through: additive increase (about `increase_per_second` per second)."""
        with self._lock:
            self.admitted += 1
            self._refill()
            self._rate = min(self.ceiling, self._rate + self._increase / self._rate)

    def on_throttled(self) -> None:
        """An attempt was throttled: multiplicative decrease, once per hold period, and the
        bucket is emptied (ECR's is: whoever comes next waits for the refill)."""
        with self._lock:
            self.throttled += 1
            now = self._clock()
            if self._last_decrease is not None and now - self._last_decrease < self._hold:
                return
            self._last_decrease = now
            self._refill()
            self._rate = max(self.floor, self._rate * self._decrease)
            self._tokens = min(self._tokens, 0.0)


_shared: dict[tuple[str, str], AdaptiveRate] = {}
_shared_lock = threading.Lock()


def shared_rate(region: str, registry_id: str) -> AdaptiveRate:
    """The one `AdaptiveRate` of this process for a registry (PutImage's quota is per account and
    region): every worker thread and every `EcrRegistry` built in this container shares it."""
    key = (region, registry_id)
    with _shared_lock:
        rate = _shared.get(key)
        if rate is None:
            rate = _shared[key] = AdaptiveRate()
        return rate
