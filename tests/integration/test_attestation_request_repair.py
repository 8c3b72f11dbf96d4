"""Issue 19 on the local AWS: a REQUEST rule's target missing its attestation (promoted before the
attestation key existed). Reconciliation attaches it, as for a push rule's in-sync target: the
rule's gates run now (nothing held), the tag never moves, the attestation says trigger `reconcile`
and no requester; a second pass adds none. It attaches nothing where it cannot tell the truth: an
approval rule (no sweep can approve; `promoter status` says what does), or a target holding a
digest the rule's source does not hold (a break-glass move of something else)."""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from boto3.dynamodb.conditions import Attr

from local_aws import images as im
from promoter import handler, reconcile_handler, settings
from promoter.aws.approvals import ApprovalStore
from promoter.aws.gate_store import DynamoDbGates
from promoter.model import attestation as vsa
from promoter_cli.cmd_release import MANUAL_RULE
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
    public_key,
    request_event,
    statement_of,
    tag_digest,
)
from tests.lambda_events import FakeLambdaContext

pytestmark = pytest.mark.integration

REQUESTER = "arn:aws:iam::123456789012:user/release"
APPROVER = "arn:aws:iam::123456789012:user/approver"


def test_reconcile_attaches_a_request_rules_missing_attestation_once_and_moves_no_tag(
    ecr,
    pusher,
    dev_prod,  # noqa: F811
    deploy,  # noqa: F811
    key_arn,  # noqa: F811
    public_key,  # noqa: F811
    aws_env,
    monkeypatch,
    tmp_path,
    capsys,
):
    source, target = dev_prod
    rule = f"release-{uuid.uuid4().hex[:8]}"
    config = {"rules": [_rule(source, target, name=rule, trigger="request")]}
    config["rules"][0]["targets"][0]["tags"] = ["{tag}", "live"]
    key = os.environ[settings.ATTESTATION_KEY_ENV]
    monkeypatch.delenv(settings.ATTESTATION_KEY_ENV)
    deploy(config)  # promoted before the stack had a key: no attestation
    first, second = im.image((64,)), im.image((64,))
    pusher.push(source, first, "v1")
    deliver(request_event(source, "v1", requested_by=REQUESTER, rule=rule))
    pusher.push(source, second, "v2")  # never requested: `live` stays on v1, v2 is not written
    assert tag_digest(ecr, target, "live") == first.digest and attestations(ecr, target, first.digest) == {}
    started = datetime.now(UTC).replace(microsecond=0)

    monkeypatch.setenv(settings.ATTESTATION_KEY_ENV, key)
    deploy(config)
    report = reconcile_handler.handle({}, FakeLambdaContext(aws_request_id=str(uuid.uuid4())))

    host = host_of(ecr)
    attached = {}
    for tag in ("v1", "live"):  # `live` holds an image the rule could have put there, not its newest
        [attached[tag]] = ours(ecr, target, first.digest, rule, f"{host}/{target}:{tag}")
        statement = statement_of(ecr, target, attached[tag], public_key)  # securesystemslib verified
        promotion = statement["predicate"][vsa.PROMOTION_FIELD]
        assert promotion["trigger"] == "reconcile" and promotion["requestedBy"] is None
        assert promotion["rule"] == rule and statement["subject"][0]["digest"]["sha256"] == first.digest[7:]
        verified = datetime.fromisoformat(statement["predicate"]["timeVerified"].replace("Z", "+00:00"))
        assert verified >= started  # the gates ran now, not at the request
    assert len(attestations(ecr, target, first.digest)) == 2
    assert sorted(r["attestation"] for r in report["results"]) == sorted(attached.values())
    assert {r["outcome"] for r in report["results"]} == {"already-present"}
    # No tag moved or written: `live` still on v1, v2 never requested.
    assert tag_digest(ecr, target, "live") == first.digest and tag_digest(ecr, target, "v2") is None
    assert attestations(ecr, target, second.digest) == {}

    config_file = tmp_path / "promotion.yaml"
    config_file.write_text(json.dumps(config))
    capsys.readouterr()  # the handler's JSON logs
    assert main(["status", "--config", str(config_file), "--json"]) == 0
    shown = {t["tag"]: t for t in json.loads(capsys.readouterr().out)["rules"][0]["targets"]}
    assert shown["v1"]["attestation"] == attached["v1"] and shown["live"]["attestation"] == attached["live"]
    # A second pass finds them: nothing more written.
    handler.runtime.cache_clear()
    aws_env.control.reset_requests()
    again = reconcile_handler.handle({}, FakeLambdaContext(aws_request_id=str(uuid.uuid4())))
    calls = aws_env.control.requests()
    assert not again["results"] and len(attestations(ecr, target, first.digest)) == 2
    # What the pass read for the request rule: its source (one DescribeRepositories, one
    # DescribeImages page), its target repository (one BatchGetImage), and per target tag holding
    # an image of the rule two referrer listings: ours in the target, then the source's (an
    # attestation carried from the source is not the target's). Nothing written, nothing signed.
    read = {op: calls.get(op, 0) for op in ("DescribeRepositories", "DescribeImages", "BatchGetImage")}
    assert read == {"DescribeRepositories": 1, "DescribeImages": 1, "BatchGetImage": 1}
    assert calls.get("ListImageReferrers") == 4
    assert not {op for op in calls if op.startswith("KMS.") or op in ("PutImage", "InitiateLayerUpload")}


def test_an_approval_rules_missing_attestation_stays_missing_and_status_says_what_attaches_it(
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
    plain = _rule(source, target, name=rule, trigger="request")
    key = os.environ[settings.ATTESTATION_KEY_ENV]
    monkeypatch.delenv(settings.ATTESTATION_KEY_ENV)
    deploy({"rules": [plain]})  # promoted before the stack had a key (and before the gate)
    image = im.image((64,))
    pusher.push(source, image, "v1")
    deliver(request_event(source, "v1", requested_by=REQUESTER, rule=rule))
    assert tag_digest(ecr, target, "v1") == image.digest
    promoted_at = datetime.now(UTC)
    config = {"rules": [{**plain, "require": {"approval": {"approvers": [APPROVER]}}}]}

    monkeypatch.setenv(settings.ATTESTATION_KEY_ENV, key)
    deploy(config)
    report = reconcile_handler.handle({}, FakeLambdaContext(aws_request_id=str(uuid.uuid4())))

    assert not report["results"] and attestations(ecr, target, image.digest) == {}  # no sweep approves
    config_file = tmp_path / "promotion.yaml"
    config_file.write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["status", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    said = re.search(
        r"in-sync, attestation missing \(approval rule: request it again after (\S+) and approve it; "
        r"a break-glass promote attests as rule manual\)",
        out,
    )
    assert said, out
    # When the promotion's idempotency record expires: its lifetime after the promotion.
    expiry = datetime.strptime(said.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    lifetime = timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    assert promoted_at - timedelta(minutes=5) <= expiry - lifetime <= promoted_at

    # What status says is so: approved within the record's lifetime, a request is answered from
    # the record (none); approved after it expired, it attaches the rule's attestation, tag kept.
    approve_a_new_request(source, image.digest, rule)
    assert attestations(ecr, target, image.digest) == {}
    expire_idempotency_records(target)
    approve_a_new_request(source, image.digest, rule)
    where = f"{host_of(ecr)}/{target}:v1"
    assert len(ours(ecr, target, image.digest, rule, where)) == 1
    assert len(attestations(ecr, target, image.digest)) == 1
    assert tag_digest(ecr, target, "v1") == image.digest


def approve_a_new_request(source: str, digest: str, rule: str) -> None:
    """A new request of the image; its approval wait approved as the channel records it, and the
    channel's `Promotion Approval Decided` event delivered to the promoter."""
    request = request_event(source, "v1", requested_by=REQUESTER, rule=rule)
    deliver(request)
    [wait] = [w for w in DynamoDbGates().waiting_for(source, digest) if w.event.event_id == request["id"]]
    ApprovalStore().record(wait, APPROVER, "approve", "checked", datetime.now(UTC).timestamp())
    decided = {
        **request,
        "id": str(uuid.uuid4()),
        "source": "image-promoter.approvals",
        "detail-type": "Promotion Approval Decided",
        "detail": {"wait-id": wait.wait_id, "repository": source, "digest": digest},
    }
    deliver(decided)


def test_a_target_holding_what_the_rules_source_does_not_offer_gets_no_attestation_of_the_rule(
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
    deploy(config)
    requested, hotfix, other = im.image((64,)), im.image((64,)), im.image((64,))
    pusher.push(source, requested, "v1")
    deliver(request_event(source, "v1", requested_by=REQUESTER, rule=rule))
    pusher.push(source, other, "v2")  # requested too: the pass repairs this one
    deliver(request_event(source, "v2", requested_by=REQUESTER, rule=rule))
    # A break-glass move of something else: in the source, but under a tag the rule does not take.
    pusher.push(source, hotfix, "hotfix")
    capsys.readouterr()
    assert main(["promote", f"{source}:hotfix", "--to", f"{target}:v1", "--reason", "outage"]) == 0
    assert tag_digest(ecr, target, "v1") == hotfix.digest

    monkeypatch.setenv(settings.ATTESTATION_KEY_ENV, key)
    deploy(config)
    report = reconcile_handler.handle({}, FakeLambdaContext(aws_request_id=str(uuid.uuid4())))

    where = f"{host_of(ecr)}/{target}:v1"
    [repaired] = report["results"]
    assert (repaired["target_tag"], repaired["source_digest"]) == ("v2", other.digest)
    assert len(ours(ecr, target, other.digest, rule, f"{host_of(ecr)}/{target}:v2")) == 1
    assert ours(ecr, target, hotfix.digest, rule, where) == []
    # The break-glass move's own attestation (the local stack's key), never one of the rule's.
    hotfix_rules = [a[vsa.ANNOTATION_RULE] for a in attestations(ecr, target, hotfix.digest).values()]
    assert hotfix_rules == [MANUAL_RULE]
    assert attestations(ecr, target, requested.digest) == {}
    assert tag_digest(ecr, target, "v1") == hotfix.digest  # never moved back
    config_file = tmp_path / "promotion.yaml"
    config_file.write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["status", "--config", str(config_file)]) == 0
    assert (
        "attestation missing (the rule's source holds it under no tag the rule takes: "
        "reconcile does not attach it)" in capsys.readouterr().out
    )


def expire_idempotency_records(target: str) -> None:
    """What DynamoDB's TTL does once the records of the promotions into `target` expired."""
    table = boto3.resource("dynamodb").Table(settings.idempotency_table_name())
    found = table.scan(FilterExpression=Attr("data").contains(target))["Items"]
    assert found
    for item in found:
        table.delete_item(Key={"id": item["id"]})
