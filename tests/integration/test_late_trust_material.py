"""Late trust material follows its image (issue 21.1), on the local AWS through the Lambda handler.

The usual CI order is push, then sign. Here the local ECR emits the events real ECR does (an
`ECR Image Action` for a cosign tag, an `ECR Referrer Action` for an OCI 1.1 referrer); a rule with
the stack's trust-material pattern (`infra.event_patterns.trust_material_event_pattern`) takes them
into a queue, and each is handed to the handler as the queue would hand it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from infra.event_patterns import trust_material_event_pattern
from local_aws import images as im
from promoter import handler, settings
from promoter.aws.history import DynamoDbHistory
from promoter.model.outcomes import PROMOTED, UNVERIFIED
from promoter.workflows.late_trust import TRIGGER_TRUST_MATERIAL
from tests.integration.test_signature_gate import (
    KeyPair,
    digest_at,
    push_event,
    push_referrer_signature,
    push_tag_signature,
    result_events,
    signature_tag,
)
from tests.lambda_events import FakeLambdaContext, sqs_record

pytestmark = pytest.mark.integration


class Routed:
    """ECR's events of some repositories on the default bus -> a rule with the trust-material
    pattern -> an SQS queue; `take()` returns the bodies that arrived (ECR's events are delivered
    while the ECR call is answered, so they are there when the push returns)."""

    def __init__(self, endpoint: str, repositories: list[str]) -> None:
        kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        self.sqs = boto3.client("sqs", **kw)
        events = boto3.client("events", **kw)
        name = f"trust-{uuid.uuid4().hex[:12]}"
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name=name, EventPattern=json.dumps(trust_material_event_pattern(repositories)))
        events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])

    def take(self) -> list[str]:
        bodies: list[str] = []
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return bodies


@pytest.fixture
def lambda_for(aws_env, tmp_path, monkeypatch) -> Iterator[Callable[[dict[str, Any]], Callable[[str], dict]]]:
    """`lambda_for(config)(body)`: one SQS record with that body through the Lambda handler."""

    def configure(config: dict[str, Any]) -> Callable[[str], dict]:
        path = tmp_path / settings.STAGED_CONFIG_FILE
        path.write_text(json.dumps(config))
        monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        handler.runtime.cache_clear()

        def deliver(body: str) -> dict:
            return handler.handle_queue({"Records": [sqs_record(body)]}, FakeLambdaContext())

        return deliver

    yield configure
    handler.runtime.cache_clear()


def request_body(repository: str, tag: str, rule: str) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": settings.REQUEST_DETAIL_TYPE,
            "source": settings.request_event_source(),
            "account": "000000000000",
            "time": "2026-12-01T10:15:30Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "repository-name": repository,
                "image-tag": tag,
                "rule": rule,
                "requested-by": "release-pipeline",
                "reason": "release v1",
            },
        }
    )


def _records(repository: str, tag: str) -> list[dict[str, Any]]:
    return DynamoDbHistory().for_target(repository, tag)


@pytest.fixture
def repos(ecr, unique_name) -> dict[str, str]:
    names = {kind: unique_name(kind) for kind in ("dev", "staging", "qa", "prod")}
    for name in names.values():
        ecr.create_repository(repositoryName=name)
    return names


@pytest.mark.parametrize("kind", ["cosign-tag", "referrer"])
def test_a_signature_pushed_after_the_promotion_reaches_every_target_in_one_event_recorded_and_announced(
    ecr, pusher, repos, lambda_for, aws_env, kind
):
    dev, staging, qa = repos["dev"], repos["staging"], repos["qa"]
    deliver = lambda_for(
        {
            "rules": [
                {
                    "name": "dev-out",
                    "source": {"repository": dev, "tags": ["v*"]},
                    "trigger": "push",
                    "targets": [{"repository": staging}, {"repository": qa}],
                }
            ]
        }
    )
    image = im.image((512,))
    pusher.push(dev, image, "v1")
    assert deliver(json.dumps(push_event(dev, image.digest, "v1"))) == {"batchItemFailures": []}
    assert digest_at(ecr, staging, "v1") == digest_at(ecr, qa, "v1") == image.digest
    routed = Routed(aws_env.endpoint, [dev])
    announced = {target: result_events(aws_env.endpoint, target) for target in (staging, qa)}

    key = KeyPair()  # then CI signs what it pushed
    if kind == "cosign-tag":
        signature = push_tag_signature(pusher, dev, image, key.sign)
    else:
        signature = push_referrer_signature(pusher, dev, image, key.sign)
    (event,) = routed.take()  # one event announces it, the one ECR sends for this kind
    assert json.loads(event)["detail-type"] == (
        "ECR Image Action" if kind == "cosign-tag" else "ECR Referrer Action"
    )

    assert deliver(event) == {"batchItemFailures": []}

    for target in (staging, qa):
        held = ecr.batch_get_image(repositoryName=target, imageIds=[{"imageDigest": signature.digest}])
        assert held["images"] and held["images"][0]["imageManifest"].encode() == signature.raw
        if kind == "cosign-tag":
            assert digest_at(ecr, target, signature_tag(image.digest)) == signature.digest
        carried = [r for r in _records(target, "v1") if r["trigger"] == TRIGGER_TRUST_MATERIAL]
        assert [(r["outcome"], r["source_digest"]) for r in carried] == [(PROMOTED, image.digest)]
        assert carried[0]["reason"] == f"trust material that arrived after the promotion: {signature.digest}"
        (said,) = announced[target](1)
        assert said["detail-type"] == settings.PROMOTED_DETAIL_TYPE
        assert said["detail"]["target"]["image-digest"] == image.digest

    # The same event again (EventBridge and SQS deliver at least once): nothing written, nothing recorded.
    assert deliver(event) == {"batchItemFailures": []}
    for target in (staging, qa):
        assert len([r for r in _records(target, "v1") if r["trigger"] == TRIGGER_TRUST_MATERIAL]) == 1


def test_an_unverified_prod_request_is_promoted_when_its_signature_arrives_without_a_new_request(
    ecr, pusher, repos, lambda_for, aws_env
):
    dev, staging, prod = repos["dev"], repos["staging"], repos["prod"]
    key = KeyPair()
    deliver = lambda_for(
        {
            "rules": [
                {
                    "name": "dev-to-staging",
                    "source": {"repository": dev, "tags": ["v*"]},
                    "trigger": "push",
                    "targets": [{"repository": staging}],
                },
                {
                    "name": "staging-to-prod",
                    "source": {"repository": staging, "tags": ["v*"]},
                    "trigger": "request",
                    "targets": [{"repository": prod}],
                    "require": {"signature": {"cosign": {"keys": [key.public_pem]}}},
                },
            ]
        }
    )
    image = im.image((512,))
    pusher.push(dev, image, "v1")
    deliver(json.dumps(push_event(dev, image.digest, "v1")))
    request = request_body(staging, "v1", "staging-to-prod")
    assert deliver(request) == {"batchItemFailures": []}
    (first,) = _records(prod, "v1")
    assert first["outcome"] == UNVERIFIED  # the pipeline asked before CI signed
    assert digest_at(ecr, prod, "v1") is None
    routed = Routed(aws_env.endpoint, [dev, staging])

    signature = push_tag_signature(pusher, dev, image, key.sign)  # CI signs in dev
    (signed,) = routed.take()
    deliver(signed)  # the signature follows the image to staging; that write is announced too
    (carried,) = routed.take()
    assert json.loads(carried)["detail"]["repository-name"] == staging
    assert deliver(carried) == {"batchItemFailures": []}

    assert digest_at(ecr, prod, "v1") == image.digest
    assert digest_at(ecr, prod, signature_tag(image.digest)) == signature.digest
    records = _records(prod, "v1")
    assert [r["outcome"] for r in records] == [UNVERIFIED, PROMOTED]
    assert records[1]["request_id"] == first["request_id"]  # the same request, run once more
    assert records[1]["requested_by"] == "release-pipeline"
    assert records[1]["signature"]["verifier"] == "cosign"

    # Once: another arrival (here the same event again) does not run the request a third time.
    deliver(carried)
    assert [r["outcome"] for r in _records(prod, "v1")] == [UNVERIFIED, PROMOTED]


def test_a_request_that_stays_unverified_is_run_again_only_once(ecr, pusher, repos, lambda_for, aws_env):
    dev, prod = repos["dev"], repos["prod"]
    key, stranger = KeyPair(), KeyPair()
    deliver = lambda_for(
        {
            "rules": [
                {
                    "name": "dev-to-prod",
                    "source": {"repository": dev, "tags": ["v*"]},
                    "trigger": "request",
                    "targets": [{"repository": prod}],
                    "require": {"signature": {"cosign": {"keys": [key.public_pem]}}},
                }
            ]
        }
    )
    image = im.image((512,))
    pusher.push(dev, image, "v1")
    deliver(request_body(dev, "v1", "dev-to-prod"))
    routed = Routed(aws_env.endpoint, [dev])

    push_referrer_signature(pusher, dev, image, stranger.sign)  # signed with a key the rule does not trust
    push_referrer_signature(pusher, dev, image, stranger.sign)
    arrivals = routed.take()
    assert len(arrivals) == 2
    for arrival in arrivals:
        deliver(arrival)

    assert digest_at(ecr, prod, "v1") is None
    assert [r["outcome"] for r in _records(prod, "v1")] == [UNVERIFIED, UNVERIFIED]


def test_a_carry_that_could_not_list_the_referrers_is_a_named_failure_and_a_later_delivery_carries_it(
    ecr, pusher, repos, lambda_for, aws_env
):
    dev, staging = repos["dev"], repos["staging"]
    deliver = lambda_for(
        {
            "rules": [
                {
                    "name": "dev-to-staging",
                    "source": {"repository": dev, "tags": ["v*"]},
                    "trigger": "push",
                    "targets": [{"repository": staging}],
                }
            ]
        }
    )
    image = im.image((512,))
    pusher.push(dev, image, "v1")
    deliver(json.dumps(push_event(dev, image.digest, "v1")))
    routed = Routed(aws_env.endpoint, [dev])
    signature = push_referrer_signature(pusher, dev, image, KeyPair().sign)
    (event,) = routed.take()
    aws_env.control.fail_next(
        "ListImageReferrers", "AccessDeniedException", count=5, message="not authorized"
    )

    deliver(event)

    (failed,) = [r for r in _records(staging, "v1") if r["trigger"] == TRIGGER_TRUST_MATERIAL]
    assert failed["outcome"] == "failed" and "could not be listed" in failed["reason"]
    assert not ecr.batch_get_image(repositoryName=staging, imageIds=[{"imageDigest": signature.digest}])[
        "images"
    ]

    aws_env.control.clear_faults()
    deliver(event)  # a redelivery (or the next arrival): the failed carry does not hide the target

    held = ecr.batch_get_image(repositoryName=staging, imageIds=[{"imageDigest": signature.digest}])["images"]
    assert held and held[0]["imageManifest"].encode() == signature.raw
    outcomes = [r["outcome"] for r in _records(staging, "v1") if r["trigger"] == TRIGGER_TRUST_MATERIAL]
    assert outcomes == ["failed", PROMOTED]
