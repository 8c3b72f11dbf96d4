"""`promoter rollback` on the local AWS: back to the previous digest from the history, to a digest
the history knows, refused for immutable tags and unknown digests, recorded as a rollback; and a
rolled-back tag left alone by reconciliation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from local_aws import images as im
from promoter.aws.history import DynamoDbHistory
from promoter.aws.idempotency import idempotent_runner, make_persistence
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model.config import parse_config
from promoter.model.events import ImagePushed
from promoter.model.outcomes import KEPT, PROMOTED
from promoter.workflows.promote import Promoter
from promoter.workflows.reconcile import reconcile
from promoter.workflows.rollback import ROLLBACK, rollback_hold
from promoter.workflows.service import handle_event

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).parents[2]
PROMOTER = [sys.executable, "-m", "promoter_cli.main"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args], cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


@dataclass(frozen=True)
class Released:
    """`prod:current` promoted to v1, then v2, then v3 (each from its push event)."""

    source: str
    target: str
    digests: dict[str, str]
    config: object


def tag_digest(ecr, repository: str, tag: str) -> str | None:
    ids = ecr.list_images(repositoryName=repository, filter={"tagStatus": "TAGGED"})["imageIds"]
    return next((i["imageDigest"] for i in ids if i["imageTag"] == tag), None)


def released_with(ecr, unique_name, pusher, **target_repo_args) -> Released:
    source, target = unique_name("stage"), unique_name("prod")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target, **target_repo_args)
    config = parse_config(
        {
            "rules": [
                {
                    "name": "release",
                    "source": {"repository": source, "tags": ["v*"]},
                    "targets": [{"repository": target, "tags": ["current"]}],
                }
            ]
        }
    )
    registry = EcrRegistry(make_ecr_client())
    run = idempotent_runner(Promoter(registry), make_persistence())
    digests = {}
    for tag in ("v1", "v2", "v3"):
        image = im.image((256,))
        pusher.push(source, image, tag)
        digests[tag] = image.digest
        event = ImagePushed(str(uuid.uuid4()), source, image.digest, tag)
        handle_event(event, config, registry, run, DynamoDbHistory())
    return Released(source, target, digests, config)


@pytest.fixture
def released(aws_env, ecr, unique_name, pusher) -> Released:
    return released_with(ecr, unique_name, pusher)


def test_rollback_moves_the_tag_back_one_step_at_a_time_and_records_it(released, ecr):
    assert tag_digest(ecr, released.target, "current") == released.digests["v3"]

    first = cli("rollback", "--json", "--repository", released.target, "--tag", "current")

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["to_digest"] == released.digests["v2"]
    assert tag_digest(ecr, released.target, "current") == released.digests["v2"]
    # Twice = two steps back (not back and forth).
    assert cli("rollback", "--repository", released.target, "--tag", "current").returncode == 0
    assert tag_digest(ecr, released.target, "current") == released.digests["v1"]

    records = DynamoDbHistory().for_target(released.target, "current")
    rollbacks = [r for r in records if r["outcome"] == ROLLBACK]
    assert [r["target_digest"] for r in rollbacks] == [released.digests["v2"], released.digests["v1"]]
    assert rollbacks[0]["reason"] == f"rolled back from {released.digests['v3']}"

    nothing_left = cli("rollback", "--repository", released.target, "--tag", "current")
    assert nothing_left.returncode == 1
    assert "no earlier digest" in nothing_left.stderr


def test_rollback_to_a_digest_the_history_knows(released, ecr):
    result = cli(
        "rollback", "--repository", released.target, "--tag", "current", "--to", released.digests["v1"]
    )

    assert result.returncode == 0, result.stderr
    assert tag_digest(ecr, released.target, "current") == released.digests["v1"]


def test_rollback_to_a_digest_the_history_does_not_know_is_refused(released, ecr, local_aws):
    unknown = "sha256:" + "ab" * 32
    local_aws.control.reset_calls()

    result = cli("rollback", "--repository", released.target, "--tag", "current", "--to", unknown)

    assert result.returncode == 1
    assert "not a digest the history knows for" in result.stderr
    assert "PutImage" not in local_aws.control.calls()
    assert tag_digest(ecr, released.target, "current") == released.digests["v3"]


def test_rollback_of_an_immutable_tag_is_refused_before_any_write(
    aws_env, ecr, unique_name, pusher, local_aws
):
    # Exclusion filters as ECR applies them: `current` is not excluded, so it cannot move.
    released = released_with(
        ecr,
        unique_name,
        pusher,
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest*"}],
    )
    # An immutable tag took only the first promotion; v2 and v3 were conflicts.
    assert tag_digest(ecr, released.target, "current") == released.digests["v1"]
    local_aws.control.reset_calls()

    result = cli(
        "rollback", "--repository", released.target, "--tag", "current", "--to", released.digests["v1"]
    )

    assert result.returncode == 1
    assert "immutable" in result.stderr and "IMMUTABLE_WITH_EXCLUSION" in result.stderr
    assert "PutImage" not in local_aws.control.calls()


def test_rollback_bad_input_exits_2(aws_env):
    result = cli("rollback", "--repository", "prod/app", "--tag", "current", "--to", "latest")

    assert result.returncode == 2 and "not a sha256 digest" in result.stderr


def test_reconcile_leaves_a_rolled_back_tag_where_it_was_put(released, ecr, aws_env):
    assert cli("rollback", "--repository", released.target, "--tag", "current").returncode == 0
    registry = EcrRegistry(make_ecr_client())
    history = DynamoDbHistory()

    report = reconcile(
        released.config,
        registry,
        idempotent_runner(Promoter(registry), make_persistence()),
        history=history,
        hold_back=rollback_hold(history),
    )

    assert tag_digest(ecr, released.target, "current") == released.digests["v2"]
    assert {r.outcome for r in report.results} == {KEPT}
    assert all("rolled back" in (r.reason or "") for r in report.results)
    assert PROMOTED not in report.outcomes


def test_reconcile_keeps_the_newest_push_on_a_tag_several_images_feed(released, ecr, local_aws):
    # v1, v2, v3 all feed prod:current; the events put v3 there last, as reconcile must agree.
    local_aws.control.reset_calls()
    registry = EcrRegistry(make_ecr_client())

    report = reconcile(released.config, registry, idempotent_runner(Promoter(registry), make_persistence()))

    assert report.in_sync == 1 and report.superseded == 2 and report.results == ()
    assert "PutImage" not in local_aws.control.calls()
    assert tag_digest(ecr, released.target, "current") == released.digests["v3"]
