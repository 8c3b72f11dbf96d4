"""Reconciliation on the local AWS: lost events caught, consistent registries left untouched
(ECR write calls counted), bounded runs that resume where they stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from local_aws import images as im
from promoter import settings
from promoter.aws.history import DynamoDbHistory
from promoter.aws.idempotency import idempotent_runner, make_persistence
from promoter.aws.reconcile_state import DynamoDbCursorStore
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model.config import parse_config
from promoter.model.outcomes import PROMOTED
from promoter.workflows.promote import Promoter
from promoter.workflows.reconcile import Cursor, reconcile
from promoter.workflows.service import WOULD_PROMOTE

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).parents[2]
PROMOTER = [sys.executable, "-m", "promoter_cli.main"]
# Every ECR operation that changes a registry: a consistent reconcile and a dry run call none.
ECR_WRITES = frozenset(
    {
        "PutImage",
        "InitiateLayerUpload",
        "UploadLayerPart",
        "CompleteLayerUpload",
        "BatchDeleteImage",
        "CreateRepository",
        "DeleteRepository",
        "PutAccountSetting",
        "PutImageTagMutability",
    }
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args], cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


def writes(calls: dict[str, int]) -> dict[str, int]:
    return {op: n for op, n in calls.items() if op in ECR_WRITES}


@dataclass(frozen=True)
class Lost:
    """Images pushed to `source` whose push events were lost: nothing ran for them."""

    source: str
    target: str
    digests: dict[str, str]  # tag -> digest
    config_file: Path


@pytest.fixture
def lost(aws_env, ecr, unique_name, pusher, tmp_path) -> Lost:
    source, target = unique_name("dev"), unique_name("prod")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    digests = {}
    for tag in ("v1", "v2", "v3"):
        image = im.image((512,))
        pusher.push(source, image, tag)
        digests[tag] = image.digest
    pusher.push(source, im.image((256,)), "scratch")  # not taken by the rule
    config_file = tmp_path / "promotion.yaml"
    config_file.write_text(
        f"rules:\n  - name: ship\n    source: {{repository: {source}, tags: ['v*']}}\n"
        f"    targets:\n      - repository: {target}\n        tags: ['{{tag}}']\n"
    )
    return Lost(source, target, digests, config_file)


def target_digests(ecr, repository: str) -> dict[str, str]:
    ids = ecr.list_images(repositoryName=repository, filter={"tagStatus": "TAGGED"})["imageIds"]
    return {i["imageTag"]: i["imageDigest"] for i in ids}


def test_lost_push_events_are_caught_by_reconcile_through_the_idempotent_path(lost, ecr):
    result = cli("reconcile", "--json", "--config", str(lost.config_file))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["complete"] and report["images"] == 3 and report["in_sync"] == 0
    assert report["outcomes"] == {PROMOTED: 3}
    assert target_digests(ecr, lost.target) == lost.digests  # the byte-identical image, every tag
    records = DynamoDbHistory().for_target(lost.target, "v2")
    assert [(r["outcome"], r["event_id"]) for r in records] == [(PROMOTED, f"reconcile:{lost.source}:v2")]


def test_what_reconcile_promotes_is_announced_on_the_bus_as_a_reconcile_result(lost, aws_env):
    kw = {"endpoint_url": aws_env.endpoint, "region_name": "us-east-1"}
    sqs, bus = boto3.client("sqs", **kw), boto3.client("events", **kw)
    name = f"results-{uuid.uuid4().hex[:12]}"
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {
        "source": [settings.request_event_source()],
        "detail-type": [settings.PROMOTED_DETAIL_TYPE],
        "detail": {"trigger": ["reconcile"], "target": {"repository-name": [lost.target]}},
    }
    bus.put_rule(Name=name, EventBusName=settings.event_bus_name(), EventPattern=json.dumps(pattern))
    bus.put_targets(Rule=name, EventBusName=settings.event_bus_name(), Targets=[{"Id": "q", "Arn": arn}])

    assert cli("reconcile", "--json", "--config", str(lost.config_file)).returncode == 0

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    details = [json.loads(m["Body"])["detail"] for m in messages]
    assert sorted(d["target"]["image-tag"] for d in details) == ["v1", "v2", "v3"]
    assert {d["outcome"] for d in details} == {PROMOTED}


def test_reconcile_over_a_consistent_registry_makes_no_write_call(lost, ecr, local_aws):
    assert cli("reconcile", "--json", "--config", str(lost.config_file)).returncode == 0
    local_aws.control.reset_calls()

    result = cli("reconcile", "--json", "--config", str(lost.config_file))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["in_sync"] == 3 and report["results"] == []
    calls = local_aws.control.calls()
    assert writes(calls) == {}
    # The reads it costs: one listing per source, one batched target read per page.
    assert calls == {"DescribeRepositories": 1, "DescribeImages": 1, "BatchGetImage": 1}


def test_dry_run_reports_what_it_would_promote_and_writes_nothing(lost, ecr, local_aws):
    local_aws.control.reset_calls()

    result = cli("reconcile", "--json", "--config", str(lost.config_file), "--dry-run")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] and report["outcomes"] == {WOULD_PROMOTE: 3}
    assert writes(local_aws.control.calls()) == {}
    assert target_digests(ecr, lost.target) == {}


def test_a_target_behind_its_source_is_moved_forward(lost, ecr, pusher):
    assert cli("reconcile", "--json", "--config", str(lost.config_file)).returncode == 0
    newer = im.image((300,))
    pusher.push(lost.source, newer, "v2")  # the source tag moves; its event is lost too

    report = json.loads(cli("reconcile", "--json", "--config", str(lost.config_file)).stdout)

    assert report["in_sync"] == 2 and report["outcomes"] == {PROMOTED: 1}
    assert report["results"][0]["target_digest"] == newer.digest
    assert target_digests(ecr, lost.target)["v2"] == newer.digest


def test_a_bounded_run_stops_in_time_and_the_next_resumes_where_it_stopped(lost, ecr, aws_env):
    config = parse_config(
        {
            "rules": [
                {
                    "name": "ship",
                    "source": {"repository": lost.source, "tags": ["v*"]},
                    "targets": [{"repository": lost.target, "tags": ["{tag}"]}],
                }
            ]
        }
    )
    registry = EcrRegistry(make_ecr_client())
    run = idempotent_runner(Promoter(registry), make_persistence())
    cursors = DynamoDbCursorStore(pass_id=f"test-{uuid.uuid4()}")
    budget = iter([600.0, 600.0, 0.0])  # time for two pages of one image each, then out of time

    first = reconcile(
        config, registry, run, cursors=cursors, page_size=1, remaining_seconds=lambda: next(budget)
    )

    assert not first.complete and first.cursor is not None
    assert cursors.load() == first.cursor == Cursor("ship", lost.source, first.cursor.next_token)
    done = target_digests(ecr, lost.target)
    assert len(done) == 2
    # DescribeImages pages are in push order here: v1, v2 done, then the rest.
    second = reconcile(config, registry, run, cursors=cursors, page_size=1)

    assert second.complete and cursors.load() is None
    assert second.images == 1 and [r.target_tag for r in second.results] == ["v3"]
    assert target_digests(ecr, lost.target) == lost.digests


def test_a_saved_page_token_ecr_refuses_restarts_that_listing(lost, ecr, aws_env):
    config = parse_config(
        {
            "rules": [
                {
                    "name": "ship",
                    "source": {"repository": lost.source, "tags": ["v*"]},
                    "targets": [{"repository": lost.target, "tags": ["{tag}"]}],
                }
            ]
        }
    )
    registry = EcrRegistry(make_ecr_client())
    cursors = DynamoDbCursorStore(pass_id=f"test-{uuid.uuid4()}")
    cursors.save(Cursor("ship", lost.source, "not-a-token"))

    report = reconcile(
        config, registry, idempotent_runner(Promoter(registry), make_persistence()), cursors=cursors
    )

    assert report.complete and report.images == 3 and cursors.load() is None
    assert target_digests(ecr, lost.target) == lost.digests


def test_a_missing_source_repository_is_reported_not_raised(aws_env, unique_name, tmp_path):
    config_file = tmp_path / "promotion.yaml"
    config_file.write_text(
        f"rules:\n  - name: ship\n    source: {{repository: {unique_name('gone')}}}\n"
        f"    targets:\n      - repository: {unique_name('prod')}\n"
    )

    result = cli("reconcile", "--json", "--config", str(config_file))

    assert result.returncode == 1
    assert "does not exist" in json.loads(result.stdout)["errors"][0]


def test_reconcile_refuses_a_bad_configuration_with_exit_2(aws_env, tmp_path):
    config_file = tmp_path / "promotion.yaml"
    config_file.write_text("rules: []\n")

    result = cli("reconcile", "--json", "--config", str(config_file))

    assert result.returncode == 2 and "invalid configuration" in result.stderr


def test_the_scheduled_entry_point_reconciles_and_reports(lost, ecr, aws_env, monkeypatch):
    from promoter import handler, reconcile_handler, settings

    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(lost.config_file))
    handler.runtime.cache_clear()
    reconcile_handler.cursor_store.cache_clear()

    class Context:
        function_name = "reconcile"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:reconcile"
        aws_request_id = str(uuid.uuid4())

        def get_remaining_time_in_millis(self) -> int:
            return 300_000

    try:
        report = reconcile_handler.handle({"source": "aws.events"}, Context())
    finally:
        handler.runtime.cache_clear()
        reconcile_handler.cursor_store.cache_clear()

    assert report["complete"] and report["outcomes"] == {PROMOTED: 3}
    assert target_digests(ecr, lost.target) == lost.digests
    assert boto3.client("dynamodb").describe_table(TableName="image-promoter-reconcile")["Table"]


def test_a_source_it_may_not_read_is_reported_and_the_other_rules_still_run(
    lost, ecr, aws_env, unique_name, pusher
):
    denied = unique_name("secret")
    ecr.create_repository(repositoryName=denied)
    pusher.push(denied, im.image((128,)), "v1")
    config = parse_config(
        {
            "rules": [
                {
                    "name": "denied",
                    "source": {"repository": denied},
                    "targets": [{"repository": lost.target, "tags": ["secret-{tag}"]}],
                },
                {
                    "name": "ship",
                    "source": {"repository": lost.source, "tags": ["v*"]},
                    "targets": [{"repository": lost.target, "tags": ["{tag}"]}],
                },
            ]
        }
    )
    aws_env.control.fail_next(
        "DescribeImages", "AccessDeniedException", count=1, match={"repositoryName": denied}
    )
    registry = EcrRegistry(make_ecr_client())

    report = reconcile(config, registry, idempotent_runner(Promoter(registry), make_persistence()))

    assert report.complete and not report.succeeded
    assert len(report.errors) == 1 and "AccessDeniedException" in report.errors[0]
    assert target_digests(ecr, lost.target) == lost.digests
