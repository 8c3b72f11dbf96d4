"""Issue 5 on the local AWS: promotion requests, scan gates, forward-only floating tags, result
events and history, each through the engine the Lambda runs (idempotency, history and result
events included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from local_aws import images as im
from promoter import settings
from promoter.aws.gate_store import DynamoDbGates
from promoter.aws.history import DynamoDbHistory
from promoter.aws.idempotency import idempotent_runner, make_persistence
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.aws.results import EventBridgeResults
from promoter.model.config import parse_config
from promoter.model.events import ImagePushed, ImageScanned, PromotionRequested
from promoter.model.outcomes import BLOCKED, GATE_PENDING, GATE_TIMEOUT, KEPT, PROMOTED
from promoter.workflows import service
from promoter.workflows.promote import Promoter

pytestmark = pytest.mark.integration


def promoter_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`promoter ...` as a user runs it, on the standard AWS environment (the local AWS here)."""
    return subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


class Queue:
    """An EventBridge rule on the default bus -> an SQS queue: what a subscriber would receive."""

    def __init__(self, endpoint: str, pattern: dict[str, Any]) -> None:
        kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        self.sqs = boto3.client("sqs", **kw)
        events = boto3.client("events", **kw)
        name = f"rel-{uuid.uuid4().hex[:12]}"
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name=name, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])

    def drain(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            for msg in self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                got.append(json.loads(msg["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=msg["ReceiptHandle"])
        return got


def results_for(endpoint: str, target: str) -> Queue:
    """Result events about one target repository."""
    return Queue(
        endpoint,
        {
            "source": [settings.DEFAULT_REQUEST_EVENT_SOURCE],
            "detail-type": list(settings.RESULT_DETAIL_TYPES),
            "detail": {"target": {"repository-name": [target]}},
        },
    )


@pytest.fixture
def repos(ecr, unique_name) -> Callable[..., list[str]]:
    def make(*prefixes: str) -> list[str]:
        names = [unique_name(p) for p in prefixes]
        for name in names:
            ecr.create_repository(repositoryName=name)
        return names

    return make


@pytest.fixture
def engine(aws_env):
    """`engine(event, config)`: the Lambda's code path with its history, results and gates."""
    registry = EcrRegistry(make_ecr_client())
    run = idempotent_runner(Promoter(registry), make_persistence())
    history, results, gates = DynamoDbHistory(), EventBridgeResults(), DynamoDbGates()

    def handle(event, config):
        return service.handle_event(event, config, registry, run, history, results, gates)

    return handle


def target_digest(ecr, repository: str, tag: str) -> str | None:
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ImageNotFoundException:
        return None
    return found["imageDetails"][0]["imageDigest"]


def request_rule(source: str, target: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "release",
        "trigger": "request",
        "source": {"repository": source, "tags": ["*"]},
        "targets": [{"repository": target, "tags": ["{tag}"]}],
        **extra,
    }


# --- requests ---------------------------------------------------------------------------------


def test_a_request_by_tag_promotes_the_digest_the_tag_held_when_handled(ecr, pusher, repos, engine):
    source, target = repos("ci", "prod")
    tested = im.image((512,))
    pusher.push(source, tested, "rc")
    config = parse_config({"rules": [request_rule(source, target)]})
    request = PromotionRequested("req-1", source, "rc", requested_by="ci@example", reason="tests passed")

    result = engine(request, config)
    pusher.push(source, im.image((512,)), "rc")  # the tag moves on after the request was handled
    again = engine(PromotionRequested("req-2", source, "", digest=tested.digest, rule="release"), config)

    assert [(r.target_tag, r.outcome) for r in result.results] == [("rc", PROMOTED)]
    assert target_digest(ecr, target, "rc") == tested.digest
    # by digest alone, the image passes the tag filter only through a tag it carries: now none
    assert again.results == () and "no request rule matches" in (again.error or "")
    record = DynamoDbHistory().for_target(target, "rc")[-1]
    assert (record["trigger"], record["requested_by"], record["request_reason"]) == (
        "request",
        "ci@example",
        "tests passed",
    )
    assert record["source_digest"] == tested.digest


@pytest.mark.parametrize(
    ("rule", "tag", "message"),
    [
        ("nope", "v1", "unknown rule 'nope'"),
        ("on-push", "v1", "is a push rule, not a request rule"),
        (None, "missing", "does not exist"),
    ],
)
def test_bad_requests_get_a_failure_result_not_a_crash(pusher, repos, engine, rule, tag, message):
    source, target, staging = repos("ci", "prod", "staging")
    pusher.push(source, im.image((256,)), "v1")
    config = parse_config(
        {
            "rules": [
                request_rule(source, target),
                {
                    "name": "on-push",
                    "source": {"repository": source},
                    "targets": [{"repository": staging}],
                },
            ]
        }
    )
    result = engine(PromotionRequested("bad", source, tag, rule=rule), config)
    assert not result.succeeded and not result.retry
    assert message in result.error


def test_a_bad_request_answers_its_requester_with_a_failed_event(aws_env, pusher, repos, engine):
    source, target = repos("ci", "prod")
    pusher.push(source, im.image((256,)), "v1")
    failures = Queue(
        aws_env.endpoint,
        {
            "source": [settings.DEFAULT_REQUEST_EVENT_SOURCE],
            "detail-type": [settings.FAILED_DETAIL_TYPE],
            "detail": {"source": {"repository-name": [source]}},
        },
    )
    config = parse_config({"rules": [request_rule(source, target)]})

    engine(PromotionRequested("bad-2", source, "v1", rule="nope", requested_by="ci"), config)

    (event,) = failures.drain(1)
    assert event["detail"]["request-id"] == "bad-2" and event["detail"]["requested-by"] == "ci"
    assert "unknown rule 'nope'" in event["detail"]["outcome-reason"]


def test_the_request_cli_posts_the_contract_event_that_handle_then_promotes(
    aws_env, ecr, pusher, repos, tmp_path
):
    source, target = repos("ci", "prod")
    image = im.image((300,))
    pusher.push(source, image, "v9")
    inbox = Queue(
        aws_env.endpoint,
        {
            "source": [settings.DEFAULT_REQUEST_EVENT_SOURCE],
            "detail-type": [settings.REQUEST_DETAIL_TYPE],
            "detail": {"repository-name": [source]},
        },
    )
    config = tmp_path / "promotion.yaml"
    config.write_text(json.dumps({"rules": [request_rule(source, target)]}))

    posted = promoter_cli(
        "request", "--repository", source, "--tag", "v9", "--reason", "green", "--requested-by", "ci-bot",
        "--bus", "default",
    )  # fmt: skip
    assert posted.returncode == 0, posted.stderr
    (event,) = inbox.drain(1)
    assert event["detail"]["requested-by"] == "ci-bot" and event["detail"]["image-tag"] == "v9"
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    handled = promoter_cli("handle", "--json", str(event_file), "--config", str(config))
    history = promoter_cli("history", "--repository", target, "--json")

    assert handled.returncode == 0, handled.stdout + handled.stderr
    assert target_digest(ecr, target, "v9") == image.digest
    rows = json.loads(history.stdout)
    assert [(r["outcome"], r["trigger"], r["by"], r["digest"]) for r in rows] == [
        ("promoted", "request", "ci-bot", image.digest)
    ]
    table = promoter_cli("history", "--repository", target, "--tag", "v9").stdout
    assert table.splitlines()[0].split()[:4] == ["WHEN", "OUTCOME", "TRIGGER", "RULE"]
    assert "promoted" in table.splitlines()[1]


def test_promote_cli_is_a_manual_one_off_through_idempotency_history_and_results(aws_env, ecr, pusher, repos):
    source, target = repos("hot", "prod")
    image = im.image((400,))
    pusher.push(source, image, "fix-1")
    results = results_for(aws_env.endpoint, target)

    first = promoter_cli(
        "promote", "--json", f"{source}:fix-1", "--to", f"{target}:fix-1,hotfix", "--reason", "outage"
    )
    second = promoter_cli("promote", "--json", f"{source}@{image.digest}", "--to", f"{target}:hotfix")
    by_digest_without_tags = promoter_cli("promote", "--json", f"{source}@{image.digest}", "--to", target)

    assert first.returncode == 0, first.stderr
    assert [(a["target_tag"], a["outcome"]) for a in json.loads(first.stdout)["actions"]] == [
        ("fix-1", PROMOTED),
        ("hotfix", PROMOTED),
    ]
    # the same promotion again: answered from its idempotency record, nothing done twice
    assert [(a["outcome"], a["replayed"]) for a in json.loads(second.stdout)["actions"]] == [(PROMOTED, True)]
    assert by_digest_without_tags.returncode == 2
    assert target_digest(ecr, target, "hotfix") == image.digest
    record = DynamoDbHistory().for_target(target, "hotfix")[0]
    assert (record["trigger"], record["rule"], record["request_reason"]) == ("manual", "manual", "outage")
    announced = results.drain(3, timeout=1.5)  # a replayed result is not announced again
    assert sorted(e["detail"]["outcome"] for e in announced) == [PROMOTED, PROMOTED]
    assert {e["detail"]["trigger"] for e in announced} == {"manual"}


# --- results ----------------------------------------------------------------------------------


def test_every_action_is_announced_and_no_result_matches_the_request_rule(aws_env, pusher, repos, engine):
    source, target = repos("ci", "prod")
    image = im.image((128,))
    pusher.push(source, image, "v1")
    results = results_for(aws_env.endpoint, target)
    requests = Queue(
        aws_env.endpoint,
        {"source": [settings.DEFAULT_REQUEST_EVENT_SOURCE], "detail-type": [settings.REQUEST_DETAIL_TYPE]},
    )
    config = parse_config({"rules": [request_rule(source, target)]})

    engine(PromotionRequested("req-r", source, "v1", requested_by="me", reason="why"), config)

    (event,) = results.drain(1)
    assert event["detail-type"] == settings.PROMOTED_DETAIL_TYPE
    detail = event["detail"]
    assert detail["source"] == {"repository-name": source, "image-tag": "v1", "image-digest": image.digest}
    assert detail["target"]["repository-name"] == target and detail["tags"] == ["v1"]
    assert (detail["image-digest"], detail["rule"], detail["trigger"], detail["request-id"]) == (
        image.digest,
        "release",
        "request",
        "req-r",
    )
    assert detail["outcome"] == PROMOTED
    assert requests.drain(1, timeout=0.5) == []


# --- scan gates -------------------------------------------------------------------------------


def gated(source: str, target: str, **scan: Any) -> Any:
    return parse_config(
        {"rules": [request_rule(source, target, require={"scan": {"max_severity": "HIGH", **scan}})]}
    )


def test_a_blocking_finding_stops_the_promotion_and_says_which_counts(aws_env, ecr, pusher, repos, engine):
    source, target = repos("ci", "prod")
    image = im.image((64,))
    pusher.push(source, image, "v1")
    findings = [{"name": "CVE-1", "severity": "CRITICAL"}] * 2 + [{"name": "CVE-2", "severity": "HIGH"}]
    aws_env.control.set_scan_findings(source, image.digest, findings)
    results = results_for(aws_env.endpoint, target)

    result = engine(PromotionRequested("g1", source, "v1"), gated(source, target))

    (blocked,) = result.results
    assert blocked.outcome == BLOCKED and blocked.blocking_findings == {"CRITICAL": 2}
    assert "2 CRITICAL" in blocked.reason
    assert target_digest(ecr, target, "v1") is None
    (event,) = results.drain(1)
    assert event["detail-type"] == settings.BLOCKED_DETAIL_TYPE
    assert event["detail"]["finding-severity-counts"] == {"CRITICAL": 2}


def test_findings_up_to_the_threshold_pass(aws_env, ecr, pusher, repos, engine):
    source, target = repos("ci", "prod")
    image = im.image((64,))
    pusher.push(source, image, "v1")
    aws_env.control.set_scan_findings(source, image.digest, [{"name": "CVE-3", "severity": "HIGH"}])

    result = engine(PromotionRequested("g2", source, "v1"), gated(source, target))

    assert [r.outcome for r in result.results] == [PROMOTED]
    assert target_digest(ecr, target, "v1") == image.digest


def test_an_unscanned_image_waits_and_resumes_on_its_scan_event(aws_env, ecr, pusher, repos, engine):
    source, target = repos("ci", "prod")
    image = im.image((64,))
    pusher.push(source, image, "v1")
    config = gated(source, target)

    waiting = engine(PromotionRequested("g3", source, "v1", requested_by="ci"), config)
    pusher.push(source, im.image((64,)), "v1")  # the tag moves while the scan runs
    aws_env.control.set_scan_findings(source, image.digest, [{"name": "CVE-4", "severity": "LOW"}])
    resumed = engine(ImageScanned("scan-1", source, image.digest, "COMPLETE"), config)
    duplicate = engine(ImageScanned("scan-2", source, image.digest, "COMPLETE"), config)

    assert [r.outcome for r in waiting.results] == [GATE_PENDING]
    assert [r.outcome for r in resumed.results] == [PROMOTED]
    assert target_digest(ecr, target, "v1") == image.digest  # what was requested, not the new v1
    assert duplicate.results == () and "no promotion waits" in duplicate.ignored_reason
    outcomes = [i["outcome"] for i in DynamoDbHistory().for_target(target, "v1")]
    assert outcomes == [GATE_PENDING, PROMOTED]


def test_a_scan_that_never_completes_ends_in_gate_timeout_on_the_sweep(
    aws_env, ecr, pusher, repos, engine, monkeypatch
):
    source, target = repos("ci", "prod")
    image = im.image((64,))
    pusher.push(source, image, "v1")
    config = gated(source, target, timeout_minutes=1)
    engine(PromotionRequested("g4", source, "v1"), config)

    later = time.time() + 120
    monkeypatch.setattr(service, "clock", lambda: later)
    registry = EcrRegistry(make_ecr_client())
    run = idempotent_runner(Promoter(registry), make_persistence())
    swept = service.sweep_gates(
        config, registry, run, DynamoDbGates(), DynamoDbHistory(), EventBridgeResults()
    )
    again = service.sweep_gates(config, registry, run, DynamoDbGates())

    mine = [r for r in swept.results if r.target_repository == target]
    assert [r.outcome for r in mine] == [GATE_TIMEOUT]
    assert not [r for r in again.results if r.target_repository == target]
    assert target_digest(ecr, target, "v1") is None


# --- floating tags ----------------------------------------------------------------------------


def test_floating_tags_only_move_forward_and_pre_releases_never_move_them(ecr, pusher, repos, engine):
    source, target = repos("build", "release")
    config = parse_config(
        {
            "rules": [
                {
                    "name": "semver",
                    "source": {"repository": source, "tags": ["*.*.*"]},
                    "targets": [
                        {"repository": target, "tags": ["{tag}", "{major}.{minor}", "{major}", "latest"]}
                    ],
                }
            ]
        }
    )
    images = {}
    outcomes = {}
    for version in ("1.4.3", "1.4.2", "1.5.0-rc.1", "1.5.0"):
        images[version] = im.image((96,))
        pusher.push(source, images[version], version)
        result = engine(ImagePushed(f"push-{version}", source, images[version].digest, version), config)
        outcomes[version] = {r.target_tag: r.outcome for r in result.results}
        if version == "1.4.2":
            kept = [r for r in result.results if r.outcome == KEPT]
            assert kept and all("stays on 1.4.3: 1.4.2 is not newer" in r.reason for r in kept)
            assert target_digest(ecr, target, "1.4") == images["1.4.3"].digest
        if version == "1.5.0-rc.1":
            assert target_digest(ecr, target, "1") == images["1.4.3"].digest

    # Kept back by design is a success (issue 10): `kept`, never `skipped`.
    assert outcomes["1.4.2"] == {"1.4.2": PROMOTED, "1.4": KEPT, "1": KEPT, "latest": KEPT}
    assert outcomes["1.5.0-rc.1"] == {"1.5.0-rc.1": PROMOTED, "1.5": KEPT, "1": KEPT, "latest": KEPT}
    assert outcomes["1.5.0"] == {"1.5.0": PROMOTED, "1.5": PROMOTED, "1": PROMOTED, "latest": PROMOTED}
    assert target_digest(ecr, target, "1.4") == images["1.4.3"].digest
    assert target_digest(ecr, target, "latest") == images["1.5.0"].digest


# --- the Lambda -------------------------------------------------------------------------------


def test_the_lambda_handles_a_request_with_the_same_history_and_results(
    aws_env, ecr, pusher, repos, tmp_path, monkeypatch
):
    from dataclasses import dataclass

    from promoter import handler

    @dataclass
    class Context:  # the attributes Powertools reads from a Lambda context
        function_name: str = "image-promoter"
        function_version: str = "$LATEST"
        memory_limit_in_mb: int = 512
        invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:image-promoter"
        aws_request_id: str = "req-release"

        def get_remaining_time_in_millis(self) -> int:
            return 120_000

    source, target = repos("ci", "prod")
    image = im.image((200,))
    pusher.push(source, image, "v2")
    staged = tmp_path / settings.STAGED_CONFIG_FILE
    staged.write_text(json.dumps({"rules": [request_rule(source, target)]}))
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(staged))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    results = results_for(aws_env.endpoint, target)
    request = {
        "version": "0",
        "id": "lambda-req-1",
        "source": settings.DEFAULT_REQUEST_EVENT_SOURCE,
        "detail-type": settings.REQUEST_DETAIL_TYPE,
        "account": "000000000000",
        "time": "2026-11-26T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "repository-name": source,
            "image-tag": "v2",
            "requested-by": "pipeline",
            "reason": "green",
        },
    }
    batch = {
        "Records": [{"messageId": "m1", "receiptHandle": "h1", "body": json.dumps(request), "attributes": {}}]
    }

    handler.runtime.cache_clear()
    try:
        response = handler.handle_queue(batch, Context())
    finally:
        handler.runtime.cache_clear()

    assert response == {"batchItemFailures": []}
    assert target_digest(ecr, target, "v2") == image.digest
    (record,) = DynamoDbHistory().for_target(target, "v2")
    assert (record["trigger"], record["request_id"], record["requested_by"]) == (
        "request",
        "lambda-req-1",
        "pipeline",
    )
    (event,) = results.drain(1)
    assert (event["detail"]["request-id"], event["detail"]["outcome"]) == ("lambda-req-1", PROMOTED)
