"""Issue 6: promotion into another account (an assumed role there) and another region, end to end
through the Lambda handler on the local AWS, where each account and region is its own registry."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from local_aws import images as im
from local_aws.images import EcrPusher
from promoter import handler, settings
from promoter.aws import remote
from promoter.aws.history import DynamoDbHistory
from promoter.aws.idempotency import IDEMPOTENCY_KEY_PREFIX
from tests.integration.test_handler import push_event
from tests.lambda_events import FakeLambdaContext, sqs_batch

pytestmark = pytest.mark.integration

PROD_ACCOUNT = "210987654321"
PROD_ROLE = f"arn:aws:iam::{PROD_ACCOUNT}:role/image-promoter-target"
OTHER_REGION = "eu-west-1"
MEDIA_TYPES = [im.DOCKER_MANIFEST, im.DOCKER_MANIFEST_LIST, im.OCI_MANIFEST, im.OCI_INDEX]


def _ecr(endpoint: str, key: str, region: str = "us-east-1"):
    """A client of one registry: by the local convention a 12-digit access key is its account."""
    return boto3.client(
        "ecr",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def cross_env(aws_env, ecr, unique_name, tmp_path, monkeypatch):
    """A dev repository here; the same name in the prod account (via its role) and in eu-west-1."""
    name = unique_name("app")
    ecr.create_repository(repositoryName=name)
    prod = _ecr(aws_env.endpoint, PROD_ACCOUNT)
    prod.create_repository(repositoryName=name)
    west = _ecr(aws_env.endpoint, aws_env.account, OTHER_REGION)
    west.create_repository(repositoryName=name)
    config = {
        "rules": [
            {
                "name": "dev-to-prod",
                "source": {"repository": name, "tags": ["v*"]},
                "targets": [
                    {"repository": name, "account": PROD_ACCOUNT, "role": PROD_ROLE},
                    {"repository": name, "region": OTHER_REGION},
                ],
            }
        ]
    }
    path = tmp_path / settings.STAGED_CONFIG_FILE
    path.write_text(json.dumps(config))
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setattr(remote, "_default", None)  # sessions of this test's environment
    ecr.put_account_setting(name="BLOB_MOUNTING", value="ENABLED")  # and still no mount across
    handler.runtime.cache_clear()
    yield name, {"prod": prod, "west": west}
    handler.runtime.cache_clear()
    ecr.put_account_setting(name="BLOB_MOUNTING", value="DISABLED")


def _manifest(client, repository: str, reference: str) -> dict | None:
    image_id = {"imageDigest": reference} if reference.startswith("sha256:") else {"imageTag": reference}
    images = client.batch_get_image(
        repositoryName=repository, imageIds=[image_id], acceptedMediaTypes=MEDIA_TYPES
    )["images"]
    return images[0] if images else None


def test_a_signed_multi_arch_image_is_copied_into_another_account_and_region(ecr, aws_env, cross_env):
    name, targets = cross_env
    index = im.multi_arch(layer_size=300)
    pusher = EcrPusher(ecr)
    pusher.push(name, index, "v1.0.0")
    signature, signature_tag = im.cosign_signature(index)
    pusher.push(name, signature, signature_tag)
    sbom = im.referrer(index)
    pusher.push(name, sbom)
    aws_env.control.reset_calls()

    event = json.dumps(push_event(name, index.digest, "v1.0.0"))
    assert handler.handle_queue(sqs_batch(event), FakeLambdaContext()) == {"batchItemFailures": []}

    calls = aws_env.control.calls()
    # Every blob copied, through each target registry's own /v2 endpoint (the token and
    # proxyEndpoint of its GetAuthorizationToken): no layer-upload API call. A blob sent to the
    # wrong registry would fail the PutImage below it (LayersNotFoundException).
    assert calls["GetDownloadUrlForLayer"] > 0
    assert not {"InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload"} & set(calls)
    for where, client in targets.items():
        promoted = _manifest(client, name, "v1.0.0")
        assert promoted is not None, where
        assert promoted["imageId"]["imageDigest"] == index.digest
        assert promoted["imageManifest"] == index.text  # byte for byte
        assert promoted["registryId"] == (PROD_ACCOUNT if where == "prod" else aws_env.account)
        for child in index.children:
            assert _manifest(client, name, child.digest) is not None, (where, child.digest)
            blobs = [b.digest for b in child.blobs]
            layers = client.batch_check_layer_availability(repositoryName=name, layerDigests=blobs)["layers"]
            assert {layer["layerAvailability"] for layer in layers} == {"AVAILABLE"}
        copied_signature = _manifest(client, name, signature_tag)
        assert copied_signature is not None and copied_signature["imageId"]["imageDigest"] == signature.digest
        referrers = client.list_image_referrers(repositoryName=name, subjectId={"imageDigest": index.digest})
        assert [r["digest"] for r in referrers["referrers"]] == [sbom.digest]
    # Nothing landed in the source account under another name, and the source is untouched.
    assert _manifest(ecr, name, "v1.0.0")["imageId"]["imageDigest"] == index.digest
    # History keeps each registry's target apart from the source's own repository and tag.
    history = DynamoDbHistory()
    assert history.for_target(name, "v1.0.0") == []
    for location in (f"{name}@{PROD_ACCOUNT}", f"{name}@{OTHER_REGION}"):
        (record,) = history.for_target(location, "v1.0.0")
        assert record["outcome"] == "promoted" and record["target_digest"] == index.digest
        assert record["blobs_mounted"] == 0 and record["blobs_copied"] > 0


def test_each_registry_is_its_own_idempotency_record_and_a_redelivery_does_nothing(
    ecr, aws_env, cross_env, capture_events
):
    name, _ = cross_env
    image = im.image((200,))
    EcrPusher(ecr).push(name, image, "v2.0.0")
    own_bus = capture_events(name)
    event = json.dumps(push_event(name, image.digest, "v2.0.0"))
    assert handler.handle_queue(sqs_batch(event), FakeLambdaContext()) == {"batchItemFailures": []}
    # The copies' PUSH events went to the other registries' buses: nothing here can re-trigger.
    assert own_bus.wait(1, timeout=1.0) == []
    aws_env.control.reset_calls()

    assert handler.handle_queue(sqs_batch(event), FakeLambdaContext()) == {"batchItemFailures": []}

    # Both answered from their records, each after one read of its target tag (in its registry).
    assert aws_env.control.calls() == {"BatchGetImage": 2}
    table = boto3.resource("dynamodb").Table(settings.idempotency_table_name())
    records = [
        json.loads(item["data"])
        for item in table.scan()["Items"]
        if item["id"].startswith(IDEMPOTENCY_KEY_PREFIX)
        and json.loads(item.get("data") or "{}").get("source_digest") == image.digest
    ]
    assert len(records) == 2
    assert {r["outcome"] for r in records} == {"promoted"}


def test_plan_reads_the_target_in_its_own_registry(ecr, aws_env, cross_env):
    from promoter.aws.registry import EcrRegistry, make_ecr_client
    from promoter.model.config import load_config
    from promoter.model.events import parse_event
    from promoter.workflows.service import preview_event

    name, _ = cross_env
    image = im.image((100,))
    EcrPusher(ecr).push(name, image, "v3.0.0")
    config = load_config(handler.config_path())
    event = parse_event(push_event(name, image.digest, "v3.0.0"))
    home = EcrRegistry(make_ecr_client())

    before = preview_event(event, config, home)
    handler.handle_queue(sqs_batch(json.dumps(push_event(name, image.digest, "v3.0.0"))), FakeLambdaContext())
    after = preview_event(event, config, home)

    assert [r.outcome for r in before.results] == ["would-promote", "would-promote"]
    assert [r.outcome for r in after.results] == ["already-present", "already-present"]


def test_reconcile_finds_a_lost_promotion_in_the_other_registries(ecr, aws_env, cross_env):
    from promoter.aws.idempotency import idempotent_runner, make_persistence
    from promoter.aws.registry import EcrRegistry, make_ecr_client
    from promoter.model.config import load_config
    from promoter.workflows.promote import Promoter
    from promoter.workflows.reconcile import reconcile

    name, targets = cross_env
    image = im.image((100,))
    EcrPusher(ecr).push(name, image, "v4.0.0")  # its push event was lost: nothing promoted it
    config = load_config(handler.config_path())
    registry = EcrRegistry(make_ecr_client())

    report = reconcile(config, registry, idempotent_runner(Promoter(registry), make_persistence()))

    assert report.complete
    promoted = [r for r in report.results if r.source_digest == image.digest]
    assert sorted((r.target_location, r.outcome) for r in promoted) == [
        (f"{name}@{PROD_ACCOUNT}", "promoted"),
        (f"{name}@{OTHER_REGION}", "promoted"),
    ]
    for client in targets.values():
        assert _manifest(client, name, "v4.0.0")["imageId"]["imageDigest"] == image.digest
