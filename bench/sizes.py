"""How big each figure runs: the full bench and `--quick` (small sizes, under a minute)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """Every size and repeat count in one place."""

    small_layer_bytes: int  # figure 1's layers: the count of calls does not depend on size
    copy_layer_bytes: int  # figure 2: one layer per platform, 3 platforms
    copy_repeats: int
    cold_runs: int  # figure 3, runs of each command
    burst_events: int  # figure 4
    burst_put_rate: float
    memory_layer_bytes: int  # figure 5


FULL = Sizes(
    small_layer_bytes=4096,
    copy_layer_bytes=100 * MIB,  # 3 x 100 MiB ~ 300 MB of layers
    copy_repeats=5,  # issue 13: the median of 5 runs
    cold_runs=7,
    burst_events=1000,
    burst_put_rate=10.0,
    memory_layer_bytes=1024 * MIB,
)

QUICK = Sizes(
    small_layer_bytes=1024,
    copy_layer_bytes=4 * MIB,
    copy_repeats=1,
    cold_runs=3,
    burst_events=40,
    burst_put_rate=10.0,
    memory_layer_bytes=48 * MIB,
)
