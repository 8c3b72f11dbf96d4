"""Writes behind the promoter's back (issue 18.3), on the local AWS with the Lambda handler fed the
push events the local ECR really emits: a tag of an unprotected target written by someone else is
announced on the bus, counted (`OutOfBandWrites`), recorded in the history and shown by `status` as
`foreign`, and the reconciliation repairs it and says so; the promoter's own writes are never
flagged, not even when their push event is handled while the promotion is still running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import boto3
import pytest

from local_aws import images as im
from promoter import handler, settings
from promoter.aws.history import DynamoDbHistory
from promoter.aws.idempotency import idempotent_runner, make_persistence
from promoter.aws.ledger import IdempotencyLedger
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.metrics import OUT_OF_BAND_WRITES_METRIC
from promoter.model.config import load_config
from promoter.model.events import ImagePushed, parse_event
from promoter.model.manifests import Manifest
from promoter.model.outcomes import FOREIGN, PROMOTED
from promoter.workflows.out_of_band import push_check
from promoter.workflows.promote import Promoter
from promoter.workflows.service import EventResult, handle_event

pytestmark = pytest.mark.integration

PROMOTER = [sys.executable, "-m", "promoter_cli.main"]
# Bound on waiting for an event the local AWS routes (it ends as soon as the event is there).
EVENT_TIMEOUT_SECONDS = 10.0


class Context:
    """The attributes Powertools reads from a Lambda context (a value, not a mock of the handler)."""

    function_name = "image-promoter"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:image-promoter"
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/image-promoter"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


class BusCapture:
    """A rule on the promoter's bus for one detail-type, into a queue of its own."""

    def __init__(self, endpoint: str, detail_type: str) -> None:
        kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        self.sqs, events = boto3.client("sqs", **kw), boto3.client("events", **kw)
        name = f"oob-{uuid.uuid4().hex[:12]}"
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(Name=name, EventPattern=json.dumps({"detail-type": [detail_type]}))
        events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])

    def drain(self) -> list[dict[str, Any]]:
        """Everything delivered so far (PutEvents routes before it returns on the local AWS)."""
        got = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return got
            for message in messages:
                got.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def chain(aws_env, ecr, unique_name, tmp_path, monkeypatch, capture_events):
    """dev -(push v*)-> staging, staged for the handler; the push events of both, and the bus."""
    dev, staging = unique_name("dev"), unique_name("staging")
    for name in (dev, staging):
        ecr.create_repository(repositoryName=name)
    config = tmp_path / "promotion.yaml"
    config.write_text(
        f"rules:\n  - name: to-staging\n    source: {{repository: {dev}, tags: ['v*']}}\n"
        f"    targets: [{{repository: {staging}}}]\n"
    )
    staged = tmp_path / settings.STAGED_CONFIG_FILE
    staged.write_text(load_config(config).to_json())
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(staged))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    handler.runtime.cache_clear()
    pushes = {dev: capture_events(dev), staging: capture_events(staging)}
    bus = BusCapture(aws_env.endpoint, settings.OUT_OF_BAND_DETAIL_TYPE)
    yield dev, staging, str(config), pushes, bus
    handler.runtime.cache_clear()


def push_event(pushes, repository: str, digest: str) -> dict[str, Any]:
    """The local ECR's tagged push event of `digest` into `repository` (waits for it to be routed)."""
    events = pushes[repository].wait(1, timeout=EVENT_TIMEOUT_SECONDS)
    found = [e for e in events if e["detail"]["image-digest"] == digest and e["detail"].get("image-tag")]
    assert found, f"no push event of {digest} in {repository}: {events}"
    return found[0]


def handle(event: dict[str, Any], capsys) -> list[dict[str, Any]]:
    """The Lambda handler on one SQS record holding `event`; the EMF metric documents it printed."""
    capsys.readouterr()
    record = {
        "messageId": "msg-0",
        "receiptHandle": "handle-0",
        "body": json.dumps(event),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:promotions",
        "awsRegion": "us-east-1",
    }
    assert handler.handle_queue({"Records": [record]}, Context()) == {"batchItemFailures": []}
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


def counted(emf: list[dict[str, Any]]) -> float:
    return sum(sum(doc.get(OUT_OF_BAND_WRITES_METRIC, [])) for doc in emf)


def promote(pusher, pushes, dev: str, image: im.Image, capsys) -> None:
    pusher.push(dev, image, "v1")
    handle(push_event(pushes, dev, image.digest), capsys)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args], env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


def test_the_promoters_own_write_is_never_flagged(chain, pusher, ecr, capsys):
    dev, staging, _config, pushes, bus = chain
    image = im.image((256,))
    promote(pusher, pushes, dev, image, capsys)

    own = push_event(pushes, staging, image.digest)  # the promoter's PutImage into the target
    emf = handle(own, capsys)

    assert counted(emf) == 0
    assert bus.drain() == []
    outcomes = [r["outcome"] for r in DynamoDbHistory().for_target(staging, "v1")]
    assert outcomes == [PROMOTED]


def test_a_push_handled_while_its_promotion_still_runs_is_the_promoters(chain, pusher, ecr, aws_env):
    """The worst ordering: the target's push event is handled right after the promotion's PutImage,
    before its idempotency record is completed and before any history record exists. The record
    Powertools wrote before the promotion started (INPROGRESS) explains it."""
    dev, staging, config_path, pushes, bus = chain
    config = load_config(config_path)
    persistence = make_persistence()
    history = DynamoDbHistory()
    seen: list[EventResult] = []

    class HandlesItsPushAtOnce(EcrRegistry):
        """The local ECR's registry, handling the target's push event as soon as the tag is put."""

        def put_manifest(self, repository: str, manifest: Manifest, tag: str | None) -> bool:
            put = super().put_manifest(repository, manifest, tag)
            if repository == staging and tag:
                assert history.for_target(staging, tag) == []  # nothing recorded yet
                event = parse_event(push_event(pushes, staging, manifest.digest))
                assert isinstance(event, ImagePushed)
                check = push_check(config, IdempotencyLedger(persistence), history)
                seen.append(handle_event(event, config, self, run, history, None, out_of_band=check))
            return put

    registry = HandlesItsPushAtOnce(make_ecr_client())
    run = idempotent_runner(Promoter(registry), persistence)
    image = im.image((256,))
    pusher.push(dev, image, "v1")
    pushed = parse_event(push_event(pushes, dev, image.digest))

    result = handle_event(
        pushed,
        config,
        registry,
        run,
        history,
        None,
        out_of_band=push_check(config, IdempotencyLedger(persistence), history),
    )

    assert [r.outcome for r in result.results] == [PROMOTED]
    (during,) = seen
    assert [r.outcome for r in during.results] == []  # no rule takes staging's pushes; nothing foreign
    assert [r["outcome"] for r in history.for_target(staging, "v1")] == [PROMOTED]
    assert bus.drain() == []


def test_a_write_outside_the_promoter_is_announced_counted_recorded_shown_and_repaired(
    chain, pusher, ecr, capsys
):
    dev, staging, config, pushes, bus = chain
    promoted, foreign = im.image((256,)), im.image((512,))
    promote(pusher, pushes, dev, promoted, capsys)
    handle(push_event(pushes, staging, promoted.digest), capsys)  # the promoter's own: not flagged

    pusher.push(staging, foreign, "v1")  # by hand, with the account's credentials
    event = push_event(pushes, staging, foreign.digest)
    emf = handle(event, capsys)

    assert counted(emf) == 1
    (announced,) = bus.drain()
    assert announced["detail-type"] == "Image Written Outside The Promoter"
    detail = announced["detail"]
    assert (detail["repository-name"], detail["image-tag"], detail["image-digest"]) == (
        staging,
        "v1",
        foreign.digest,
    )
    assert detail["time"] == event["time"]
    assert detail["expected-digest"] == promoted.digest
    records = DynamoDbHistory().for_target(staging, "v1", newest_first=True)
    assert (records[0]["outcome"], records[0]["target_digest"]) == (FOREIGN, foreign.digest)
    assert promoted.digest in records[0]["reason"]

    status = cli("status", "--config", config, "--json")
    assert status.returncode == 0, status.stderr
    (rule,) = json.loads(status.stdout)["rules"]
    (target,) = rule["targets"]
    assert (target["holds"], target["state"]) == (foreign.digest, FOREIGN)
    assert "foreign" in cli("status", "--config", config).stdout

    repaired = cli("reconcile", "--config", config, "--json")
    assert repaired.returncode == 0, repaired.stderr
    (result,) = json.loads(repaired.stdout)["results"]
    assert result["outcome"] == PROMOTED
    assert result["reason"].startswith("repaired an out-of-band write")
    assert foreign.digest in result["reason"]
    held = ecr.batch_get_image(repositoryName=staging, imageIds=[{"imageTag": "v1"}])["images"]
    assert held[0]["imageId"]["imageDigest"] == promoted.digest
    # The reconciliation's own write is the promoter's too.
    emf = handle(push_event(pushes, staging, promoted.digest), capsys)
    assert counted(emf) == 0
    assert bus.drain() == []


def test_a_break_glass_promote_and_a_rollback_are_the_promoters_too(chain, pusher, ecr, capsys):
    """`promoter promote` runs under the idempotency record of its `manual` action; a rollback
    restores a digest the history shows the promoter placed on that tag before."""
    dev, staging, _config, pushes, bus = chain
    first, second = im.image((256,)), im.image((384,))
    promote(pusher, pushes, dev, first, capsys)
    handle(push_event(pushes, staging, first.digest), capsys)
    pusher.push(dev, second, "v2")

    manual = cli("promote", f"{dev}:v2", "--to", f"{staging}:v1", "--reason", "hotfix")
    assert manual.returncode == 0, manual.stderr
    emf = handle(push_event(pushes, staging, second.digest), capsys)
    assert counted(emf) == 0

    rolled = cli("rollback", "--repository", staging, "--tag", "v1", "--reason", "bad hotfix")
    assert rolled.returncode == 0, rolled.stderr
    held = ecr.batch_get_image(repositoryName=staging, imageIds=[{"imageTag": "v1"}])["images"]
    assert held[0]["imageId"]["imageDigest"] == first.digest
    emf = handle(push_event(pushes, staging, first.digest), capsys)

    assert counted(emf) == 0
    assert bus.drain() == []
    assert FOREIGN not in [r["outcome"] for r in DynamoDbHistory().for_target(staging, "v1")]


def test_promoter_handle_checks_a_push_as_the_lambda_does(chain, pusher, ecr):
    """The command-line twin of the handler: the same check, the same record; exit 1, since the
    event shows something went around the promoter."""
    _dev, staging, config, pushes, _bus = chain
    foreign = im.image((256,))
    pusher.push(staging, foreign, "v9")
    event = push_event(pushes, staging, foreign.digest)

    handled = subprocess.run(
        [*PROMOTER, "handle", "-", "--config", config, "--json"],
        env=dict(os.environ),
        input=json.dumps(event),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert handled.returncode == 1, handled.stderr
    (action,) = json.loads(handled.stdout)["actions"]
    assert (action["outcome"], action["target_digest"], action["expected_digest"]) == (
        FOREIGN,
        foreign.digest,
        None,
    )
    assert "never placed an image there" in action["reason"]
    (record,) = DynamoDbHistory().for_target(staging, "v9")
    assert record["outcome"] == FOREIGN
