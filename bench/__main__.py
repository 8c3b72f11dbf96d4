"""`python -m bench [--quick] [--only 1,2,...] [--latency aws] [--json FILE] [--keep DIR]`: every
figure, ours beside its reference measured in the same run, and the ratio. See BENCHMARKS.md."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench.report import Row, render, to_json
from bench.sizes import FULL, QUICK, Sizes
from bench.world import World

FIGURES: dict[str, tuple[str, str]] = {
    "1": ("bench.fig_calls", "ECR calls per promotion"),
    "2": ("bench.fig_copy", "cross-repository copy time vs skopeo"),
    "3": ("bench.fig_cold", "cold start vs import boto3"),
    "4": ("bench.fig_burst", "burst under the PutImage quota"),
    "5": ("bench.fig_memory", "peak memory of a big layer copy"),
    "6": ("bench.fig_attest", "the promotion attestation's cost, and the burst with it"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute): a smoke run")
    parser.add_argument("--only", default=",".join(FIGURES), help="figures to run, e.g. 1,3 (default: all)")
    parser.add_argument("--json", metavar="FILE", help="also write every row as JSON")
    parser.add_argument("--keep", metavar="DIR", help="keep the work dir (images, logs) in DIR")
    parser.add_argument(
        "--latency",
        default=None,
        metavar="aws|OP=MS[,...]",
        help="measure with the local AWS's latency model (as `promoter local --latency`); "
        "rows are marked with it. Default: none (local calls of 1-17 ms)",
    )
    args = parser.parse_args(argv)
    if args.latency is not None:
        from local_aws.latency import parse_latency

        try:
            parse_latency(args.latency)
        except ValueError as exc:
            parser.error(str(exc))
    wanted = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    sizes = QUICK if args.quick else FULL

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="promoter-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    world = World(work, latency=args.latency)
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        world.start()
        print(f"local AWS at {world.local.endpoint}; work dir {work}", flush=True)
        for key in wanted:
            module, title = FIGURES[key]
            print(f"[{key}] {title} ...", flush=True)
            t = time.perf_counter()
            figure_rows = _runner(module)(world, sizes)
            if args.latency:
                figure_rows = [replace(r, figure=f"{r.figure} @{args.latency}") for r in figure_rows]
            rows += figure_rows
            print(render(figure_rows), flush=True)
            print(f"[{key}] done in {time.perf_counter() - t:.1f} s\n", flush=True)
    finally:
        world.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    meta = {
        "mode": "quick" if args.quick else "full",
        "seconds": round(time.perf_counter() - started, 1),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sizes": sizes.__dict__,
        "latency": args.latency,
        "load_average": os.getloadavg(),
    }
    print(
        f"== all figures ({meta['mode']}, {meta['seconds']} s, {meta['cpus']} cpus, "
        f"latency {args.latency or 'none'}, load average {os.getloadavg()[0]:.1f})"
    )
    print(render(rows))
    if args.json:
        Path(args.json).write_text(to_json(rows, meta))
    return 0


def _runner(module: str) -> Callable[[World, Sizes], list[Row]]:
    import importlib

    return importlib.import_module(module).run


if __name__ == "__main__":
    sys.exit(main())
