"""Figure 4: a burst of push events under ECR's PutImage quota, through the deployed path.

N images are pushed to a source repository while the stack's rule routes their PUSH events to
the queue; then PutImage is limited to the quota and a child process runs Lambda's SQS event
source mapping with the stack's batch size and maximum concurrency over the real handler. The
lower bound is the quota's: N events x 1 PutImage each / rate. Failures are records the handler
gave back (or a function error); duplicates are admitted PutImage calls beyond one per target.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

from bench import wiring
from bench.report import Goal, Row
from bench.sizes import Sizes
from bench.world import World
from local_aws import images as im

FIGURE = "4 burst"
WITHIN_15_PERCENT = Goal(1.15)
ZERO = Goal(0, on="ours")
AT_MOST_5_PERCENT = Goal(0.05, on="ours")
PUT_IMAGE_PER_EVENT = 1  # a single-platform image: one PutImage per promotion
PUSH_THREADS = 4


def stack_esm_settings() -> tuple[int, int]:
    """The batch size and maximumConcurrency the stack gives the event source mapping
    (`BENCH_MAX_CONCURRENCY` overrides the latter, to measure what another value would do)."""
    from infra.props import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CONCURRENCY

    return DEFAULT_BATCH_SIZE, int(os.environ.get("BENCH_MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY))


def run(world: World, sizes: Sizes) -> list[Row]:
    return run_burst(world, sizes)


def run_burst(
    world: World,
    sizes: Sizes,
    *,
    figure: str = FIGURE,
    extra_env: dict[str, str] | None = None,
    put_image_per_event: int = PUT_IMAGE_PER_EVENT,
) -> list[Row]:
    """One burst, its rows under `figure`; `extra_env` for the function (an attestation key), and
    the PutImage calls each promotion makes (the bound counts every one)."""
    events = sizes.burst_events
    source, target = world.repository("burst-src"), world.repository("burst-dst")
    path = wiring.wire(world, "bench-burst", source, target)
    world.set_mounting(True)
    _push_images(world, source, events, sizes.small_layer_bytes)
    sqs = world.client("sqs")
    queued = wiring.queue_depth(sqs, path.queue_url)
    if queued != events:
        raise RuntimeError(f"{queued} events queued for {events} pushes")

    batch_size, concurrency = stack_esm_settings()
    overridden = "BENCH_MAX_CONCURRENCY" in os.environ
    pacing = "off (BENCH_NO_PUT_IMAGE_PACING)" if os.environ.get("BENCH_NO_PUT_IMAGE_PACING") else "on"
    bound = events * put_image_per_event / sizes.burst_put_rate
    control = world.local.control
    control.reset_calls()
    control.set_rate("PutImage", sizes.burst_put_rate)
    try:
        with world.measuring():
            out = world.run_child(
                "burst_child",
                [
                    path.queue_url,
                    str(events),
                    str(batch_size),
                    str(concurrency),
                    str(bound * 3 + 60),
                    str(world.work / "burst-lambda.log"),
                ],
                env={**wiring.lambda_env(path.config_file), **(extra_env or {})},
                timeout=bound * 3 + 180,
            )
    finally:
        control.set_rate("PutImage", None)
    calls = control.calls()

    tagged = _tagged(world, target)
    images = _images(world, target)
    attempts = out["put_image_attempts"]
    throttled = attempts.get("ThrottlingException", 0)
    admitted = sum(n for code, n in attempts.items() if code != "ThrottlingException")
    duplicates = max(0, admitted - events * put_image_per_event)
    failures = out["records_failed"] + out["function_errors"] + (0 if out["finished"] else 1)
    dlq = wiring.queue_depth(sqs, path.dlq_url)
    per_event = {op: round(n / events, 2) for op, n in sorted(calls.items())}
    busy = out["busy_seconds"] / max(1, out["records_ok"])  # invocation time per event, one worker
    notes = (
        f"{events} events, PutImage {sizes.burst_put_rate:g}/s, ESM batch {batch_size}, "
        f"maximumConcurrency {concurrency} "
        f"({'BENCH_MAX_CONCURRENCY' if overridden else 'the stack defaults, infra/props.py'}); mounting on; "
        f"adaptive PutImage rate {pacing}",
        f"PutImage attempts: {json.dumps(attempts)} (local ECR counted {calls.get('PutImage', 0)}, "
        f"{put_image_per_event} per event); target tags {tagged}/{events}, images {images}; "
        f"DLQ {dlq}; invocations {out['invocations']}",
        f"ECR calls per event: {json.dumps(per_event)}",
        f"handler time per event {busy * 1000:.0f} ms: {concurrency} workers can promote at most "
        f"{concurrency / busy:.1f}/s ({put_image_per_event * concurrency / busy:.1f} PutImage/s) "
        f"vs the quota's {sizes.burst_put_rate:g} PutImage/s",
    )
    if out["first_error"]:
        notes += (f"first function error: {out['first_error']}",)
    return [
        Row(figure, "wall time", out["seconds"], bound, "s", "quota bound", WITHIN_15_PERCENT, notes),
        Row(figure, "failures", float(failures), 0.0, "count", "none", ZERO),
        Row(
            figure,
            "target manifests missing or extra",
            float(abs(images - events * put_image_per_event)),
            0.0,
            "count",
            "none",
            ZERO,
            (f"{images} manifests in the target for {events} events x {put_image_per_event} each",),
        ),
        Row(
            figure,
            "throttled PutImage attempts",
            throttled / max(1, sum(attempts.values())),
            0.0,
            "share",
            "none",
            AT_MOST_5_PERCENT,
            (f"{throttled} of {sum(attempts.values())} attempts answered ThrottlingException",),
        ),
        Row(
            figure,
            "duplicate PutImage",
            float(duplicates),
            0.0,
            "count",
            "none",
            ZERO,
            (f"throttled attempts (retried by botocore, not duplicates): {throttled}",),
        ),
    ]


def _push_images(world: World, repository: str, count: int, layer_bytes: int) -> None:
    """`count` distinct single-platform images sharing one layer, tagged sha-burst<i>."""
    layer = im.random_layer(layer_bytes)
    pusher = im.EcrPusher(world.client("ecr"))
    pusher.push_blob(repository, layer)

    def push(i: int) -> None:
        config = im.config_blob([layer])
        doc = {
            "schemaVersion": 2,
            "mediaType": im.OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        }
        manifest = im.Manifest(json.dumps(doc).encode(), im.OCI_MANIFEST, (config, layer))
        pusher.push(repository, manifest, f"sha-burst{i}")

    with ThreadPoolExecutor(PUSH_THREADS) as pool:
        list(pool.map(push, range(count)))


def _images(world: World, repository: str) -> int:
    """Every image of the repository, tagged or not (an attestation is an untagged manifest)."""
    pages = world.client("ecr").get_paginator("list_images").paginate(repositoryName=repository)
    return sum(len({i["imageDigest"] for i in page["imageIds"]}) for page in pages)


def _tagged(world: World, repository: str) -> int:
    pages = (
        world.client("ecr")
        .get_paginator("list_images")
        .paginate(repositoryName=repository, filter={"tagStatus": "TAGGED"})
    )
    return sum(len(page["imageIds"]) for page in pages)
