"""Figure 5: peak memory of the process copying one big layer across repositories, mounting off.

The copy runs in a child process of its own (the same one figure 2 uses) and reports its VmHWM,
after the imports and after the copy; the reference is the layer's size, which a copy that
buffered the layer would need at least once.
"""

from __future__ import annotations

from bench.content import single_image
from bench.report import Goal, Row
from bench.sizes import Sizes
from bench.world import World

FIGURE = "5 memory"
LIMIT_BYTES = 200 * 1000 * 1000  # the goal: < 200 MB
UNDER_200_MB = Goal(LIMIT_BYTES, on="ours", strict=True)


def run(world: World, sizes: Sizes) -> list[Row]:
    image = single_image(world.work / "memory-image", (sizes.memory_layer_bytes,))
    source = world.repository("memory-src")
    world.push_layout(image.layout, source, image.tag)
    world.set_mounting(False)
    target = world.repository("memory-dst")
    with world.measuring():
        out = world.run_child("promote_child", [source, image.digest, target, "v1"], timeout=1800)
    if out["outcome"] != "promoted" or out["stats"]["bytes_copied"] != image.blob_bytes:
        raise RuntimeError(f"the big copy did not copy every byte: {out}")
    mib = 1024 * 1024
    peak, base = out["peak_rss"], out["peak_rss_after_imports"]
    notes = (
        f"copied {out['stats']['bytes_copied'] / mib:.0f} MiB in {out['seconds']:.1f} s "
        f"({out['stats']['bytes_copied'] / mib / out['seconds']:.0f} MiB/s); "
        f"goal < 200 MB = {LIMIT_BYTES / mib:.1f} MiB",
        f"peak after imports {base / mib:.0f} MiB; the copy added {(peak - base) / mib:.0f} MiB",
    )
    return [
        Row(
            FIGURE,
            f"{sizes.memory_layer_bytes / mib:.0f} MiB layer, mounting off",
            float(peak),
            float(sizes.memory_layer_bytes),
            "bytes",
            "layer size",
            UNDER_200_MB,
            notes,
        )
    ]
