"""Issue 10 on the local AWS: requests bound to the tested image, targets that converge on the newest
intent (engine, idempotency records, reconcile), rollback that cannot lose work, outcomes that mean
what they say, and command-line in-progress records that expire."""

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
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

from local_aws import images as im
from promoter import settings
from promoter.aws.history import DynamoDbHistory
from promoter.aws.idempotency import (
    CLI_IN_PROGRESS_SECONDS,
    IDEMPOTENCY_KEY_JMESPATH,
    IDEMPOTENCY_KEY_PREFIX,
    idempotent_runner,
    make_persistence,
)
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.aws.results import EventBridgeResults
from promoter.exceptions import PromoterError, PromotionInProgressError
from promoter.model.config import parse_config
from promoter.model.events import ImagePushed, PromotionRequested
from promoter.model.outcomes import KEPT, PROMOTED, TRUNCATION_MARKER
from promoter.model.plan import plan_event
from promoter.workflows import service
from promoter.workflows.promote import Promoter
from promoter.workflows.reconcile import reconcile
from promoter.workflows.rollback import RollbackTarget, rollback, rollback_hold

pytestmark = pytest.mark.integration

ECR_WRITES = frozenset({"PutImage", "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload"})


def promoter_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def held(ecr, repository: str, tag: str) -> str | None:
    images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return images[0]["imageId"]["imageDigest"] if images else None


def writes(calls: dict[str, int]) -> dict[str, int]:
    return {op: n for op, n in calls.items() if op in ECR_WRITES}


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
    """`engine(event, config)`: the Lambda's code path (idempotency, history, result events)."""
    registry = EcrRegistry(make_ecr_client())
    run = idempotent_runner(Promoter(registry), make_persistence())

    def handle(event, config):
        return service.handle_event(event, config, registry, run, DynamoDbHistory(), EventBridgeResults())

    return handle


def pushed(pusher, repository: str, tag: str, size: int = 128) -> str:
    image = im.image((size,))
    pusher.push(repository, image, tag)
    return image.digest


def push_rule(source: str, target: str, source_tags: list[str], target_tags: list[str]) -> Any:
    rule = {
        "name": "ship",
        "source": {"repository": source, "tags": source_tags},
        "targets": [{"repository": target, "tags": target_tags}],
    }
    return parse_config({"rules": [rule]})


def request_config(source: str, target: str, source_tags: list[str], target_tags: list[str]) -> Any:
    rule = {
        "name": "release",
        "trigger": "request",
        "source": {"repository": source, "tags": source_tags},
        "targets": [{"repository": target, "tags": target_tags}],
    }
    return parse_config({"rules": [rule]})


# --- 1. requests bound to the tested image ----------------------------------------------------


def test_a_request_whose_tag_does_not_point_at_its_digest_fails_naming_both_and_writes_nothing(
    aws_env, ecr, pusher, repos, engine
):
    source, target = repos("ci", "prod")
    tested = pushed(pusher, source, "rc-1")
    pushed(pusher, source, "v9.9.9")  # an image nobody tested carries the release tag
    config = request_config(source, target, ["v*"], ["{tag}", "{major}"])
    aws_env.control.reset_calls()

    result = engine(PromotionRequested("bad-pair", source, "v9.9.9", digest=tested), config)

    assert result.results == () and not result.succeeded
    assert f"{source}:v9.9.9" in result.error and tested in result.error
    assert aws_env.control.calls() == {"BatchGetImage": 1}  # one read binds the pair; no write
    assert held(ecr, target, "v9.9.9") is None and held(ecr, target, "9") is None


def test_a_request_whose_tag_points_at_its_digest_promotes_after_one_read_of_the_pair(
    aws_env, ecr, pusher, repos, engine
):
    source, target = repos("ci", "prod")
    tested = pushed(pusher, source, "v1.2.3")
    config = request_config(source, target, ["v*"], ["{tag}"])

    result = engine(PromotionRequested("good-pair", source, "v1.2.3", digest=tested), config)

    assert [(r.target_tag, r.outcome) for r in result.results] == [("v1.2.3", PROMOTED)]
    assert held(ecr, target, "v1.2.3") == tested


def test_a_request_by_digest_alone_passes_the_tag_filter_only_through_a_tag_the_image_carries(
    ecr, pusher, repos, engine
):
    source, target = repos("ci", "prod")
    untested = pushed(pusher, source, "scratch")  # a tag the rule does not take
    released = pushed(pusher, source, "v3")
    config = request_config(source, target, ["v*"], ["current"])

    refused = engine(PromotionRequested("by-digest-1", source, "", digest=untested), config)
    accepted = engine(PromotionRequested("by-digest-2", source, "", digest=released), config)

    assert refused.results == () and "no request rule matches" in refused.error
    assert [(r.source_tag, r.target_tag, r.outcome) for r in accepted.results] == [
        ("v3", "current", PROMOTED)
    ]
    assert held(ecr, target, "current") == released


def test_a_request_by_digest_alone_is_refused_as_ambiguous_when_tag_templates_see_several_tags(
    ecr, pusher, repos, engine
):
    source, target = repos("ci", "prod")
    image = im.image((128,))
    pusher.push(source, image, "v1.0.0")
    pusher.push(source, image, "v2.0.0")  # one image, two release tags
    config = request_config(source, target, ["v*"], ["{tag}"])

    result = engine(PromotionRequested("ambiguous", source, "", digest=image.digest), config)

    assert result.results == () and "ambiguous" in result.error
    assert "v1.0.0, v2.0.0" in result.error
    assert ecr.list_images(repositoryName=target)["imageIds"] == []


def test_the_request_cli_posts_tag_and_digest_together_and_handle_refuses_a_moved_tag(
    aws_env, ecr, pusher, repos, tmp_path
):
    source, target = repos("ci", "prod")
    tested = pushed(pusher, source, "v5")
    inbox = _queue(
        aws_env.endpoint,
        {"source": [settings.DEFAULT_REQUEST_EVENT_SOURCE], "detail": {"repository-name": [source]}},
    )
    config_file = tmp_path / "promotion.json"
    rule = {"name": "release", "trigger": "request", "source": {"repository": source, "tags": ["v*"]},
            "targets": [{"repository": target, "tags": ["{tag}"]}]}  # fmt: skip
    config_file.write_text(json.dumps({"rules": [rule]}))

    posted = promoter_cli(
        "request", "--repository", source, "--tag", "v5", "--digest", tested, "--bus", "default"
    )
    assert posted.returncode == 0, posted.stderr
    (event,) = _drain(inbox, 1)
    assert (event["detail"]["image-tag"], event["detail"]["image-digest"]) == ("v5", tested)
    pushed(pusher, source, "v5")  # the tag moves on before the request is handled
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    handled = promoter_cli("handle", "--json", str(event_file), "--config", str(config_file))

    assert handled.returncode == 1
    assert "does not point at the requested digest" in json.loads(handled.stdout)["error"]
    assert held(ecr, target, "v5") is None


# --- 3. convergence ---------------------------------------------------------------------------


def test_a_late_push_event_never_moves_a_target_tag_back_to_an_older_image(
    aws_env, ecr, pusher, repos, engine
):
    source, target = repos("dev", "prod")
    config = push_rule(source, target, ["sha-*"], ["latest"])
    older = pushed(pusher, source, "sha-1")
    newer = pushed(pusher, source, "sha-2")
    engine(ImagePushed("push-2", source, newer, "sha-2"), config)
    aws_env.control.reset_calls()

    late = engine(ImagePushed("push-1", source, older, "sha-1"), config)

    assert [(r.outcome, r.target_digest) for r in late.results] == [(KEPT, newer)]
    assert late.succeeded
    assert held(ecr, target, "latest") == newer
    assert "PutImage" not in aws_env.control.calls()


def test_a_redelivered_event_repairs_a_target_tag_moved_out_of_band_and_a_replay_costs_one_read(
    aws_env, ecr, pusher, repos, engine
):
    source, target = repos("dev", "prod")
    config = push_rule(source, target, ["sha-*"], ["latest"])
    image = pushed(pusher, source, "sha-1")
    event = ImagePushed("push-1", source, image, "sha-1")
    engine(event, config)
    aws_env.control.reset_calls()

    replay = engine(event, config)

    assert [r.replayed for r in replay.results] == [True]
    assert aws_env.control.calls() == {"BatchGetImage": 1}  # the target tag, checked; nothing else
    pushed(pusher, target, "latest")  # moved out of band; the record still says "promoted"

    repaired = engine(event, config)

    assert [(r.outcome, r.replayed) for r in repaired.results] == [(PROMOTED, False)]
    assert held(ecr, target, "latest") == image


def test_two_runs_that_find_the_same_stale_record_do_the_work_once(aws_env, ecr, pusher, repos, engine):
    source, target = repos("dev", "prod")
    config = push_rule(source, target, ["sha-*"], ["latest"])
    image = pushed(pusher, source, "sha-1")
    engine(ImagePushed("push-1", source, image, "sha-1"), config)
    pushed(pusher, target, "latest")  # moved out of band: the record is stale for both runs below
    (action,) = plan_event(ImagePushed("push-1", source, image, "sha-1"), config).actions
    registry = EcrRegistry(make_ecr_client())
    persistence = make_persistence()
    second: dict[str, Any] = {}

    class SecondRunMidway(Promoter):
        """The first run's promotion; while it is under way, a second delivery of the same action."""

        def promote(self, action):  # type: ignore[no-untyped-def]
            try:
                second["result"] = idempotent_runner(Promoter(registry), persistence)(action)
            except PromoterError as exc:
                second["error"] = exc
            return super().promote(action)

    aws_env.control.reset_calls()
    first = idempotent_runner(SecondRunMidway(registry), persistence)(action)

    assert first.outcome == PROMOTED and not first.replayed
    assert isinstance(second.get("error"), PromotionInProgressError)  # turned away, to be retried
    assert aws_env.control.calls()["PutImage"] == 1  # the tag was put back once
    assert held(ecr, target, "latest") == image


def test_reconcile_repairs_out_of_band_drift(aws_env, ecr, pusher, repos, engine):
    source, target = repos("dev", "prod")
    config = push_rule(source, target, ["sha-*"], ["latest"])
    image = pushed(pusher, source, "sha-1")
    engine(ImagePushed("push-1", source, image, "sha-1"), config)
    pushed(pusher, target, "latest")  # someone moved it by hand
    registry = EcrRegistry(make_ecr_client())
    history = DynamoDbHistory()

    report = reconcile(
        config,
        registry,
        idempotent_runner(Promoter(registry), make_persistence()),
        history=history,
        hold_back=rollback_hold(history),
    )

    assert [(r.outcome, r.replayed) for r in report.results] == [(PROMOTED, False)]
    assert held(ecr, target, "latest") == image


def test_reconcile_agrees_with_the_engine_on_floating_tags(aws_env, ecr, pusher, repos, engine):
    source, target = repos("build", "release")
    config = push_rule(source, target, ["*.*.*"], ["{tag}", "{major}"])
    digests = {}
    for version in ("1.4.3", "1.4.2"):  # a backport, pushed last
        digests[version] = pushed(pusher, source, version)
        engine(ImagePushed(f"push-{version}", source, digests[version], version), config)
    assert held(ecr, target, "1") == digests["1.4.3"]
    registry = EcrRegistry(make_ecr_client())
    aws_env.control.reset_calls()

    report = reconcile(config, registry, idempotent_runner(Promoter(registry), make_persistence()))
    dry = promoter_cli("reconcile", "--dry-run", "--json", "--config", _config_file(config, source, target))

    assert report.succeeded and report.results == ()  # nothing to do, nothing reported
    assert writes(aws_env.control.calls()) == {}
    assert held(ecr, target, "1") == digests["1.4.3"]
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["results"] == []


def _config_file(config: Any, source: str, target: str) -> str:
    path = f"/tmp/promoter-{uuid.uuid4().hex}.json"
    rule = config.rules[0]
    data = {
        "rules": [
            {
                "name": rule.name,
                "source": {"repository": source, "tags": list(rule.source.tags)},
                "targets": [{"repository": target, "tags": list(t.tags)} for t in rule.targets],
            }
        ]
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file)
    return path


# --- 4. rollback ------------------------------------------------------------------------------


@pytest.fixture
def released(aws_env, ecr, pusher, repos, engine):
    """`prod:current` promoted from v1, v2, v3 (push events, in order)."""
    source, target = repos("stage", "prod")
    config = push_rule(source, target, ["v*"], ["current"])
    digests = {}
    for tag in ("v1", "v2", "v3"):
        digests[tag] = pushed(pusher, source, tag)
        engine(ImagePushed(f"push-{tag}-{uuid.uuid4()}", source, digests[tag], tag), config)
    return source, target, digests, config


def test_a_promotion_that_lands_while_a_rollback_runs_wins_and_the_rollback_says_so(
    aws_env, ecr, pusher, released, engine
):
    source, target, _digests, config = released
    registry = EcrRegistry(make_ecr_client())
    newest = pushed(pusher, source, "v4")

    class PromotionDuringRollback:
        """The real registry; right after rollback's first read of the tag, v4's event is handled."""

        def __init__(self) -> None:
            self.fired = False

        def __getattr__(self, name: str) -> Any:
            return getattr(registry, name)

        def get_manifests(self, repository: str, references: list[str]) -> Any:
            found = registry.get_manifests(repository, references)
            if not self.fired:
                self.fired = True
                engine(ImagePushed("push-v4", source, newest, "v4"), config)
            return found

    from promoter.exceptions import RollbackSupersededError

    with pytest.raises(RollbackSupersededError, match="while the rollback ran"):
        rollback(RollbackTarget(target, "current"), PromotionDuringRollback(), DynamoDbHistory())

    assert held(ecr, target, "current") == newest  # the promotion was not lost
    outcomes = [r["outcome"] for r in DynamoDbHistory().for_target(target, "current")]
    assert "rollback" not in outcomes


def test_reconcile_dry_run_exits_0_when_a_rolled_back_tag_is_held_and_nothing_failed(released, ecr):
    source, target, digests, config = released
    assert promoter_cli("rollback", "--repository", target, "--tag", "current").returncode == 0

    dry = promoter_cli("reconcile", "--dry-run", "--json", "--config", _config_file(config, source, target))

    assert dry.returncode == 0, dry.stdout + dry.stderr
    report = json.loads(dry.stdout)
    assert [(r["target_tag"], r["outcome"]) for r in report["results"]] == [("current", KEPT)]
    assert held(ecr, target, "current") == digests["v2"]


def test_rollback_reads_every_page_of_the_history(released, ecr, aws_env):
    _, target, digests, _ = released
    history = DynamoDbHistory(query_page_size=1)  # one record a page: three pages
    aws_env.control.reset_calls()

    result = rollback(RollbackTarget(target, "current"), EcrRegistry(make_ecr_client()), history)
    calls = aws_env.control.calls()

    assert (result.from_digest, result.to_digest) == (digests["v3"], digests["v2"])
    assert held(ecr, target, "current") == digests["v2"]
    # What a rollback costs: the repository's mutability, the tag, the tag again with the image, the put.
    assert calls == {"DescribeRepositories": 1, "BatchGetImage": 2, "PutImage": 1}


def test_after_a_rollback_an_explicit_promotion_of_the_rolled_back_digest_moves_the_tag_again(
    released, ecr, engine
):
    source, target, digests, config = released
    back = promoter_cli("rollback", "--repository", target, "--tag", "current")
    assert back.returncode == 0, back.stderr
    assert held(ecr, target, "current") == digests["v2"]

    again = engine(ImagePushed("push-v3-again", source, digests["v3"], "v3"), config)
    manual = promoter_cli("promote", f"{source}@{digests['v3']}", "--to", f"{target}:current")

    assert [(r.outcome, r.replayed) for r in again.results] == [(PROMOTED, False)]
    assert held(ecr, target, "current") == digests["v3"]
    assert manual.returncode == 0, manual.stderr


def test_rollback_records_who_asked_and_why(released, ecr):
    _, target, _digests, _ = released

    result = promoter_cli(
        "rollback",
        "--repository",
        target,
        "--tag",
        "current",
        "--reason",
        "bad deploy",
        "--requested-by",
        "oncall",
    )

    assert result.returncode == 0, result.stderr
    last = DynamoDbHistory().for_target(target, "current", newest_first=True)[0]
    assert (last["outcome"], last["requested_by"], last["request_reason"]) == (
        "rollback",
        "oncall",
        "bad deploy",
    )


def test_rollback_of_a_target_in_another_region_uses_its_registry_and_history_key(
    aws_env, ecr, pusher, unique_name, monkeypatch
):
    from botocore.config import Config

    from promoter.aws import remote

    region = "eu-west-1"
    west = boto3.client(
        "ecr",
        endpoint_url=aws_env.endpoint,
        region_name=region,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    source = unique_name("app")
    ecr.create_repository(repositoryName=source)
    west.create_repository(repositoryName=source)
    config = parse_config(
        {
            "rules": [
                {
                    "name": "to-west",
                    "source": {"repository": source, "tags": ["v*"]},
                    "targets": [{"repository": source, "region": region, "tags": ["current"]}],
                }
            ]
        }
    )
    monkeypatch.setattr(remote, "_default", None)
    registry = EcrRegistry(make_ecr_client())
    run = idempotent_runner(Promoter(registry), make_persistence())
    digests = {}
    for tag in ("v1", "v2"):
        digests[tag] = pushed(pusher, source, tag)
        service.handle_event(
            ImagePushed(f"w-{tag}", source, digests[tag], tag), config, registry, run, DynamoDbHistory()
        )
    assert held(west, source, "current") == digests["v2"]

    result = promoter_cli("rollback", "--repository", source, "--tag", "current", "--region", region)

    assert result.returncode == 0, result.stderr
    assert held(west, source, "current") == digests["v1"]
    assert held(ecr, source, "current") is None  # the promoter's own registry untouched
    records = DynamoDbHistory().for_target(f"{source}@{region}", "current", newest_first=True)
    assert (records[0]["outcome"], records[0]["target_digest"]) == ("rollback", digests["v1"])


# --- 6. outcomes mean what they say -----------------------------------------------------------


def test_a_backport_exits_0_from_handle_and_is_announced_as_promoted(aws_env, ecr, pusher, repos, tmp_path):
    source, target = repos("build", "release")
    config_file = tmp_path / "promotion.json"
    rule = {
        "name": "semver",
        "source": {"repository": source, "tags": ["*.*.*"]},
        "targets": [{"repository": target, "tags": ["{tag}", "{major}"]}],
    }
    config_file.write_text(json.dumps({"rules": [rule]}))
    results = _results_queue(aws_env.endpoint, target)
    for version in ("1.4.3", "1.4.2"):
        digest = pushed(pusher, source, version)
        event = tmp_path / f"{version}.json"
        event.write_text(json.dumps(_push_event(source, digest, version)))
        handled = promoter_cli("handle", str(event), "--json", "--config", str(config_file))
        assert handled.returncode == 0, handled.stderr

    outcomes = {a["target_tag"]: a["outcome"] for a in json.loads(handled.stdout)["actions"]}
    assert outcomes == {"1.4.2": PROMOTED, "1": KEPT}
    announced = [m for m in _drain(results, 4) if m["detail"]["source"]["image-tag"] == "1.4.2"]
    assert {(m["detail-type"], m["detail"]["outcome"]) for m in announced} == {
        (settings.PROMOTED_DETAIL_TYPE, PROMOTED),
        (settings.PROMOTED_DETAIL_TYPE, KEPT),
    }


def test_break_glass_promote_fails_when_its_history_record_cannot_be_written(ecr, pusher, repos):
    source, target = repos("ci", "prod")
    digest = pushed(pusher, source, "v1")

    result = promoter_cli(
        "promote",
        f"{source}:v1",
        "--to",
        f"{target}:v1",
        env={settings.HISTORY_TABLE_ENV: "no-such-history-table"},
    )

    assert result.returncode == 1
    assert "not recorded in the history" in result.stderr
    assert held(ecr, target, "v1") == digest  # ECR is the truth: promoted, and said to be unaudited


def test_long_reasons_and_metadata_are_truncated_with_a_marker_and_carried(aws_env, pusher, repos, engine):
    source, target = repos("ci", "prod")
    pushed(pusher, source, "v1")
    config = request_config(source, target, ["v*"], ["{tag}"])
    results = _results_queue(aws_env.endpoint, target)
    reason = "r" * 300_000  # over PutEvents' 256 KB for a call on its own
    metadata = {"pipeline": "deploy", "commit": "abc123", "log": "x" * 500_000}

    result = engine(
        PromotionRequested("long", source, "v1", requested_by="ci", reason=reason, metadata=metadata), config
    )

    assert [r.outcome for r in result.results] == [PROMOTED]
    record = DynamoDbHistory().for_target(target, "v1")[-1]
    assert record["request_reason"].endswith(TRUNCATION_MARKER.format(len(reason)))
    assert len(record["request_reason"].encode()) < 10_000
    assert "truncated" in record["metadata"] and record["metadata"].startswith('{"commit": "abc123"')
    (event,) = _drain(results, 1)
    assert event["detail"]["reason"].endswith(TRUNCATION_MARKER.format(len(reason)))
    assert "truncated" in event["detail"]["metadata"]["truncated"]


def test_a_requests_metadata_is_carried_into_results_and_history(aws_env, pusher, repos, engine):
    source, target = repos("ci", "prod")
    pushed(pusher, source, "v1")
    config = request_config(source, target, ["v*"], ["{tag}"])
    results = _results_queue(aws_env.endpoint, target)
    metadata = {"pipeline": "deploy", "run": 42}

    engine(PromotionRequested("meta", source, "v1", metadata=metadata), config)

    record = DynamoDbHistory().for_target(target, "v1")[-1]
    assert json.loads(record["metadata"]) == metadata
    (event,) = _drain(results, 1)
    assert event["detail"]["metadata"] == metadata


def _push_event(repository: str, digest: str, tag: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": "000000000000",
        "time": "2026-11-26T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": "PUSH",
            "image-tag": tag,
        },
    }


def _results_queue(endpoint: str, target: str) -> tuple[Any, str]:
    pattern = {
        "source": [settings.request_event_source()],
        "detail-type": list(settings.RESULT_DETAIL_TYPES),
        "detail": {"target": {"repository-name": [target]}},
    }
    return _queue(endpoint, pattern, settings.event_bus_name())


def _queue(endpoint: str, pattern: dict[str, Any], bus: str = "default") -> tuple[Any, str]:
    """An EventBridge rule on `bus` -> a new SQS queue: what a subscriber receives."""
    kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    sqs, events = boto3.client("sqs", **kw), boto3.client("events", **kw)
    name = f"res-{uuid.uuid4().hex[:12]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url


def _drain(queue: tuple[Any, str], count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    sqs, url = queue
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return got


# --- 8. command-line idempotency --------------------------------------------------------------


def test_a_killed_cli_run_leaves_an_in_progress_record_that_expires_within_the_cli_window(
    aws_env, ecr, pusher, repos, tmp_path
):
    source, target = repos("ci", "prod")
    digest = pushed(pusher, source, "v1")
    config_file = tmp_path / "promotion.json"
    rule = {
        "name": "ship",
        "source": {"repository": source, "tags": ["v*"]},
        "targets": [{"repository": target}],
    }
    config_file.write_text(json.dumps({"rules": [rule]}))
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(_push_event(source, digest, "v1")))
    # `promoter handle`, killed (SIGKILL, no cleanup) at its first PutImage: mid-promotion.
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys\n"
            "from promoter.aws import registry\n"
            "registry.EcrRegistry.put_manifest = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
            "from promoter_cli.main import main\n"
            "sys.exit(main(sys.argv[1:]))\n",
            "handle",
            str(event_file),
            "--config",
            str(config_file),
        ],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    started = time.time()
    persistence = make_persistence()
    persistence.configure(
        IdempotencyConfig(event_key_jmespath=IDEMPOTENCY_KEY_JMESPATH), key_prefix=IDEMPOTENCY_KEY_PREFIX
    )
    (action,) = plan_event(ImagePushed("x", source, digest, "v1"), parse_config({"rules": [rule]})).actions
    record = persistence.get_record(action.to_dict())

    # Without a window the record blocks its key until the TTL (7 days); with it, for at most
    # CLI_IN_PROGRESS_SECONDS after the run started.
    assert record.status == "INPROGRESS"
    assert record.in_progress_expiry_timestamp is not None
    assert record.in_progress_expiry_timestamp / 1000 <= started + CLI_IN_PROGRESS_SECONDS
    blocked = promoter_cli("handle", str(event_file), "--json", "--config", str(config_file))
    assert blocked.returncode == 1 and "in progress" in blocked.stdout.lower()
    # Once the window has passed (moved here rather than waited for), the key is free again.
    boto3.resource("dynamodb").Table(settings.idempotency_table_name()).update_item(
        Key={"id": record.idempotency_key},
        UpdateExpression="SET in_progress_expiration = :past",
        ExpressionAttributeValues={":past": int((time.time() - 1) * 1000)},
    )
    resumed = promoter_cli("handle", str(event_file), "--config", str(config_file))
    assert resumed.returncode == 0, resumed.stderr
    assert held(ecr, target, "v1") == digest
