"""The local AWS's latency model (`local_aws.latency`): parsing, lookup, and the WSGI layer with an
injected sleep (what it would sleep is recorded, nothing waits)."""

from __future__ import annotations

import io

import pytest

from local_aws.latency import (
    AWS_PRESET_BLOB_MBPS,
    AWS_PRESET_MS,
    LatencyLayer,
    LatencyModel,
    Pace,
    parse_latency,
)


def test_aws_preset_sets_every_service_and_the_blob_throughput():
    model = parse_latency("aws")
    assert model.ms == AWS_PRESET_MS
    assert model.blob_mbps == AWS_PRESET_BLOB_MBPS
    assert model.delay_ms("ECR", "PutImage") == AWS_PRESET_MS["PutImage"]
    assert model.delay_ms("ECR", "BatchGetImage") == AWS_PRESET_MS["ECR"]
    assert model.delay_ms("DynamoDB", "PutItem") == AWS_PRESET_MS["DynamoDB"]


def test_items_override_the_preset_and_exact_names_win_over_the_service():
    model = parse_latency("aws, PutImage=300,Registry.PATCH=5,blob_mbps=10")
    assert model.delay_ms("ECR", "PutImage") == 300
    assert model.delay_ms("Registry", "PATCH") == 5
    assert model.delay_ms("Registry", "GET") == AWS_PRESET_MS["Registry"]
    assert model.blob_mbps == 10


def test_without_the_preset_only_the_named_operations_are_delayed():
    model = parse_latency("PutImage=200")
    assert model.delay_ms("ECR", "PutImage") == 200
    assert model.delay_ms("ECR", "BatchGetImage") == 0
    assert model.delay_ms("SQS", "ReceiveMessage") == 0
    assert model.blob_mbps is None


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "fast",
        "PutImage",
        "PutImage=",
        "PutImage=abc",
        "PutImage=-1",
        "PutImage=999999",
        "PutImgae=10",
        "Dynamo=5",
        "aws,,PutImage=1",
        "blob_mbps=0",
        "DynamoDB.Put-Item=3",
    ],
)
def test_bad_latency_specs_are_refused_with_a_message(spec):
    with pytest.raises(ValueError, match="latency"):
        parse_latency(spec)


def test_the_control_api_body_is_parsed_like_the_command_line():
    assert LatencyModel.from_json({"spec": "aws"}) == parse_latency("aws")
    assert LatencyModel.from_json({"ms": {"PutImage": 200}, "blob_mbps": 50}) == parse_latency(
        "PutImage=200,blob_mbps=50"
    )
    with pytest.raises(ValueError):
        LatencyModel.from_json({"ms": {"Nope": 1}})


def _call(app, target: str = "", path: str = "/", method: str = "POST", body: bytes = b""):
    environ = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "HTTP_X_AMZ_TARGET": target,
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "wsgi.input": io.BytesIO(body),
    }
    return b"".join(app(environ, lambda status, headers: None))


def _echo(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = environ["wsgi.input"].read(length) if length else b"ok"
    start_response("200 OK", [])
    return [data]


def test_each_request_sleeps_its_operations_latency_in_the_server_and_is_recorded():
    slept: list[float] = []
    layer = LatencyLayer(parse_latency("PutImage=200,DynamoDB=10"), sleep=slept.append)
    app = layer.wrap(_echo)
    _call(app, "AmazonEC2ContainerRegistry_V20150921.PutImage")
    _call(app, "AmazonEC2ContainerRegistry_V20150921.BatchGetImage")
    _call(app, "DynamoDB_20120810.PutItem")
    _call(app, "", "/_local/calls", "GET")  # the control API is neither delayed nor counted
    assert slept == [0.2, 0.01]
    assert layer.applied() == {"PutImage": 200, "DynamoDB.PutItem": 10}
    assert layer.requests() == {"PutImage": 1, "BatchGetImage": 1, "DynamoDB.PutItem": 1}


def test_kms_requests_are_named_kms_and_the_aws_preset_delays_them():
    """An attestation's KMS Sign (X-Amz-Target `TrentService.Sign`) is `KMS.Sign`, so `--latency aws`
    counts and delays it like every other call the promotion makes."""
    slept: list[float] = []
    layer = LatencyLayer(parse_latency("aws"), sleep=slept.append)
    _call(layer.wrap(_echo), "TrentService.Sign")
    assert layer.requests() == {"KMS.Sign": 1}
    assert slept == [AWS_PRESET_MS["KMS"] / 1000]
    assert parse_latency("KMS.Sign=5").delay_ms("KMS", "Sign") == 5


def test_registry_uploads_are_paced_to_the_blob_throughput():
    slept: list[float] = []
    layer = LatencyLayer(parse_latency("blob_mbps=1"), sleep=slept.append)
    body = b"x" * 500_000
    assert _call(layer.wrap(_echo), path="/v2/repo/blobs/uploads/x", method="PATCH", body=body) == body
    # 0.5 MB at 1 MB/s: the reader sleeps for what it is ahead of the rate (~0.5 s, minus read time).
    assert 0.4 < sum(slept) <= 0.5


def test_pace_sleeps_only_for_what_a_stream_is_ahead_of_its_rate():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pace = Pace(1000.0, sleep=sleep, clock=lambda: now[0])
    pace.after(500)
    assert slept == [0.5]
    now[0] += 2.0  # the sender was slow on its own: no more waiting
    pace.after(500)
    assert slept == [0.5]
