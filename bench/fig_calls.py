"""Figure 1: ECR calls per promotion, counted by the local ECR, against the minimum ECR allows.

Each promotion runs with a fresh `EcrRegistry`, as each Lambda invocation builds one, so calls a
container could make once (GetAccountSetting, GetAuthorizationToken) are counted and allowed once.
"""

from __future__ import annotations

from bench.minimum import CopyShape, excess, minimum_copy, minimum_retag
from bench.report import Goal, Row
from bench.sizes import Sizes
from bench.world import World
from local_aws import images as im
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model.plan import Action, SourceImage
from promoter.workflows.promote import Promoter

FIGURE = "1 calls"
PLATFORMS = ("linux/amd64", "linux/arm64", "linux/s390x")
EQUAL = Goal(1.0)


def run(world: World, sizes: Sizes) -> list[Row]:
    ecr = world.client("ecr")
    pusher = im.EcrPusher(ecr)
    source = world.repository("calls-src")
    single = im.image((sizes.small_layer_bytes,))
    multi = im.multi_arch(PLATFORMS, layer_size=sizes.small_layer_bytes, attestations=True)
    pusher.push(source, single, "single")
    pusher.push(source, multi, "multi")

    rows = [_measure(world, "retag", source, single, source, minimum_retag())]
    for mounting in (True, False):
        world.set_mounting(mounting)
        label = "mount" if mounting else "copy"
        for name, image in (("single-arch", single), ("3-platform", multi)):
            blobs = {b.digest: b.size for m in (image, *image.children) for b in m.blobs}
            shape = CopyShape(len(image.children), len(blobs), tuple(blobs.values()))
            minimum = minimum_copy(shape, mounting=mounting)
            target = world.repository("calls-dst")
            rows.append(_measure(world, f"{name} ({label})", source, image, target, minimum))
    return rows


def _measure(
    world: World, case: str, source: str, image: im.Manifest, target: str, minimum: dict[str, int]
) -> Row:
    promoter = Promoter(EcrRegistry(make_ecr_client()))
    action = Action("bench", SourceImage(source, "bench", image.digest), target, f"to-{case.split()[0]}")
    world.local.control.reset_calls()
    with world.measuring():  # counts do not depend on latency; the run's model applies anyway
        result = promoter.promote(action)
    calls = world.local.control.calls()
    if result.outcome != "promoted":
        raise RuntimeError(f"{case}: expected promoted, got {result.outcome}: {result.reason}")
    diff = excess(calls, minimum)
    notes = [
        "ours: " + _fmt(calls),
        "min:  " + _fmt(minimum),
        "extra: " + (_fmt(diff, signed=True) if diff else "none"),
    ]
    return Row(
        FIGURE,
        case,
        float(sum(calls.values())),
        float(sum(minimum.values())),
        "calls",
        "minimum",
        EQUAL,
        tuple(notes),
    )


def _fmt(calls: dict[str, int], signed: bool = False) -> str:
    return ", ".join(f"{op} {n:+d}" if signed else f"{op} {n}" for op, n in sorted(calls.items()))
