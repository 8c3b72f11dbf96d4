"""Figure 3: cold start. A fresh `python -c` that imports the handler (and one that also handles
its first event, a real promotion) against a fresh `python -c "import boto3"`, interleaved runs.

The first event is a real ECR push event (captured from the queue the stack's rule feeds) asking
for a cross-repository copy, a different image each run, so every run does the same real work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from bench import wiring
from bench.report import Goal, Row, median
from bench.sizes import Sizes
from bench.world import ROOT, World
from local_aws import images as im
from local_aws.stack_route import queue_arn

FIGURE = "3 cold start"
WITHIN_1_5 = Goal(1.5)

IMPORT_BOTO3 = "import boto3"
IMPORT_HANDLER = "import promoter.handler"
# One SQS batch with one record, a context with what Powertools reads; the result on stderr.
FIRST_EVENT = """
import json, sys
from promoter import handler
class Context:
    function_name = "image-promoter"
    memory_limit_in_mb = 1024
    aws_request_id = "cold-start"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:image-promoter"
    def get_remaining_time_in_millis(self):
        return 300000
out = handler.handle_queue(json.loads(sys.argv[1]), Context())
sys.stderr.write("\\nRESULT " + json.dumps(out) + "\\n")
"""


def run(world: World, sizes: Sizes) -> list[Row]:
    source, target = world.repository("cold-src"), world.repository("cold-dst")
    path = wiring.wire(world, "bench-cold", source, target)
    world.set_mounting(True)
    pusher = im.EcrPusher(world.client("ecr"))
    for i in range(sizes.cold_runs):
        pusher.push(source, im.image((sizes.small_layer_bytes,)), f"sha-cold{i}")
    sqs = world.client("sqs")
    messages = wiring.receive_all(sqs, path.queue_url, sizes.cold_runs)
    env = {**os.environ, **world.env(), **wiring.lambda_env(path.config_file)}

    samples: dict[str, list[float]] = {"pass": [], "boto3": [], "handler": [], "first_event": []}
    with world.measuring():
        _measure(messages, samples, env, sqs, path.queue_url)
    tags = world.client("ecr").list_images(repositoryName=target, filter={"tagStatus": "TAGGED"})["imageIds"]
    if len(tags) != sizes.cold_runs:
        raise RuntimeError(f"{len(tags)} of {sizes.cold_runs} first events promoted their image")
    return _rows(samples, env)


def _measure(
    messages: list[dict], samples: dict[str, list[float]], env: dict[str, str], sqs: Any, queue_url: str
) -> None:
    for message in messages:
        samples["pass"].append(_time([sys.executable, "-c", "pass"], env))
        samples["boto3"].append(_time([sys.executable, "-c", IMPORT_BOTO3], env))
        samples["handler"].append(_time([sys.executable, "-c", IMPORT_HANDLER], env))
        event = {"Records": [_record(message, queue_arn(sqs, queue_url))]}
        command = [sys.executable, "-c", FIRST_EVENT, json.dumps(event)]
        samples["first_event"].append(_time(command, env, expect_result=True))


def _rows(samples: dict[str, list[float]], env: dict[str, str]) -> list[Row]:
    boto3_s, pass_s = median(samples["boto3"]), median(samples["pass"])
    common = (
        f"runs {len(samples['boto3'])} each, interleaved; python -c pass {pass_s:.3f} s; "
        f"import boto3 {_list(samples['boto3'])}",
        "slowest imports of the handler (self time, one run): " + _top_imports(env),
    )
    return [
        Row(
            FIGURE,
            "import handler",
            median(samples["handler"]),
            boto3_s,
            "s",
            "import boto3",
            WITHIN_1_5,
            (f"handler {_list(samples['handler'])}", *common),
            samples,
        ),
        Row(
            FIGURE,
            "import + first event",
            median(samples["first_event"]),
            boto3_s,
            "s",
            "import boto3",
            None,
            (f"first event (a cross-repository copy, mounting on) {_list(samples['first_event'])}",),
        ),
    ]


def _time(command: list[str], env: dict[str, str], expect_result: bool = False) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {proc.stderr[-2000:]}")
    if expect_result:
        result = json.loads(proc.stderr.rsplit("RESULT ", 1)[1])
        if result.get("batchItemFailures"):
            raise RuntimeError(f"the first event failed: {proc.stdout[-2000:]}")
    return elapsed


def _record(message: dict, queue_arn: str) -> dict:
    from local_aws.event_source_mapping import sqs_event

    return sqs_event([message], queue_arn, queue_arn.split(":")[3])["Records"][0]


def _top_imports(env: dict[str, str], count: int = 4) -> str:
    """The modules with the largest self import time (`python -X importtime`)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", IMPORT_HANDLER],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0].startswith("import time:") and parts[1].strip().isdigit():
            rows.append((int(parts[0].split(":")[1]), parts[2].strip()))
    rows.sort(reverse=True)
    return ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in rows[:count])


def _list(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"
