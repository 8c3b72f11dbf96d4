"""`promoter local --config` runs the promoter as the stack does, as a process: a `skopeo copy` into a
source repository is promoted with nothing else run, a `promoter request` on the printed bus is
answered, a dead-lettered event goes back through `promoter redrive` with the printed queues, each
handled action prints its line, the history has the records, and SIGTERM still exits 0."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

from infra.queue_policies import nobody_sends
from local_aws import images
from promoter import settings

pytestmark = pytest.mark.integration
PROMOTER = [sys.executable, "-m", "promoter_cli.main"]
# Bounds against a hang on a loaded machine, not measurements: each wait ends as soon as its
# condition holds.
START_TIMEOUT_SECONDS = 120
PROMOTION_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 30
CONFIG = """\
rules:
  - name: dev-to-staging
    source: {repository: app-dev, tags: ["sha-*"]}
    targets: [{repository: app-staging}]
  - name: to-prod
    trigger: request
    source: {repository: app-staging, tags: ["sha-*"]}
    targets: [{repository: app-prod}]
  - name: to-qa
    trigger: request
    source: {repository: app-staging, tags: ["sha-*"]}
    targets: [{repository: app-qa}]
"""


class Terminal:
    """What a `promoter local` process prints, line by line, read on a thread of its own so a test
    can wait for a line with a bound."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, pattern: str, timeout: float) -> str:
        """The first line (from where the last wait stopped) that matches `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no line matched {pattern!r} in {timeout} s; printed: {self.seen}"
                ) from None
            if line is None:
                raise AssertionError(f"the process ended before printing {pattern!r}; printed: {self.seen}")
            self.seen.append(line)
            if re.search(pattern, line):
                return line


def pasted_environment(ready_block: list[str]) -> dict[str, str]:
    """Every `export` line of the ready block, as a shell would take it."""
    env: dict[str, str] = {}
    for line in ready_block:
        if line.startswith("export "):
            env.update(word.split("=", 1) for word in shlex.split(line)[1:])
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args], env=env, capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS
    )


def holds(ecr, repository: str, tag: str) -> str | None:
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
    except ecr.exceptions.ImageNotFoundException:
        return None
    return found[0]["imageDigest"]


def wait_until_held(ecr, repository: str, tag: str, digest: str) -> None:
    deadline = time.monotonic() + PROMOTION_TIMEOUT_SECONDS
    while holds(ecr, repository, tag) != digest:
        assert time.monotonic() < deadline, f"{repository}:{tag} never came to hold {digest}"
        time.sleep(0.2)  # the poll interval; the condition, not the sleep, ends the wait


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.fixture
def running(tmp_path: Path):
    """`promoter local --port 0 --config X` started, its ready block read, the environment it
    prints pasted (over a user's environment without AWS_* variables)."""
    config = tmp_path / "promotion.yaml"
    config.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [*PROMOTER, "local", "--port", "0", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    terminal = Terminal(proc)
    stopped = False
    try:
        terminal.until(r"^# Ctrl-C", START_TIMEOUT_SECONDS)
        ready = list(terminal.seen)
        env.update(pasted_environment(ready))
        ecr = boto3.client(
            "ecr",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        yield {"proc": proc, "terminal": terminal, "ready": ready, "env": env, "ecr": ecr, "tmp": tmp_path}
        stopped = True
        began = time.monotonic()
        assert stop(proc) == 0, proc.stderr.read() if proc.stderr else ""
        print(f"promoter local stopped {time.monotonic() - began:.2f} s after SIGTERM")
    finally:
        if not stopped:
            stop(proc)


def push(running, repository: str, tag: str) -> str:
    """`skopeo login` as printed, then `skopeo copy` of a fresh image; returns its digest."""
    image = images.multi_arch(attestations=False)
    layout = running["tmp"] / f"img-{tag}"
    images.write_oci_layout(layout, image, tag="build")
    skopeo_env = dict(running["env"], REGISTRY_AUTH_FILE=str(running["tmp"] / "auth.json"))
    (login,) = [line for line in running["ready"] if line.startswith("skopeo login ")]
    host = running["env"]["AWS_ENDPOINT_URL"].split("//", 1)[1]
    for command in (
        shlex.split(login),
        ["skopeo", "copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:build",
         f"docker://{host}/{repository}:{tag}"],
    ):  # fmt: skip
        done = subprocess.run(command, env=skopeo_env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (command, done.stderr)
    return image.digest


def subscribe_to_results(env: dict[str, str]) -> tuple[object, str]:
    """A subscriber's queue for the result events on the printed bus, as a deploy pipeline has."""
    kw = {
        "endpoint_url": env["AWS_ENDPOINT_URL"],
        "region_name": env["AWS_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }
    sqs, events = boto3.client("sqs", **kw), boto3.client("events", **kw)
    url = sqs.create_queue(QueueName="results-subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = env["PROMOTION_EVENT_BUS"]
    pattern = {"detail-type": list(settings.RESULT_DETAIL_TYPES)}
    events.put_rule(Name="results-subscriber", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="results-subscriber", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url


def test_a_skopeo_push_is_promoted_by_promoter_local_itself_recorded_and_announced(running):
    ready = "\n".join(running["ready"])
    assert "promoter.handler.handle_queue" in ready
    assert "dev-to-staging: app-dev:sha-* -> app-staging:{tag}" in ready
    sqs, results = subscribe_to_results(running["env"])
    digest = push(running, "app-dev", "sha-1")

    wait_until_held(running["ecr"], "app-staging", "sha-1", digest)
    line = running["terminal"].until(r"promoted app-staging:sha-1 ", PROMOTION_TIMEOUT_SECONDS)
    expected = (
        rf"\d\d:\d\d:\d\d promoted app-staging:sha-1 {digest[:19]} dev-to-staging \(push app-dev:sha-1\)"
    )
    assert re.fullmatch(expected, line), line
    history = cli(running["env"], "history", "--repository", "app-staging", "--json")
    assert history.returncode == 0, history.stderr
    (record,) = json.loads(history.stdout)
    assert (record["outcome"], record["trigger"], record["digest"]) == ("promoted", "push", digest)
    # Attested with the stack's key, which promoter local created and printed (issue 19).
    assert record["attestation"].startswith("sha256:")
    verified = cli(running["env"], "attestation", "verify", "app-staging:sha-1", "--rule", "dev-to-staging")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The handler announces its result on the bus before it returns, so it is in the queue now.
    (message,) = sqs.receive_message(QueueUrl=results, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    announced = json.loads(message["Body"])
    assert announced["detail-type"] == settings.PROMOTED_DETAIL_TYPE
    assert announced["detail"]["target"]["repository-name"] == "app-staging"
    assert announced["detail"]["image-digest"] == digest


def test_a_request_on_the_printed_bus_is_answered_by_promoter_local(running):
    digest = push(running, "app-dev", "sha-2")
    wait_until_held(running["ecr"], "app-staging", "sha-2", digest)

    requested = cli(
        running["env"], "request", "--repository", "app-staging", "--tag", "sha-2", "--rule", "to-prod"
    )
    assert requested.returncode == 0, requested.stderr
    wait_until_held(running["ecr"], "app-prod", "sha-2", digest)
    expected = rf"promoted app-prod:sha-2 {digest[:19]} to-prod \(request app-staging:sha-2\)"
    running["terminal"].until(expected, PROMOTION_TIMEOUT_SECONDS)
    assert holds(running["ecr"], "app-qa", "sha-2") is None  # the request named its rule
    history = cli(running["env"], "history", "--repository", "app-prod", "--json")
    (record,) = json.loads(history.stdout)
    assert (record["outcome"], record["trigger"], record["digest"]) == ("promoted", "request", digest)


def test_a_dead_lettered_event_goes_back_through_redrive_with_the_printed_queues(running):
    digest = push(running, "app-dev", "sha-3")
    wait_until_held(running["ecr"], "app-staging", "sha-3", digest)
    env = running["env"]
    sqs = boto3.client(
        "sqs",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    # While the queue's policy refuses EventBridge too, the request cannot be delivered: EventBridge
    # puts it into the delivery dead-letter queue at once (nobody else may send there).
    found = sqs.get_queue_attributes(
        QueueUrl=env["PROMOTER_QUEUE_URL"], AttributeNames=["Policy", "QueueArn"]
    )
    closed = {"Version": "2012-10-17", "Statement": [nobody_sends(found["Attributes"]["QueueArn"])]}
    sqs.set_queue_attributes(QueueUrl=env["PROMOTER_QUEUE_URL"], Attributes={"Policy": json.dumps(closed)})
    requested = cli(env, "request", "--repository", "app-staging", "--tag", "sha-3", "--rule", "to-qa")
    assert requested.returncode == 0, requested.stderr
    sqs.set_queue_attributes(
        QueueUrl=env["PROMOTER_QUEUE_URL"], Attributes={"Policy": found["Attributes"]["Policy"]}
    )

    redriven = cli(env, "redrive", "--json")
    assert redriven.returncode == 0, redriven.stderr
    moved = {q["queue"]: q["moved"] for q in json.loads(redriven.stdout)["queues"]}
    assert moved == {"delivery": 1, "processing": 0}
    wait_until_held(running["ecr"], "app-qa", "sha-3", digest)
    running["terminal"].until(rf"promoted app-qa:sha-3 {digest[:19]} to-qa", PROMOTION_TIMEOUT_SECONDS)


def test_what_the_handler_cannot_promote_is_said_on_the_terminal(running):
    """A request for an image that does not exist prints its error; a message that is no event
    prints the handler's error and that it goes back to the queue (on its way to the DLQ)."""
    env = running["env"]
    requested = cli(
        env, "request", "--repository", "app-staging", "--tag", "sha-missing", "--rule", "to-prod"
    )
    assert requested.returncode == 0, requested.stderr
    running["terminal"].until(
        r"\d\d:\d\d:\d\d error \(event [0-9a-f-]+\): requested image app-staging:sha-missing does not exist",
        PROMOTION_TIMEOUT_SECONDS,
    )
    sqs = boto3.client(
        "sqs",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    sqs.send_message(QueueUrl=env["PROMOTER_QUEUE_URL"], MessageBody="not an event")
    running["terminal"].until(r".* ERROR not an EventBridge event: .*not JSON.*", PROMOTION_TIMEOUT_SECONDS)
    running["terminal"].until(
        r".* 1 of 1 message\(s\) back in the queue for 65 s, .*after 5 receives: the dead-letter queue.*",
        PROMOTION_TIMEOUT_SECONDS,
    )


def test_the_local_route_keeps_the_stacks_retry_settings():
    """The local promoter's numbers that stand for the stack's are the stack's."""
    from infra import construct
    from local_aws import stack_route
    from promoter_cli import local_promoter

    assert local_promoter.MAX_RECEIVE_COUNT == construct.MAX_RECEIVE_COUNT
    assert stack_route.TARGET_RETRY_ATTEMPTS == construct.TARGET_RETRY_ATTEMPTS
    assert construct.TARGET_MAX_EVENT_AGE.to_seconds() == stack_route.TARGET_MAX_EVENT_AGE_SECONDS


def test_the_stack_route_puts_requests_on_the_promotion_bus_and_watches_only_targets_without_push_rules(
    aws_env, unique_name
):
    """As infra/construct.py: without push rules, the push rule watches the targets only (issue 18:
    writes behind the promoter's back); the request rule on the promotion bus with the stack's
    pattern; the target dead-letters to the delivery DLQ."""
    from infra.event_patterns import request_event_pattern
    from local_aws.stack_route import queue_arn, route_stack
    from promoter.model.config import parse_config

    config = parse_config(
        {
            "rules": [
                {
                    "name": "to-prod",
                    "trigger": "request",
                    "source": {"repository": "app-staging", "tags": ["v*"]},
                    "targets": [{"repository": "app-prod"}, {"repository": "app-dr", "region": "eu-west-1"}],
                }
            ]
        }
    )
    sqs, events = boto3.client("sqs"), boto3.client("events")
    name = unique_name("route").replace("/", "-")
    route = route_stack(
        sqs,
        events,
        config,
        account=aws_env.account,
        queue_name=name,
        event_bus=f"{name}-bus",
        visibility_timeout_seconds=30,
        max_receive_count=5,
    )
    # On the default bus: app-prod's pushes, and trust material arriving in app-staging.
    pushes, trust = sorted(events.list_rules(NamePrefix=name)["Rules"], key=lambda r: r["Name"])
    assert pushes["Name"] == route.push_rule
    assert json.loads(pushes["EventPattern"])["detail"]["repository-name"] == ["app-prod"]
    assert trust["Name"] == f"{name}-trust-material"
    assert json.loads(trust["EventPattern"])["detail"]["repository-name"] == ["app-staging"]
    (rule,) = events.list_rules(NamePrefix=name, EventBusName=route.event_bus)["Rules"]
    assert json.loads(rule["EventPattern"]) == request_event_pattern()
    (target,) = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=route.event_bus)["Targets"]
    assert target["Arn"] == queue_arn(sqs, route.queue_url)
    assert target["DeadLetterConfig"]["Arn"] == queue_arn(sqs, route.delivery_dlq_url)
    redrive = json.loads(
        sqs.get_queue_attributes(QueueUrl=route.queue_url, AttributeNames=["RedrivePolicy"])["Attributes"][
            "RedrivePolicy"
        ]
    )
    assert redrive == {"deadLetterTargetArn": queue_arn(sqs, route.dlq_url), "maxReceiveCount": 5}
