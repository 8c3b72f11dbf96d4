"""Faults on demand (rates, fail_next), call counts, and bad input answered as ECR does (never 500)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from local_aws import images as im

pytestmark = pytest.mark.integration


@pytest.fixture
def control(local_aws):
    """The control client; injected faults and rates are cleared after each test."""
    yield local_aws.control
    local_aws.control.clear_faults()


def test_calls_beyond_the_rate_are_throttled_with_rate_exceeded(ecr, repo, control):
    control.set_rate("DescribeRepositories", 3)
    outcomes = []
    for _ in range(6):
        try:
            ecr.describe_repositories(repositoryNames=[repo])
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
            assert exc.response["Error"]["Message"] == "Rate exceeded"
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert outcomes[:3] == ["ok"] * 3
    assert "ThrottlingException" in outcomes[3:]


def test_botocore_standard_retries_ride_out_a_throttle(aws_env, repo, control):
    import boto3
    from botocore.config import Config

    patient = boto3.client("ecr", config=Config(retries={"max_attempts": 5, "mode": "standard"}))
    control.fail_next("DescribeRepositories", "ThrottlingException", count=2, message="Rate exceeded")
    assert patient.describe_repositories(repositoryNames=[repo])["repositories"][0]["repositoryName"] == repo


def test_fail_next_fails_exactly_the_next_n_calls_of_that_operation(ecr, repo, pusher, control):
    manifest = im.image()
    for blob in manifest.blobs:
        pusher.push_blob(repo, blob)
    control.fail_next("PutImage", "ServerException", count=2, message="boom")
    codes = []
    for _ in range(3):
        try:
            ecr.put_image(repositoryName=repo, imageManifest=manifest.text, imageTag="v1")
            codes.append("ok")
        except ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
    assert codes == ["ServerException", "ServerException", "ok"]


def test_fail_next_with_an_arbitrary_exception_name(ecr, repo, control):
    control.fail_next("DescribeImages", "KmsException", count=1)
    with pytest.raises(ClientError) as exc:
        ecr.describe_images(repositoryName=repo)
    assert exc.value.response["Error"]["Code"] == "KmsException"


def test_calls_are_counted_per_operation(ecr, repo, pusher, control):
    manifest = im.image((100, 200))
    control.reset_calls()
    pusher.push(repo, manifest, "v1")
    calls = control.calls()
    assert calls["PutImage"] == 1
    assert calls["BatchCheckLayerAvailability"] == 3
    assert calls["InitiateLayerUpload"] == calls["CompleteLayerUpload"] == 3
    control.reset_calls()
    assert control.calls() == {}


def _raw_ecr(local_aws, op: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(
        local_aws.endpoint + "/",
        data=body,
        method="POST",
        headers={
            "X-Amz-Target": f"AmazonEC2ContainerRegistry_V20150921.{op}",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261126/us-east-1/ecr/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(
    ("op", "body", "expected"),
    [
        ("PutImage", b"{not json", "SerializationException"),
        ("PutImage", b"[1, 2]", "SerializationException"),
        ("PutImage", b"{}", "InvalidParameterException"),
        (
            "PutImage",
            json.dumps({"repositoryName": 7, "imageManifest": "{}"}).encode(),
            "InvalidParameterException",
        ),
        (
            "BatchGetImage",
            json.dumps({"repositoryName": "x-never", "imageIds": "nope"}).encode(),
            "RepositoryNotFoundException",
        ),
        (
            "CreateRepository",
            json.dumps({"repositoryName": "Bad Name!"}).encode(),
            "InvalidParameterException",
        ),
        (
            "CreateRepository",
            json.dumps({"repositoryName": "ok-name-x", "imageTagMutability": "SOMETIMES"}).encode(),
            "InvalidParameterException",
        ),
        (
            "UploadLayerPart",
            json.dumps({"repositoryName": "x-never"}).encode(),
            "RepositoryNotFoundException",
        ),
        ("NoSuchOperation", b"{}", "UnknownOperationException"),
    ],
)
def test_bad_input_is_a_400_with_the_right_exception_never_a_500(local_aws, op, body, expected):
    status, reply = _raw_ecr(local_aws, op, body)
    assert (status, reply["__type"]) == (400, expected)
    assert reply["message"]


def test_bad_image_ids_in_batch_get_image_are_reported_as_failures(ecr, repo):
    resp = ecr.batch_get_image(
        repositoryName=repo, imageIds=[{"imageDigest": "sha256:xyz"}, {"imageTag": "a b"}]
    )
    assert [f["failureCode"] for f in resp["failures"]] == ["InvalidImageDigest", "InvalidImageTag"]


def test_ecr_requests_never_reach_moto(local_aws):
    # An ECR operation the local ECR does not implement (moto's ECR would answer it, unfaithfully).
    status, reply = _raw_ecr(local_aws, "DescribePullThroughCacheRules", b"{}")
    assert (status, reply["__type"]) == (400, "UnknownOperationException")


def test_moto_serves_dynamodb_tables_the_engine_expects(aws_env):
    import boto3

    from promoter.settings import DEFAULT_HISTORY_TABLE, DEFAULT_IDEMPOTENCY_TABLE

    ddb = boto3.client("dynamodb")
    idem = ddb.describe_table(TableName=DEFAULT_IDEMPOTENCY_TABLE)["Table"]
    assert idem["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    ttl = ddb.describe_time_to_live(TableName=DEFAULT_IDEMPOTENCY_TABLE)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expiration"
    hist = ddb.describe_table(TableName=DEFAULT_HISTORY_TABLE)["Table"]
    assert hist["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]


def test_sts_answers_with_the_local_account(aws_env):
    import boto3

    assert boto3.client("sts").get_caller_identity()["Account"] == "123456789012"
