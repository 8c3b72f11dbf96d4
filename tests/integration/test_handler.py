"""The Lambda handler on the local AWS: SQS batches, idempotency in DynamoDB, partial failures."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from local_aws import images as im
from promoter import handler, settings
from promoter.aws.history import DynamoDbHistory
from promoter.aws.idempotency import IDEMPOTENCY_KEY_PREFIX
from tests.lambda_events import FakeLambdaContext, sqs_batch

pytestmark = pytest.mark.integration




@pytest.fixture
def repos(ecr, unique_name) -> tuple[str, str]:
    source, target = unique_name("dev"), unique_name("staging")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    return source, target


@pytest.fixture
def lambda_env(aws_env, repos, tmp_path, monkeypatch):
    """The function's environment: the staged JSON config naming this test's repositories."""
    source, target = repos
    config = {
        "rules": [
            {
                "name": "dev-to-staging",
                "source": {"repository": source, "tags": ["sha-*"]},
                "targets": [{"repository": target, "tags": ["{tag}", "latest"]}],
            }
        ]
    }
    path = tmp_path / settings.STAGED_CONFIG_FILE
    path.write_text(json.dumps(config))
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    handler.runtime.cache_clear()
    yield
    handler.runtime.cache_clear()


def push_event(repository: str, digest: str, tag: str, event_id: str | None = None) -> dict:
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": "000000000000",
        "time": "2026-11-20T10:15:30Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": "PUSH",
            "image-tag": tag,
            "manifest-media-type": im.OCI_MANIFEST,
        },
    }




def tag_digest(ecr, repository: str, tag: str) -> str | None:
    response = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])
    return response["images"][0]["imageId"]["imageDigest"] if response["images"] else None


def test_duplicate_delivery_puts_each_target_once(ecr, pusher, repos, lambda_env, aws_env):
    source, target = repos
    image = im.image((4096,))
    pusher.push(source, image, "sha-abc")
    aws_env.control.reset_calls()
    # EventBridge may deliver one push twice, under two envelope ids; and SQS may redeliver a record.
    first = push_event(source, image.digest, "sha-abc")
    duplicate = push_event(source, image.digest, "sha-abc")

    response = handler.handle_queue(sqs_batch(json.dumps(first), json.dumps(duplicate)), FakeLambdaContext())
    assert response == {"batchItemFailures": []}
    assert aws_env.control.calls()["PutImage"] == 2  # "sha-abc" and "latest", once each
    aws_env.control.reset_calls()

    again = handler.handle_queue(sqs_batch(json.dumps(first)), FakeLambdaContext())

    assert again == {"batchItemFailures": []}
    # Answered from the idempotency records, each checked against its target tag first: one read.
    assert aws_env.control.calls() == {"BatchGetImage": 2}
    history = DynamoDbHistory().for_target(target, "sha-abc")
    assert [(h["outcome"], h["target_digest"]) for h in history] == [("promoted", image.digest)]
    assert tag_digest(ecr, target, "sha-abc") == tag_digest(ecr, target, "latest") == image.digest
    table = boto3.resource("dynamodb").Table(settings.idempotency_table_name())
    items = [i for i in table.scan()["Items"] if i["id"].startswith(IDEMPOTENCY_KEY_PREFIX)]
    records = [i for i in items if json.loads(i.get("data") or "{}").get("target_repository") == target]
    assert sorted(json.loads(r["data"])["target_tag"] for r in records) == ["latest", "sha-abc"]
    assert {r["status"] for r in records} == {"COMPLETED"}


def test_batch_with_one_bad_record_fails_only_that_record(ecr, pusher, repos, lambda_env, aws_env):
    source, target = repos
    good, other = im.image((1024,)), im.image((1024,))
    pusher.push(source, good, "sha-good")
    pusher.push(source, other, "sha-other")
    batch = sqs_batch(
        json.dumps(push_event(source, good.digest, "sha-good")),
        "this is not an EventBridge event",
        json.dumps(push_event(source, other.digest, "sha-other")),
    )

    response = handler.handle_queue(batch, FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert tag_digest(ecr, target, "sha-good") == good.digest
    assert tag_digest(ecr, target, "sha-other") == other.digest


def test_throttling_beyond_the_retries_fails_the_record_for_redelivery(
    ecr, pusher, repos, lambda_env, aws_env, monkeypatch
):
    source, target = repos
    image = im.image((1024,))
    pusher.push(source, image, "sha-slow")
    monkeypatch.setattr("promoter.aws.registry.ECR_MAX_ATTEMPTS", 1)
    handler.runtime.cache_clear()
    aws_env.control.fail_next("PutImage", "ThrottlingException", count=1, message="Rate exceeded")
    body = json.dumps(push_event(source, image.digest, "sha-slow"))

    first = handler.handle_queue(sqs_batch(body), FakeLambdaContext())
    redelivered = handler.handle_queue(sqs_batch(body), FakeLambdaContext())

    assert first == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert redelivered == {"batchItemFailures": []}
    assert tag_digest(ecr, target, "sha-slow") == tag_digest(ecr, target, "latest") == image.digest
    # The throttled first try was not final: history holds only what the redelivery did.
    recorded = DynamoDbHistory().for_target(target, "sha-slow")
    assert [item["outcome"] for item in recorded] == ["promoted"]


def test_conflict_is_an_outcome_not_a_redelivery(ecr, pusher, unique_name, tmp_path, monkeypatch, aws_env):
    source, target = unique_name("dev"), unique_name("prod")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target, imageTagMutability="IMMUTABLE")
    config = {
        "rules": [
            {
                "name": "r",
                "source": {"repository": source, "tags": ["*"]},
                "targets": [{"repository": target}],
            }
        ]
    }
    path = tmp_path / "promotion.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    handler.runtime.cache_clear()
    old, new = im.image((512,)), im.image((512,))
    pusher.push(target, old, "v1")
    pusher.push(source, new, "v1")

    response = handler.handle_queue(
        sqs_batch(json.dumps(push_event(source, new.digest, "v1"))), FakeLambdaContext()
    )

    handler.runtime.cache_clear()
    assert response == {"batchItemFailures": []}
    assert tag_digest(ecr, target, "v1") == old.digest
    [entry] = DynamoDbHistory().for_target(target, "v1")
    assert (entry["outcome"], entry["target_digest"]) == ("conflict", old.digest)
    assert "ImageTagAlreadyExistsException" in entry["reason"]
