"""The adaptive PutImage rate (`promoter.aws.rate_limit`): token bucket + AIMD, on a fake clock."""

from __future__ import annotations

import threading

import pytest

from promoter.aws.rate_limit import AdaptiveRate


class FakeClock:
    """A clock that moves only when told to; `sleep` moves it (so waits are exact and instant)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make(clock: FakeClock, **kwargs) -> AdaptiveRate:
    return AdaptiveRate(clock=clock, sleep=clock.sleep, **kwargs)


def test_a_burst_up_to_one_second_of_the_ceiling_passes_without_waiting():
    clock = FakeClock()
    rate = make(clock, ceiling=10)
    waits = [rate.reserve() for _ in range(10)]
    assert waits == [0.0] * 10
    assert rate.reserve() == pytest.approx(0.1)


def test_a_sustained_flow_is_spread_at_the_rate_each_waiter_in_turn():
    clock = FakeClock()
    rate = make(clock, ceiling=10)
    for _ in range(10):
        rate.acquire()
    waits = [rate.reserve() for _ in range(5)]  # five workers arrive at once, bucket empty
    assert waits == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_throttling_cuts_the_rate_multiplicatively_once_per_hold_period():
    clock = FakeClock()
    rate = make(clock, ceiling=10, decrease=0.5, hold_seconds=1.0)
    rate.on_throttled()
    assert rate.rate == pytest.approx(5.0)
    rate.on_throttled()  # the same burst of rejections: counted, not cut again
    assert rate.rate == pytest.approx(5.0)
    assert rate.throttled == 2
    clock.now += 1.0
    rate.on_throttled()
    assert rate.rate == pytest.approx(2.5)


def test_after_throttling_the_next_caller_waits_for_a_refill_at_the_new_rate():
    clock = FakeClock()
    rate = make(clock, ceiling=10, decrease=0.5)
    rate.on_throttled()
    assert rate.reserve() == pytest.approx(1 / 5)


def test_admitted_calls_raise_the_rate_about_one_per_second_up_to_the_ceiling():
    clock = FakeClock()
    rate = make(clock, ceiling=10, initial=4, increase_per_second=1.0)
    for _ in range(4):  # one second's worth of calls at 4/s
        rate.on_admitted()
    assert 4.9 < rate.rate < 5.0
    for _ in range(1000):
        rate.on_admitted()
    assert rate.rate == 10


def test_a_throttle_long_past_no_longer_holds_the_rate_down():
    clock = FakeClock()
    rate = make(clock, ceiling=10, decrease=0.5, recovery_seconds=30)
    rate.on_throttled()
    clock.now += 29
    rate.reserve()
    assert rate.rate == pytest.approx(5.0)
    clock.now += 1
    rate.reserve()
    assert rate.rate == 10


def test_the_rate_never_falls_below_the_floor():
    clock = FakeClock()
    rate = make(clock, ceiling=10, floor=0.5, decrease=0.5, hold_seconds=0)
    for _ in range(20):
        rate.on_throttled()
    assert rate.rate == 0.5


def test_a_token_is_never_handed_out_twice_across_threads():
    clock = FakeClock()
    rate = make(clock, ceiling=10)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(25):
            wait = rate.reserve()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 100 tokens with the clock standing still: 10 free, then one every 0.1 s, each wait distinct.
    assert sorted(waits) == pytest.approx([0.0] * 10 + [0.1 * k for k in range(1, 91)])


@pytest.mark.parametrize("kwargs", [{"floor": 0}, {"floor": 20, "ceiling": 10}, {"decrease": 1.0}])
def test_nonsense_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        AdaptiveRate(**kwargs)
