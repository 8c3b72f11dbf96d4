"""Figure 6: what the promotion attestation (issue 19) costs, measured beside the same work without it.

Per promotion: a single-platform copy into a fresh target (mounting on, as in the burst), promoted
by `bench.promote_child` once with the attestation key (`ATTESTATION_KEY_ARN`, a KMS ECC_NIST_P256
key on the local AWS) and once without, interleaved, `copy_repeats` times: the ECR calls the local
ECR counted, the KMS calls the local AWS served (`KMS.Sign`), and the promotion's own time at the
run's latency model (`--latency aws` delays KMS too).

The burst (figure 4's, `fig_burst.run_burst`) twice in the same run, without and with the key. An
attestation is a manifest put by digest: a PutImage of its own, under the same 10/s quota as the
image's. The engine's PutImage pacing (`promoter/aws/rate_limit.py`) takes one token per PutImage
attempt from one bucket per registry, whichever manifest it carries, so the image's and the
attestation's PutImage share the quota and the bound counts both: events x 2 / rate.
"""

from __future__ import annotations

import json

from bench import fig_burst
from bench.report import Row, median
from bench.sizes import Sizes
from bench.world import World
from local_aws import images as im
from promoter import settings

FIGURE = "6 attestation"
# One PutImage for the image, one for its attestation (by digest, no tag).
PUT_IMAGE_PER_ATTESTED_EVENT = 2


def run(world: World, sizes: Sizes) -> list[Row]:
    kms = world.client("kms")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    rows = _per_promotion(world, sizes, key)
    off = {settings.ATTESTATION_KEY_ENV: ""}
    rows += fig_burst.run_burst(world, sizes, figure=f"{FIGURE} off", extra_env=off)
    rows += fig_burst.run_burst(
        world,
        sizes,
        figure=f"{FIGURE} on",
        extra_env={settings.ATTESTATION_KEY_ENV: key},
        put_image_per_event=PUT_IMAGE_PER_ATTESTED_EVENT,
    )
    return rows


def _per_promotion(world: World, sizes: Sizes, key: str) -> list[Row]:
    world.set_mounting(True)
    source = world.repository("attest-src")
    image = im.image((sizes.small_layer_bytes,))
    im.EcrPusher(world.client("ecr")).push(source, image, "v1")
    seconds: dict[bool, list[float]] = {False: [], True: []}
    calls: dict[bool, dict[str, int]] = {}
    kms: dict[bool, dict[str, int]] = {}
    for repeat in range(sizes.copy_repeats):
        for attested in (False, True) if repeat % 2 == 0 else (True, False):
            target = world.repository("attest-dst")
            control = world.local.control
            control.reset_calls()
            control.reset_requests()
            with world.measuring():
                out = world.run_child(
                    "promote_child",
                    [source, image.digest, target, "v1"],
                    env={settings.ATTESTATION_KEY_ENV: key if attested else ""},
                )
            if out["outcome"] != "promoted" or bool(out["attestation"]) != attested:
                raise RuntimeError(f"attestation {'on' if attested else 'off'}: {json.dumps(out)}")
            seconds[attested].append(out["seconds"])
            calls[attested] = control.calls()
            kms[attested] = {n: c for n, c in control.requests().items() if n.startswith("KMS.")}
    added = {
        op: calls[True].get(op, 0) - calls[False].get(op, 0)
        for op in sorted(set(calls[True]) | set(calls[False]))
        if calls[True].get(op, 0) != calls[False].get(op, 0)
    }
    on, off = median(seconds[True]), median(seconds[False])
    return [
        Row(
            FIGURE,
            "ECR calls per promotion (single-arch copy, mounting on)",
            float(sum(calls[True].values())),
            float(sum(calls[False].values())),
            "calls",
            "attestation off",
            None,
            (f"on:  {_fmt(calls[True])}", f"off: {_fmt(calls[False])}", f"added: {_fmt(added, signed=True)}"),
        ),
        Row(
            FIGURE,
            "KMS calls per promotion",
            float(sum(kms[True].values())),
            float(sum(kms[False].values())),
            "calls",
            "attestation off",
            None,
            (f"on: {_fmt(kms[True]) or 'none'}; off: {_fmt(kms[False]) or 'none'}",),
        ),
        Row(
            FIGURE,
            f"promotion time (median of {len(seconds[True])})",
            on,
            off,
            "s",
            "attestation off",
            None,
            (f"added {1000 * (on - off):.0f} ms per promotion",),
            samples={"on": seconds[True], "off": seconds[False]},
        ),
    ]


def _fmt(counts: dict[str, int], signed: bool = False) -> str:
    return ", ".join(f"{op} {n:+d}" if signed else f"{op} {n}" for op, n in sorted(counts.items()))
