"""`promoter demo`: the main job, end to end, on an embedded local AWS; no account needed.

The flow is the deployed one: a real registry client (skopeo) pushes a multi-platform image, the
local ECR emits its PUSH events to EventBridge's default bus, a rule with the stack's own pattern
routes them to an SQS queue, and Lambda's SQS event source mapping (run locally) invokes the Lambda
handler with the environment the stack sets. Then the same events are delivered again, as
EventBridge may do, to show that nothing is promoted twice. Exit 0 only if every check held.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from promoter import settings
from promoter.model.config import parse_config

if TYPE_CHECKING:
    from local_aws.stack_route import PushRoute

RESULTS_BUS = "image-promoter"
RESULTS_QUEUE = "deploy-pipeline-subscription"
MAX_RECEIVE_COUNT = 3
PLATFORMS = ("linux/amd64", "linux/arm64", "linux/s390x")
LAYER_BYTES = 256 * 1024

# The rules the demo runs: a build pushed as sha-* goes to staging; a release tag goes to prod
# with its version tags. app-prod is IMMUTABLE, as production repositories should be.
DEMO_CONFIG: dict[str, Any] = {
    "rules": [
        {
            "name": "dev-to-staging",
            "source": {"repository": "app-dev", "tags": ["sha-*"]},
            "targets": [{"repository": "app-staging", "tags": ["{tag}"]}],
        },
        {
            "name": "release-to-prod",
            "source": {"repository": "app-dev", "tags": ["re:^v[0-9]+\\.[0-9]+\\.[0-9]+$"]},
            "targets": [{"repository": "app-prod", "tags": ["{tag}"]}],
        },
    ]
}
REPOSITORIES = {"app-dev": "MUTABLE", "app-staging": "MUTABLE", "app-prod": "IMMUTABLE"}
PUSHES = (("app-dev", "sha-1a2b3c4"), ("app-dev", "v1.4.0"))
WRITE_OPERATIONS = frozenset({"PutImage", "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload"})


class DemoFailed(RuntimeError):
    """A check of the demo did not hold."""


class Progress:
    """Numbered steps with a spinner on a terminal and the time each took."""

    def __init__(self, total: int, out: Any = sys.stdout) -> None:
        self.total = total
        self.count = 0
        self.out = out
        self.tty = hasattr(out, "isatty") and out.isatty()

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.count += 1
        label = f"[{self.count}/{self.total}] {title}"
        started = time.monotonic()
        stop = threading.Event()
        spinner = threading.Thread(target=self._spin, args=(label, stop), daemon=True)
        if self.tty:
            spinner.start()
        else:
            print(f"{label} ...", file=self.out, flush=True)
        try:
            yield
        except BaseException:
            stop.set()
            if self.tty:
                spinner.join()
            print(f"\r{label} FAILED", file=self.out, flush=True)
            raise
        stop.set()
        if self.tty:
            spinner.join()
        print(f"\r{label} done ({time.monotonic() - started:.1f} s)", file=self.out, flush=True)

    def _spin(self, label: str, stop: threading.Event) -> None:
        frames = "|/-\\"
        i = 0
        while not stop.wait(0.1):
            print(f"\r{label} {frames[i % 4]}", end="", file=self.out, flush=True)
            i += 1

    def say(self, text: str = "") -> None:
        print(f"      {text}" if text else "", file=self.out, flush=True)


class ResultCapture(logging.Handler):
    """Collects the handler's `event handled` results from its Powertools logger."""

    def __init__(self) -> None:
        super().__init__()
        self.results: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        result = getattr(record, "result", None)
        if record.getMessage() == "event handled" and isinstance(result, dict):
            self.results.append(result)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run the full event flow on an embedded local AWS")
    parser.add_argument("--keep", metavar="DIR", help="keep the local AWS state and logs in DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from local_aws import INSTALL_HINT, LocalAws, RegistryNotInstalledError
    except ImportError as exc:  # the local extra is not installed
        print(f"promoter demo needs the local AWS: pip install -e '.[local]' ({exc})", file=sys.stderr)
        return 2
    if shutil.which("skopeo") is None:
        print(f"promoter demo needs skopeo: {INSTALL_HINT}", file=sys.stderr)
        return 2
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="promoter-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    progress = Progress(total=8)
    local = LocalAws(data_dir=work / "aws")
    try:
        with progress.step("Starting the local AWS (ECR on docker-registry, moto for the rest)"):
            local.start()
        progress.say(f"endpoint {local.endpoint}")
        _demo(local, work, progress)
    except RegistryNotInstalledError:
        print(f"promoter demo needs docker-registry: {INSTALL_HINT}", file=sys.stderr)
        return 2
    except DemoFailed as exc:
        print(f"\ndemo FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        local.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\ndemo passed: every image promoted once, digests preserved, replays promoted nothing.")
    return 0


def _demo(local: Any, work: Path, progress: Progress) -> None:
    region = local.region
    session = boto3.session.Session(
        aws_access_key_id="demo", aws_secret_access_key="demo", region_name=region
    )
    ecr = session.client("ecr", endpoint_url=local.endpoint)
    sqs = session.client("sqs", endpoint_url=local.endpoint)
    events = session.client("events", endpoint_url=local.endpoint)

    config = parse_config(DEMO_CONFIG)
    config_file = work / settings.STAGED_CONFIG_FILE
    config_file.write_text(config.to_json())

    with progress.step("Creating repositories and the stack's event wiring (rule -> SQS -> Lambda)"):
        for name, mutability in REPOSITORIES.items():
            ecr.create_repository(repositoryName=name, imageTagMutability=mutability)
        ecr.put_account_setting(name="BLOB_MOUNTING", value="ENABLED")
        route = _wire_events(sqs, events, config)
        queue_url = route.queue_url
        # The stack's attestation key (issue 19), as `promoter local` creates it: promotions are attested.
        from local_aws.stack_route import attestation_key

        key = attestation_key(session.client("kms", endpoint_url=local.endpoint))
        results_url = _wire_results(sqs, events)
    progress.say("app-dev -> app-staging (sha-*), app-dev -> app-prod (vX.Y.Z, IMMUTABLE)")
    progress.say(f"results go to the bus '{RESULTS_BUS}', where a deploy pipeline subscribes")

    image_dir = work / "image"
    with progress.step(f"Building a {len(PLATFORMS)}-platform image and pushing it with skopeo"):
        top = _build_image(image_dir)
        for repository, tag in PUSHES:
            _skopeo_push(local, image_dir, repository, tag)
    progress.say(f"{top} pushed as " + ", ".join(f"{r}:{t}" for r, t in PUSHES))

    handler, capture = _load_handler(local, config_file, work, key)
    with progress.step("Delivering the push events: EventBridge -> SQS -> the Lambda handler"):
        delivered = _deliver(sqs, queue_url, handler, expected=len(PUSHES), log=work / "lambda.log")
    _show_results(progress, capture.results)
    _check(all(r["results"] for r in capture.results), "a push event planned no promotion")
    outcomes = [a["outcome"] for r in capture.results for a in r["results"]]
    _check(outcomes == ["promoted"] * len(PUSHES), f"expected every action promoted, got {outcomes}")

    with progress.step("Checking the targets: same digests, every platform, tags in place"):
        for target, tag in (("app-staging", "sha-1a2b3c4"), ("app-prod", "v1.4.0")):
            digest = _digest_of(ecr, target, tag)
            _check(digest == top, f"{target}:{tag} is {digest}, expected {top}")
            count = len(_all_images(ecr, target))
            progress.say(
                f"{target}:{tag} -> {digest[:19]}... ({count} manifests: index + children + its attestation)"
            )
            _check(count == 1 + 2 * len(PLATFORMS) + 1, f"{target} holds {count} manifests")

    with progress.step("What subscribers and auditors see: result events and the history"):
        announced = _receive_all(sqs, results_url, expected=len(PUSHES))
        for detail_type, detail in announced:
            target = detail["target"]
            progress.say(
                f"event '{detail_type}': {target['repository-name']}:{target['image-tag']} "
                f"{detail['outcome']} (rule {detail['rule']}, trigger {detail['trigger']})"
            )
        _check(
            sorted(t for t, _ in announced) == ["Image Promoted"] * len(PUSHES),
            f"expected {len(PUSHES)} 'Image Promoted' events, got {[t for t, _ in announced]}",
        )
        progress.say("promoter history:")
        table = io.StringIO()
        from promoter_cli.main import main as cli_main  # the CLI imports this module

        with contextlib.redirect_stdout(table):
            code = cli_main(["history", "--limit", "10"])
        for line in table.getvalue().splitlines():
            progress.say(f"  {line}")
        _check(code == 0, "promoter history failed")

    local.control.reset_calls()
    capture.results.clear()
    with progress.step("Replaying the same events (EventBridge delivers at least once)"):
        from local_aws.enforcement import deliver_as_eventbridge

        for body in delivered:  # EventBridge delivering again (a SendMessage of ours would be refused)
            deliver_as_eventbridge(queue_url, body)
        _deliver(sqs, queue_url, handler, expected=len(delivered), log=work / "lambda.log")
    replayed = [a.get("replayed", False) for r in capture.results for a in r["results"]]
    progress.say(f"actions answered from the idempotency record: {sum(replayed)} of {len(replayed)}")
    _check(replayed and all(replayed), "a replayed event ran its promotion again")
    calls = local.control.calls()
    writes = {op: n for op, n in calls.items() if op in WRITE_OPERATIONS}
    progress.say(f"ECR write calls during the replay: {sum(writes.values())} {writes or ''}")
    _check(not writes, f"the replay wrote to ECR: {writes}")
    again = _receive_all(sqs, results_url, expected=0)
    progress.say(f"result events announced for the replay: {len(again)}")
    _check(not again, "the replay announced results again")

    with progress.step("Checking the dead-letter queue"):
        depth = int(
            sqs.get_queue_attributes(QueueUrl=route.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
        )
        progress.say(f"messages in the DLQ: {depth}")
        _check(depth == 0, f"{depth} events ended in the DLQ")


def _wire_events(sqs: Any, events: Any, config: Any) -> PushRoute:
    """The stack's routing: the same event pattern, a queue with a DLQ and redrive (the queue's
    name and its DLQ's are local_aws.stack_route's, as `promoter local` names them)."""
    from local_aws.stack_route import QUEUE_NAME, route_pushes

    return route_pushes(
        sqs, events, config, QUEUE_NAME, visibility_timeout_seconds=30, max_receive_count=MAX_RECEIVE_COUNT
    )


def _wire_results(sqs: Any, events: Any) -> str:
    """The promoter's own bus, and a subscriber's queue for every result it announces."""
    from local_aws.stack_route import queue_arn

    events.create_event_bus(Name=RESULTS_BUS)
    url = sqs.create_queue(QueueName=RESULTS_QUEUE)["QueueUrl"]
    pattern = {"detail-type": list(settings.RESULT_DETAIL_TYPES)}
    events.put_rule(Name=RESULTS_QUEUE, EventBusName=RESULTS_BUS, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule=RESULTS_QUEUE, EventBusName=RESULTS_BUS, Targets=[{"Id": "queue", "Arn": queue_arn(sqs, url)}]
    )
    return str(url)


def _receive_all(sqs: Any, url: str, expected: int) -> list[tuple[str, dict[str, Any]]]:
    """Drains a subscriber queue: (detail-type, detail) of each event, waiting for `expected`."""
    got: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for m in messages:
            body = json.loads(m["Body"])
            got.append((body["detail-type"], body["detail"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if not messages and len(got) >= expected:
            break
    return got


def _build_image(directory: Path) -> str:
    from local_aws import images

    top = images.multi_arch(platforms=PLATFORMS, layer_size=LAYER_BYTES, attestations=True)
    images.write_oci_layout(directory, top, tag="build")
    return top.digest


def _skopeo_push(local: Any, image_dir: Path, repository: str, tag: str) -> None:
    proc = subprocess.run(
        [
            "skopeo", "copy", "--all", "--preserve-digests", "--quiet",
            "--dest-tls-verify=false", "--dest-creds", f"AWS:{local.password}",
            f"oci:{image_dir}:build", f"docker://{local.registry_host}/{repository}:{tag}",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )
    if proc.returncode != 0:
        raise DemoFailed(f"skopeo push to {repository}:{tag} failed: {proc.stderr.strip()}")


def _load_handler(
    local: Any, config_file: Path, work: Path, attestation_key: str
) -> tuple[Callable[..., Any], ResultCapture]:
    """Imports the Lambda handler with the environment the stack sets; its JSON logs go to a file."""
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": local.endpoint,
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": local.region,
            **settings.function_environment(
                config_path=str(config_file), event_bus=RESULTS_BUS, attestation_key=attestation_key
            ),
        }
    )
    from promoter import handler

    log = logging.getLogger(settings.SERVICE_NAME)
    stream = (work / "lambda.log").open("a")
    for h in log.handlers:
        if isinstance(h, logging.StreamHandler):
            h.setStream(stream)
    capture = ResultCapture()
    log.addHandler(capture)
    return handler.handle_queue, capture


def _deliver(sqs: Any, queue_url: str, handler: Callable[..., Any], expected: int, log: Path) -> list[str]:
    """Runs the event source mapping until `expected` events were handled; returns their bodies.

    The handler's metrics (CloudWatch EMF lines that Powertools prints) go to the log file with its
    JSON logs, as they would go to CloudWatch Logs, instead of cluttering the progress display.
    """
    from local_aws.event_source_mapping import EventSourceMapping

    bodies: list[str] = []

    def recording(event: dict[str, Any], context: Any) -> Any:
        bodies.extend(r["body"] for r in event["Records"])
        return handler(event, context)

    esm = EventSourceMapping(sqs, queue_url, recording, batch_size=10, max_concurrency=2)
    deadline = time.monotonic() + 120
    with log.open("a") as stream, contextlib.redirect_stdout(stream):
        _run_until(esm, bodies, expected, deadline)
    if len(bodies) < expected:
        raise DemoFailed(f"only {len(bodies)} of {expected} events reached the handler")
    failed = [i for i in esm.invocations if i.failed_ids or i.error]
    if failed:
        raise DemoFailed(f"the handler failed records: {failed}")
    return bodies


def _run_until(esm: Any, bodies: list[str], expected: int, deadline: float) -> None:
    try:
        while len(bodies) < expected and time.monotonic() < deadline:
            esm.poll_once()
        esm.drain(idle_polls=1, deadline_seconds=10)
    finally:
        esm.close()


def _show_results(progress: Progress, results: list[dict[str, Any]]) -> None:
    for event in results:
        for a in event["results"]:
            stats = a.get("stats") or {}
            progress.say(
                f"{a['rule']}: {a['source_repository']}:{a['source_tag']} -> "
                f"{a['target_repository']}:{a['target_tag']} {a['outcome']} "
                f"(mounted {stats.get('blobs_mounted', 0)}, copied {stats.get('blobs_copied', 0)} blobs, "
                f"{stats.get('manifests_put', 0)} manifests put)"
            )


def _digest_of(ecr: Any, repository: str, tag: str) -> str:
    found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
    return str(found[0]["imageDigest"])


def _all_images(ecr: Any, repository: str) -> list[dict[str, Any]]:
    pages = ecr.get_paginator("list_images").paginate(repositoryName=repository)
    return [i for page in pages for i in page["imageIds"]]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailed(message)
