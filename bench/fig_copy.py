"""Figure 2: a cross-repository copy of a 3-platform image, ours vs `skopeo copy --all`.

Both run as child processes against the same local AWS, into fresh target repositories, in
alternating order, with BLOB_MOUNTING enabled and then disabled. Ours is timed twice: the
promotion inside a warm process (what a Lambda invocation does; the headline) and the whole child
process including Python's start and imports (what a CLI run costs). Bytes moved are checked
three ways: our copy stats, and the registry's own I/O counters for both tools (a copy makes the
registry read and write every byte, a mount nearly none).

`BENCH_BASELINE_TREE=DIR` adds a third tool, "baseline": the same child with the engine of another
checkout (DIR/functions first on its path, e.g. a `git worktree` of the previous commit), run
interleaved with the other two, so a change to the copy is measured before and after in one run.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.content import multi_platform_image
from bench.report import Goal, Row, median
from bench.sizes import Sizes
from bench.world import World

FIGURE = "2 copy"
PLATFORMS = ("linux/amd64", "linux/arm64", "linux/s390x")
HALF_OF_SKOPEO = Goal(0.5)
# ocync (a registry-to-registry copier) reports 2 requests per copied blob: one GET, one PUT.
OCYNC_REQUESTS_PER_BLOB = 2.0
# What moves a blob on the local ECR: its download URL, the download, and the /v2 upload.
BLOB_REQUESTS = ("GetDownloadUrlForLayer", "BlobHost.GET", "Registry.POST", "Registry.PATCH", "Registry.PUT")
BASELINE_TREE_ENV = "BENCH_BASELINE_TREE"


def run(world: World, sizes: Sizes) -> list[Row]:
    image = multi_platform_image(world.work / "copy-image", PLATFORMS, (sizes.copy_layer_bytes,))
    source = world.repository("copy-src")
    world.push_layout(image.layout, source, image.tag)
    baseline = os.environ.get(BASELINE_TREE_ENV, "")
    rows = []
    for mounting in (True, False):
        world.set_mounting(mounting)
        samples: dict[str, list[float]] = {
            "ours": [],
            "ours_process": [],
            "skopeo": [],
            "v2": [],
            "baseline": [],
        }
        moved: dict[str, list[int]] = {"ours": [], "skopeo": [], "v2": [], "baseline": []}
        peaks: list[int] = []
        v2_peaks: list[int] = []
        requests: dict[str, list[dict[str, int]]] = {"ours": [], "skopeo": [], "baseline": []}
        # The what-if for engine fix 3 matters only when bytes move.
        tools = ["ours", "skopeo"] + ([] if mounting else ["v2"]) + (["baseline"] if baseline else [])
        for rep in range(sizes.copy_repeats):
            for tool in tools[rep % len(tools) :] + tools[: rep % len(tools)]:
                target = world.repository(f"copy-{tool}")
                before = world.registry_io()
                world.local.control.reset_requests()
                with world.measuring():
                    _copy(world, tool, source, image, target, mounting, samples, peaks, v2_peaks, baseline)
                if tool in requests:
                    requests[tool].append(world.local.control.requests())
                after = world.registry_io()
                moved[tool].append(after["wchar"] - before["wchar"])
        rows.append(_row(mounting, image.blob_bytes, samples, moved, peaks))
        if samples["baseline"]:
            rows.append(_baseline_row(mounting, samples, baseline))
        if samples["v2"]:
            rows.append(_what_if_row(samples, v2_peaks))
        if not mounting:
            rows.append(_requests_row(requests, len(image.blobs)))
    return rows


def _copy(
    world: World,
    tool: str,
    source: str,
    image: Any,
    target: str,
    mounting: bool,
    samples: dict[str, list[float]],
    peaks: list[int],
    v2_peaks: list[int],
    baseline: str = "",
) -> None:
    """One copy by `tool` into `target`; its times (and peaks) appended."""
    started = time.perf_counter()
    if tool == "ours":
        out = world.run_child("promote_child", [source, image.digest, target, "v1"])
        samples["ours_process"].append(time.perf_counter() - started)
        samples["ours"].append(out["seconds"])
        peaks.append(out["peak_rss"])
        _check_ours(out, image.blob_bytes, len(image.blobs), mounting)
    elif tool == "baseline":
        engine = {"PYTHONPATH": os.path.join(baseline, "functions")}
        out = world.run_child("promote_child", [source, image.digest, target, "v1"], env=engine)
        samples["baseline"].append(out["seconds"])
        _check_ours(out, image.blob_bytes, len(image.blobs), mounting)
    elif tool == "v2":
        blobs = [f"{b.digest}:{b.size}" for b in image.blobs]
        out = world.run_child("v2_copy_child", [source, image.digest, target, "v1", *blobs])
        if out["outcome"] != "promoted" or out["bytes_sent"] != image.blob_bytes:
            raise RuntimeError(f"the /v2 what-if did not copy every byte: {out}")
        samples["v2"].append(out["seconds"])
        v2_peaks.append(out["peak_rss"])
    else:
        world.skopeo(world.docker_ref(source, image.digest), world.docker_ref(target, "v1"))
        samples["skopeo"].append(time.perf_counter() - started)


def _requests_row(requests: dict[str, list[dict[str, int]]], blobs: int) -> Row:
    """Requests per copied blob (mounting off): everything the copy sent to ECR, its API and its
    registry and the blob host, over the blobs it copied; the blob transfer requests alone too."""
    last = {tool: runs[-1] for tool, runs in requests.items() if runs}
    total = {tool: sum(counts.values()) / blobs for tool, counts in last.items()}
    moving = {tool: sum(counts.get(k, 0) for k in BLOB_REQUESTS) / blobs for tool, counts in last.items()}
    tools = [tool for tool in ("ours", "baseline", "skopeo") if tool in last]
    notes = (
        f"{blobs} blobs copied; all requests of one copy / blobs: "
        + ", ".join(f"{tool} {total[tool]:.1f}" for tool in tools)
        + f"; blob transfer requests only ({', '.join(BLOB_REQUESTS)}) / blobs: "
        + ", ".join(f"{tool} {moving[tool]:.1f}" for tool in tools),
        *(
            f"{tool} by request: " + ", ".join(f"{k} {v}" for k, v in sorted(last[tool].items()))
            for tool in tools
        ),
    )
    return Row(
        FIGURE,
        "requests per copied blob, mounting off",
        total.get("ours", 0.0),
        OCYNC_REQUESTS_PER_BLOB,
        "requests",
        "ocync",
        None,
        notes,
    )


def _check_ours(out: dict, blob_bytes: int, blobs: int, mounting: bool) -> None:
    stats = out["stats"]
    if out["outcome"] != "promoted":
        raise RuntimeError(f"our copy did not promote: {out}")
    if mounting and stats["blobs_mounted"] != blobs:
        raise RuntimeError(f"mounting on, yet not every blob was mounted: {stats}")
    if not mounting and stats["bytes_copied"] != blob_bytes:
        raise RuntimeError(f"mounting off: copied {stats['bytes_copied']} of {blob_bytes} bytes")


def _row(
    mounting: bool,
    blob_bytes: int,
    samples: dict[str, list[float]],
    moved: dict[str, list[int]],
    peaks: list[int],
) -> Row:
    ours, ours_process, skopeo = (median(samples[k]) for k in ("ours", "ours_process", "skopeo"))
    mib = 1024 * 1024
    notes = (
        f"layers {blob_bytes / mib:.0f} MiB in {len(PLATFORMS)} platforms (+ attestations); "
        f"runs {len(samples['ours'])}; ours {_list(samples['ours'])}, skopeo {_list(samples['skopeo'])}",
        f"ours as a whole process (python start + imports): {ours_process:.2f} s = "
        f"{ours_process / skopeo:.2f}x skopeo",
        f"registry write I/O per copy (median): ours {median(moved['ours']) / mib:.1f} MiB, "
        f"skopeo {median(moved['skopeo']) / mib:.1f} MiB"
        + ("" if mounting else " (a full copy: ~2x the layers, sent once and stored once)"),
        f"our copy's peak RSS: {max(peaks) / mib:.0f} MiB",
    )
    return Row(
        FIGURE,
        f"3-platform, mounting {'on' if mounting else 'off'}",
        ours,
        skopeo,
        "s",
        "skopeo",
        HALF_OF_SKOPEO,
        notes,
        {k: list(v) for k, v in samples.items()},
    )


def _baseline_row(mounting: bool, samples: dict[str, list[float]], tree: str) -> Row:
    """The other checkout's engine (BENCH_BASELINE_TREE), beside skopeo in the same run."""
    return Row(
        FIGURE,
        f"baseline engine, mounting {'on' if mounting else 'off'}",
        median(samples["baseline"]),
        median(samples["skopeo"]),
        "s",
        "skopeo",
        None,
        (f"engine of {tree}; runs {_list(samples['baseline'])}; ours {_list(samples['ours'])}",),
    )


def _what_if_row(samples: dict[str, list[float]], peaks: list[int]) -> Row:
    return Row(
        FIGURE,
        "what-if: /v2 streaming copy",
        median(samples["v2"]),
        median(samples["skopeo"]),
        "s",
        "skopeo",
        None,
        (
            f"engine fix 3 prototyped (bench/v2_copy_child.py): blobs streamed through /v2, then the "
            f"engine's promotion; runs {_list(samples['v2'])}; peak RSS {max(peaks) / 1024 / 1024:.0f} MiB",
        ),
    )


def _list(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"
