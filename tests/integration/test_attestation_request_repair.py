"""Issue 19 on the local AWS: a REQUEST rule's target promoted before the attestation key existed.
The reconciliation plans push rules only (it never promotes what nobody requested), so it does not
attach the missing attestation there: an attestation of a request rule records the request (who
asked, what the gates found then), which the sweep cannot know. `promoter status` says so. A new
request attaches it (`already-present`, the tag untouched) once the idempotency record of the
first promotion expired: within its 7 days the record answers."""

from __future__ import annotations

import json
import os
import uuid

import boto3
import pytest
from boto3.dynamodb.conditions import Attr

from local_aws import images as im
from promoter import reconcile_handler, settings
from promoter_cli.main import main
from tests.integration.test_attestation_engine import (  # noqa: F401  (fixtures)
    _rule,
    attestations,
    deliver,
    deploy,
    dev_prod,
    host_of,
    key_arn,
    kms,
    ours,
    request_event,
    tag_digest,
)
from tests.lambda_events import FakeLambdaContext

pytestmark = pytest.mark.integration

REQUESTER = "arn:aws:iam::123456789012:user/release"


def test_reconcile_leaves_a_request_rules_missing_attestation_and_status_says_to_request_again(
    ecr,
    pusher,
    dev_prod,  # noqa: F811
    deploy,  # noqa: F811
    key_arn,  # noqa: F811
    monkeypatch,
    tmp_path,
    capsys,
):
    source, target = dev_prod
    rule = f"release-{uuid.uuid4().hex[:8]}"
    config = {"rules": [_rule(source, target, name=rule, trigger="request")]}
    key = os.environ[settings.ATTESTATION_KEY_ENV]
    monkeypatch.delenv(settings.ATTESTATION_KEY_ENV)
    deploy(config)  # promoted before the stack had a key: no attestation
    image = im.image((64,))
    pusher.push(source, image, "v1")
    deliver(request_event(source, "v1", requested_by=REQUESTER, rule=rule))
    assert tag_digest(ecr, target, "v1") == image.digest and attestations(ecr, target, image.digest) == {}

    monkeypatch.setenv(settings.ATTESTATION_KEY_ENV, key)
    deploy(config)
    report = reconcile_handler.handle({}, FakeLambdaContext(aws_request_id=str(uuid.uuid4())))
    assert not report["results"] and attestations(ecr, target, image.digest) == {}  # not repaired

    config_file = tmp_path / "promotion.yaml"
    config_file.write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["status", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out

    assert "in-sync, attestation missing (request rule: reconcile does not attach it)" in out

    # A new request within the idempotency window is answered from the record: still none.
    deliver(request_event(source, "v1", requested_by=REQUESTER, rule=rule))
    assert attestations(ecr, target, image.digest) == {}
    # Once the record expired (DynamoDB's TTL deletes it after 7 days), a request attaches it and
    # leaves the tag where it is.
    expire_idempotency_records(target)
    deliver(request_event(source, "v1", requested_by=REQUESTER, rule=rule))

    where = f"{host_of(ecr)}/{target}:v1"
    [attestation] = ours(ecr, target, image.digest, rule, where)
    assert tag_digest(ecr, target, "v1") == image.digest
    capsys.readouterr()
    assert main(["status", "--config", str(config_file), "--json"]) == 0
    [shown] = [t for t in json.loads(capsys.readouterr().out)["rules"][0]["targets"] if t["tag"] == "v1"]
    assert shown["state"] == "in-sync" and shown["attestation"] == attestation


def expire_idempotency_records(target: str) -> None:
    """What DynamoDB's TTL does once the records of the promotions into `target` expired."""
    table = boto3.resource("dynamodb").Table(settings.idempotency_table_name())
    found = table.scan(FilterExpression=Attr("data").contains(target))["Items"]
    assert found
    for item in found:
        table.delete_item(Key={"id": item["id"]})
