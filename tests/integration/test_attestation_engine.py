"""Issue 19 on the local AWS: every promotion that writes a target leaves exactly one attestation per
(digest, target, rule) in the target repository, put before the tag, signed by the local KMS key and
verified here by an implementation that is not ours (securesystemslib's DSSE `Envelope` + `SSlibKey`
with the public key KMS GetPublicKey returns); a replay and a second delivery add none; kept,
unverified and failed promotions leave none. The kinds: push and request through the Lambda
handler, reconcile (the scheduled handler), break-glass `promoter promote`, `promoter rollback`,
and targets in another account and region."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config
from cryptography.hazmat.primitives.serialization import load_der_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from local_aws import images as im
from local_aws.images import EcrPusher
from local_aws.stack_route import attestation_key
from promoter import handler, reconcile_handler, settings
from promoter.aws import remote
from promoter.aws.history import DynamoDbHistory
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model import attestation as vsa
from promoter.model.outcomes import ALREADY_PRESENT
from promoter.model.plan import Action, SourceImage
from promoter.workflows.attest import attestor_from_environment
from promoter.workflows.promote import Promoter
from promoter_cli.main import main
from tests.integration.test_handler import push_event
from tests.lambda_events import FakeLambdaContext, sqs_batch

pytestmark = pytest.mark.integration

REGION = "us-east-1"
PROD_ACCOUNT = "210987654321"
PROD_ROLE = f"arn:aws:iam::{PROD_ACCOUNT}:role/image-promoter-target"
OTHER_REGION = "eu-west-1"
MAX_BUNDLE_BYTES = 1 << 20


@pytest.fixture
def kms(aws_env):
    return boto3.client("kms", endpoint_url=aws_env.endpoint, region_name=REGION)


@pytest.fixture
def key_arn(kms, monkeypatch) -> str:
    """The local stack's attestation key (as `promoter local` creates it), configured."""
    arn = attestation_key(kms)
    monkeypatch.setenv(settings.ATTESTATION_KEY_ENV, arn)
    return arn


@pytest.fixture
def public_key(kms, key_arn):
    return load_der_public_key(kms.get_public_key(KeyId=key_arn)["PublicKey"])


@pytest.fixture
def deploy(aws_env, tmp_path, monkeypatch):
    """`deploy(config)`: stages the configuration as the stack does and starts a fresh handler."""

    def stage(config: dict) -> None:
        path = tmp_path / settings.STAGED_CONFIG_FILE
        path.write_text(json.dumps(config))
        monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        monkeypatch.setattr(remote, "_default", None)
        handler.runtime.cache_clear()

    yield stage
    handler.runtime.cache_clear()


def deliver(*events: dict) -> dict:
    answer = handler.handle_queue(sqs_batch(*(json.dumps(e) for e in events)), FakeLambdaContext())
    assert answer == {"batchItemFailures": []}
    return answer


def request_event(repository: str, tag: str, requested_by: str = "alice", rule: str | None = None) -> dict:
    detail = {"repository-name": repository, "image-tag": tag, "requested-by": requested_by}
    if rule:
        detail["rule"] = rule
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": settings.REQUEST_DETAIL_TYPE,
        "source": settings.DEFAULT_REQUEST_EVENT_SOURCE,
        "account": "000000000000",
        "time": "2026-12-06T18:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def attestations(client, repository: str, digest: str) -> dict[str, dict[str, str]]:
    """Digest -> annotations of every Sigstore bundle referrer of `digest` in `repository`."""
    listed = client.list_image_referrers(
        repositoryName=repository,
        subjectId={"imageDigest": digest},
        filter={"artifactTypes": [vsa.BUNDLE_MEDIA_TYPE], "artifactStatus": "ANY"},
    )["referrers"]
    return {r["digest"]: r.get("annotations") or {} for r in listed}


def ours(client, repository: str, digest: str, rule: str, target: str) -> list[str]:
    return [
        d
        for d, notes in attestations(client, repository, digest).items()
        if vsa.is_our_attestation(notes, rule, target)
    ]


def host_of(client) -> str:
    return EcrRegistry(client).registry_host()


def statement_of(client, repository: str, attestation: str, public_key) -> dict:
    """The attestation's statement, after securesystemslib verified its envelope with `public_key`."""
    manifest = json.loads(
        client.batch_get_image(
            repositoryName=repository,
            imageIds=[{"imageDigest": attestation}],
            acceptedMediaTypes=[im.OCI_MANIFEST],
        )["images"][0]["imageManifest"]
    )
    [layer] = manifest["layers"]
    bundle = EcrRegistry(client).read_blob(repository, layer["digest"], MAX_BUNDLE_BYTES)
    envelope = Envelope.from_dict(json.loads(bundle)["dsseEnvelope"])
    keyid = envelope.signatures and next(iter(envelope.signatures))
    sslib_key = SSlibKey.from_crypto(public_key, keyid=keyid, scheme="ecdsa-sha2-nistp256")
    assert set(envelope.verify([sslib_key], 1)) == {keyid}  # raises VerificationError otherwise
    return json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))


def kms_calls(aws_env) -> dict[str, int]:
    """KMS requests served since the last reset, by operation (`KMS.<Operation>`)."""
    prefix = "KMS."
    return {k[len(prefix) :]: n for k, n in aws_env.control.requests().items() if k.startswith(prefix)}


def tag_digest(client, repository: str, tag: str) -> str | None:
    images = client.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return images[0]["imageId"]["imageDigest"] if images else None


@pytest.fixture
def dev_prod(ecr, unique_name):
    source, target = unique_name("dev"), unique_name("prod")
    for name in (source, target):
        ecr.create_repository(repositoryName=name)
    return source, target


def _rule(source: str, target: str, name: str = "dev-to-prod", **extra) -> dict:
    return {
        "name": name,
        "source": {"repository": source, "tags": ["v*"]},
        "targets": [{"repository": target, "tags": ["{tag}"]}],
        **extra,
    }


def test_a_push_is_attested_once_before_its_tag_and_a_replay_or_second_delivery_adds_none(
    ecr, pusher, dev_prod, deploy, key_arn, public_key, aws_env
):
    source, target = dev_prod
    deploy({"rules": [_rule(source, target)]})
    image = im.multi_arch(layer_size=200)
    pusher.push(source, image, "v1.0.0")
    event = push_event(source, image.digest, "v1.0.0")
    aws_env.control.reset_requests()

    deliver(event)

    assert kms_calls(aws_env) == {"Sign": 1}
    assert tag_digest(ecr, target, "v1.0.0") == image.digest
    where = f"{host_of(ecr)}/{target}:v1.0.0"
    [attestation] = ours(ecr, target, image.digest, "dev-to-prod", where)
    statement = statement_of(ecr, target, attestation, public_key)
    assert statement["subject"][0]["digest"] == {"sha256": image.digest.removeprefix("sha256:")}
    predicate = statement["predicate"]
    assert predicate["resourceUri"] == where
    assert predicate["verificationResult"] == "PASSED"
    assert predicate[vsa.PROMOTION_FIELD]["trigger"] == "push"
    assert predicate[vsa.PROMOTION_FIELD]["requestedBy"] is None  # a push: nobody authenticated
    # The history links the record to its attestation, as the result does.
    [record] = DynamoDbHistory().for_target(target, "v1.0.0")
    assert record["attestation"] == attestation

    deliver(event)  # a replay: the idempotency record answers
    deliver(push_event(source, image.digest, "v1.0.0"))  # a second delivery under another id
    # The engine itself, past any idempotency record: the tag is there, and so is the attestation.
    aws_env.control.reset_requests()
    action = Action("dev-to-prod", SourceImage(source, "v1.0.0", image.digest), target, "v1.0.0")
    again = Promoter(EcrRegistry(make_ecr_client()), attestor=attestor_from_environment(None)).promote(action)
    assert (again.outcome, again.attestation, again.stats.manifests_put) == (ALREADY_PRESENT, attestation, 0)
    assert ours(ecr, target, image.digest, "dev-to-prod", where) == [attestation]
    assert kms_calls(aws_env) == {}


def test_a_request_is_attested_with_its_gates_evidence_and_the_requester_aws_authenticated(
    ecr, pusher, dev_prod, deploy, key_arn, public_key, aws_env
):
    source, target = dev_prod
    rule = _rule(
        source, target, name="release", trigger="request", require={"scan": {"max_severity": "HIGH"}}
    )
    deploy({"rules": [rule]})
    image = im.image((64,))
    pusher.push(source, image, "v2.0.0")
    aws_env.control.set_scan_findings(source, image.digest, [{"name": "CVE-1", "severity": "LOW"}])

    deliver(request_event(source, "v2.0.0", requested_by="alice", rule="release"))

    where = f"{host_of(ecr)}/{target}:v2.0.0"
    [attestation] = ours(ecr, target, image.digest, "release", where)
    predicate = statement_of(ecr, target, attestation, public_key)["predicate"]
    promotion = predicate[vsa.PROMOTION_FIELD]
    assert promotion["trigger"] == "request"
    # The requester as AWS authenticated it (the envelope's account), never the declared "alice".
    assert promotion["requestedBy"].startswith("account 000000000000")
    assert promotion["source"]["uri"] == f"{host_of(ecr)}/{source}:v2.0.0"
    assert vsa.gate_level("scan") in predicate["verifiedLevels"]
    # The scan gate's own evidence: the findings it read, by the digest of their canonical JSON.
    [record] = DynamoDbHistory().for_target(target, "v2.0.0")
    [finding] = predicate["inputAttestations"]
    assert finding["uri"] == f"ecr://{source}@{image.digest}/scan-findings" and set(finding["digest"]) == {
        "sha256"
    }
    assert record["attestation"] == attestation


def test_kept_unverified_blocked_and_conflicting_promotions_leave_no_attestation(
    ecr, pusher, unique_name, deploy, key_arn, kms, aws_env
):
    source, kept_target, signed_target, scanned_target, frozen = (
        unique_name(n) for n in ("dev", "kept", "signed", "scanned", "frozen")
    )
    for name in (source, kept_target, signed_target, scanned_target):
        ecr.create_repository(repositoryName=name)
    ecr.create_repository(repositoryName=frozen, imageTagMutability="IMMUTABLE")
    cosign_key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    deploy(
        {
            "rules": [
                _rule(source, kept_target, name="kept"),
                _rule(
                    source,
                    signed_target,
                    name="signed",
                    require={"signature": {"cosign": {"keys": [f"awskms:///{cosign_key}"]}}},
                ),
                _rule(source, scanned_target, name="scanned", require={"scan": {"max_severity": "LOW"}}),
                _rule(source, frozen, name="frozen"),
            ]
        }
    )
    older, newer, held = im.image((32,)), im.image((32,)), im.image((32,))
    pusher.push(frozen, held, "v3")  # an immutable tag that holds another image: a conflict
    pusher.push(source, older, "v3")
    pusher.push(source, newer, "v3")  # the tag moved on: the late event of `older` is kept back
    aws_env.control.set_scan_findings(source, newer.digest, [{"name": "CVE-9", "severity": "CRITICAL"}])
    deliver(push_event(source, newer.digest, "v3"))

    answer = deliver(push_event(source, older.digest, "v3"))

    assert answer == {"batchItemFailures": []}
    assert tag_digest(ecr, kept_target, "v3") == newer.digest  # kept: the newer push stays
    assert attestations(ecr, kept_target, older.digest) == {}
    assert len(attestations(ecr, kept_target, newer.digest)) == 1  # the promotion that happened
    assert tag_digest(ecr, signed_target, "v3") is None  # unverified: unsigned
    assert tag_digest(ecr, scanned_target, "v3") is None  # blocked: a CRITICAL finding
    assert tag_digest(ecr, frozen, "v3") == held.digest  # conflict: immutable
    for target in (signed_target, scanned_target, frozen):
        for image in (older, newer):
            assert attestations(ecr, target, image.digest) == {}
    outcomes = {
        (r["rule"], r["outcome"])
        for t in (kept_target, signed_target, scanned_target, frozen)
        for r in DynamoDbHistory().for_target(t, "v3")
    }
    assert ("kept", "kept") in outcomes and ("signed", "unverified") in outcomes
    assert ("scanned", "blocked") in outcomes and ("frozen", "conflict") in outcomes
    assert not any(r.get("attestation") for r in DynamoDbHistory().for_target(frozen, "v3"))


def _registry_client(endpoint: str, key: str, region: str = REGION):
    """A client of one registry: by the local convention a 12-digit access key is its account."""
    return boto3.client(
        "ecr",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def test_targets_in_another_account_and_region_get_the_same_attestation_in_their_registry(
    ecr, unique_name, deploy, key_arn, public_key, aws_env
):
    name = unique_name("app")
    ecr.create_repository(repositoryName=name)
    prod = _registry_client(aws_env.endpoint, PROD_ACCOUNT)
    west = _registry_client(aws_env.endpoint, aws_env.account, OTHER_REGION)
    for client in (prod, west):
        client.create_repository(repositoryName=name)
    deploy(
        {
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
    )
    image = im.multi_arch(layer_size=100, attestations=False)
    EcrPusher(ecr).push(name, image, "v1.0.0")
    aws_env.control.reset_requests()

    deliver(push_event(name, image.digest, "v1.0.0"))

    assert kms_calls(aws_env) == {"Sign": 2}  # one attestation per target, signed by the home key
    hosts = set()
    for client in (prod, west):
        assert tag_digest(client, name, "v1.0.0") == image.digest
        where = f"{host_of(client)}/{name}:v1.0.0"
        hosts.add(host_of(client))
        [attestation] = ours(client, name, image.digest, "dev-to-prod", where)
        assert statement_of(client, name, attestation, public_key)["predicate"]["resourceUri"] == where
    assert len(hosts | {host_of(ecr)}) == 3  # each registry names itself
    # Nothing attested in the source registry, which is no target.
    assert attestations(ecr, name, image.digest) == {}


def test_an_attestation_carried_from_the_source_is_never_taken_for_the_new_one(
    ecr, pusher, unique_name, deploy, key_arn, public_key, aws_env
):
    dev, staging, prod = (unique_name(n) for n in ("dev", "staging", "prod"))
    for name in (dev, staging, prod):
        ecr.create_repository(repositoryName=name)
    deploy({"rules": [_rule(dev, staging, name="to-staging"), _rule(staging, prod, name="to-prod")]})
    image = im.image((64,))
    pusher.push(dev, image, "v1")
    deliver(push_event(dev, image.digest, "v1"))
    host = host_of(ecr)
    [staged] = ours(ecr, staging, image.digest, "to-staging", f"{host}/{staging}:v1")
    # A referrer in staging that claims to be our attestation of the coming promotion (anyone who
    # may push to staging can write one): carried along like any referrer, never taken for ours.
    forged = _forged_attestation(image, rule="to-prod", target=f"{host}/{prod}:v1")
    pusher.push(staging, forged)

    deliver(push_event(staging, image.digest, "v1"))

    listed = attestations(ecr, prod, image.digest)
    assert staged in listed and forged.digest in listed  # carried, as any referrer
    [attested] = [
        d for d in ours(ecr, prod, image.digest, "to-prod", f"{host}/{prod}:v1") if d != forged.digest
    ]
    assert statement_of(ecr, prod, attested, public_key)["predicate"]["resourceUri"] == f"{host}/{prod}:v1"
    [record] = DynamoDbHistory().for_target(prod, "v1")
    assert record["attestation"] == attested


def _forged_attestation(subject: im.Manifest, *, rule: str, target: str) -> im.Manifest:
    base = im.referrer(subject, artifact_type=vsa.BUNDLE_MEDIA_TYPE)
    doc = json.loads(base.raw)
    doc["annotations"] = vsa.attestation_annotations(rule, target, datetime.now(UTC))
    return im.Manifest(json.dumps(doc).encode(), base.media_type, blobs=base.blobs)


def test_status_shows_a_missing_attestation_and_reconcile_attaches_it(
    ecr, pusher, dev_prod, deploy, kms, public_key, aws_env, monkeypatch, tmp_path, capsys
):
    source, target = dev_prod
    config = {"rules": [_rule(source, target)]}
    key = os.environ[settings.ATTESTATION_KEY_ENV]
    monkeypatch.delenv(settings.ATTESTATION_KEY_ENV)
    deploy(config)  # promoted before the stack had a key: no attestation
    image = im.image((64,))
    pusher.push(source, image, "v1")
    deliver(push_event(source, image.digest, "v1"))
    assert tag_digest(ecr, target, "v1") == image.digest and attestations(ecr, target, image.digest) == {}
    monkeypatch.setenv(settings.ATTESTATION_KEY_ENV, key)
    config_file = tmp_path / "promotion.yaml"
    config_file.write_text(json.dumps(config))
    capsys.readouterr()

    assert main(["status", "--config", str(config_file), "--json"]) == 0
    [shown] = [t for t in json.loads(capsys.readouterr().out)["rules"][0]["targets"] if t["tag"] == "v1"]
    assert shown["state"] == "in-sync" and shown["attestation"] is None
    assert main(["status", "--config", str(config_file)]) == 0
    assert "in-sync, attestation missing" in capsys.readouterr().out

    deploy(config)
    report = reconcile_handler.handle({}, FakeLambdaContext(aws_request_id=str(uuid.uuid4())))

    where = f"{host_of(ecr)}/{target}:v1"
    [attestation] = ours(ecr, target, image.digest, "dev-to-prod", where)
    statement = statement_of(ecr, target, attestation, public_key)
    assert statement["predicate"][vsa.PROMOTION_FIELD]["trigger"] == "reconcile"
    assert [r["attestation"] for r in report["results"]] == [attestation]
    assert tag_digest(ecr, target, "v1") == image.digest
    capsys.readouterr()  # the handler's JSON logs
    assert main(["status", "--config", str(config_file), "--json"]) == 0
    [shown] = [t for t in json.loads(capsys.readouterr().out)["rules"][0]["targets"] if t["tag"] == "v1"]
    assert shown["attestation"] == attestation
    # A second pass finds it: nothing more written.
    handler.runtime.cache_clear()
    again = reconcile_handler.handle({}, FakeLambdaContext(aws_request_id=str(uuid.uuid4())))
    assert not again["results"] and ours(ecr, target, image.digest, "dev-to-prod", where) == [attestation]


def test_break_glass_promote_and_rollback_are_attested_naming_their_trigger(
    ecr, pusher, dev_prod, key_arn, public_key, aws_env, capsys
):
    source, target = dev_prod
    first, second = im.image((48,)), im.image((48,))
    pusher.push(source, first, "v1")
    pusher.push(source, second, "v2")
    host = host_of(ecr)

    assert main(["promote", f"{source}:v1", "--to", f"{target}:live", "--reason", "hotfix"]) == 0
    assert main(["promote", f"{source}:v2", "--to", f"{target}:live", "--reason", "next"]) == 0
    assert main(["rollback", "--repository", target, "--tag", "live", "--reason", "bad v2"]) == 0
    capsys.readouterr()

    where = f"{host}/{target}:live"
    assert tag_digest(ecr, target, "live") == first.digest
    [manual_first] = ours(ecr, target, first.digest, "manual", where)
    [manual_second] = ours(ecr, target, second.digest, "manual", where)
    [rolled_back] = ours(ecr, target, first.digest, "rollback", where)
    promotion = statement_of(ecr, target, manual_first, public_key)["predicate"][vsa.PROMOTION_FIELD]
    assert promotion["trigger"] == "manual" and promotion["requestedBy"]  # the STS caller
    rollback = statement_of(ecr, target, rolled_back, public_key)["predicate"][vsa.PROMOTION_FIELD]
    assert rollback["trigger"] == "rollback" and rollback["rule"] == "rollback"
    history = {r["outcome"]: r["attestation"] for r in DynamoDbHistory().for_target(target, "live")}
    assert history["rollback"] == rolled_back
    # `promoter history` links each record to its attestation.
    assert main(["history", "--repository", target, "--tag", "live", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["attestation"] for r in rows} == {manual_first, manual_second, rolled_back}
    assert manual_second


# What an attestation adds to a promotion (BENCHMARKS.md, "attestations"): ECR: one
# ListImageReferrers (is ours there?), one BatchCheckLayerAvailability (its two blobs), three
# layer-upload calls per blob the target lacks (the bundle always; the empty config `{}` only the
# first time a repository gets one), one PutImage (by digest); KMS: one Sign.
ATTESTATION_ECR_CALLS = {
    "ListImageReferrers": 1,
    "BatchCheckLayerAvailability": 1,
    "InitiateLayerUpload": 1,
    "UploadLayerPart": 1,
    "CompleteLayerUpload": 1,
    "PutImage": 1,
}
FIRST_IN_REPOSITORY = {"InitiateLayerUpload": 1, "UploadLayerPart": 1, "CompleteLayerUpload": 1}


def test_an_attestation_costs_six_ecr_calls_and_one_kms_sign_three_more_the_first_time(
    ecr, pusher, unique_name, key_arn, aws_env
):
    source, plain, attested = unique_name("dev"), unique_name("plain"), unique_name("attested")
    for name in (source, plain, attested):
        ecr.create_repository(repositoryName=name)
    images = [im.image((64, 32)) for _ in range(3)]
    for index, image in enumerate(images):
        pusher.push(source, image, f"v{index}")
    registry = EcrRegistry(make_ecr_client())
    registry.registry_host()  # GetAuthorizationToken, once per process (the Lambda's /v2 copies share it)
    without = Promoter(registry)
    with_key = Promoter(registry, attestor=attestor_from_environment(None))

    def cost(promoter: Promoter, target: str, index: int) -> tuple[dict[str, int], dict[str, int]]:
        aws_env.control.reset_calls()
        aws_env.control.reset_requests()
        action = Action("r", SourceImage(source, f"v{index}", images[index].digest), target, f"v{index}")
        assert promoter.promote(action).outcome == "promoted"
        return aws_env.control.calls(), kms_calls(aws_env)

    for index in range(3):
        base, base_kms = cost(without, plain, index)
        calls, signs = cost(with_key, attested, index)
        added = {op: n - base.get(op, 0) for op, n in calls.items() if n != base.get(op, 0)}
        expected = dict(ATTESTATION_ECR_CALLS)
        if index == 0:
            expected = {op: n + FIRST_IN_REPOSITORY.get(op, 0) for op, n in expected.items()}
        assert added == expected, index
        assert (base_kms, signs) == ({}, {"Sign": 1})
    # A replay past the idempotency record (the tag is there, so is the attestation): the target's
    # listing, and the source image's (ours must not be one carried from there); nothing written.
    aws_env.control.reset_calls()
    aws_env.control.reset_requests()
    action = Action("r", SourceImage(source, "v2", images[2].digest), attested, "v2")
    assert with_key.promote(action).outcome == ALREADY_PRESENT
    assert aws_env.control.calls() == {"BatchGetImage": 1, "ListImageReferrers": 2}
    assert kms_calls(aws_env) == {}


def test_without_a_key_promotions_go_on_unattested_and_say_so_once(
    ecr, pusher, dev_prod, deploy, monkeypatch, caplog
):
    from promoter.workflows import attest

    source, target = dev_prod
    monkeypatch.delenv(settings.ATTESTATION_KEY_ENV, raising=False)
    monkeypatch.setattr(attest, "_warned_no_key", False)  # as a fresh process
    deploy({"rules": [_rule(source, target)]})
    first, second = im.image((32,)), im.image((32,))
    pusher.push(source, first, "v1")
    pusher.push(source, second, "v2")

    with caplog.at_level("WARNING", logger="promoter"):
        deliver(push_event(source, first.digest, "v1"))
        handler.runtime.cache_clear()  # a second cold start in the same process
        deliver(push_event(source, second.digest, "v2"))

    assert tag_digest(ecr, target, "v1") == first.digest and tag_digest(ecr, target, "v2") == second.digest
    assert attestations(ecr, target, first.digest) == {} == attestations(ecr, target, second.digest)
    said = [r for r in caplog.records if settings.ATTESTATION_KEY_ENV in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING"
