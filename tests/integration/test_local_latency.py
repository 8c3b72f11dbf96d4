"""The latency model in the local AWS's request path, switched through the control API, and
`promoter local --latency` refusing bad input. Only generous lower bounds on time (a 200 ms
operation takes at least 200 ms); the control API reports what was applied."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from local_aws import images as im
from local_aws.control import ControlClient
from local_aws.latency import parse_latency
from promoter.aws.rate_limit import shared_rate
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model.manifests import Manifest

pytestmark = pytest.mark.integration
PROMOTER = [sys.executable, "-m", "promoter_cli.main"]


@pytest.fixture
def control(local_aws):
    """The control client; the latency model is switched off and requests reset after each test."""
    local_aws.control.reset_requests()
    yield local_aws.control
    local_aws.control.set_latency(None)


def test_an_operation_given_200_ms_takes_at_least_200_ms_and_only_that_operation(ecr, repo, control):
    model = control.set_latency("DescribeRepositories=200")
    assert model["ms"] == {"DescribeRepositories": 200}
    began = time.perf_counter()
    ecr.describe_repositories(repositoryNames=[repo])
    assert time.perf_counter() - began >= 0.2
    ecr.describe_images(repositoryName=repo)
    ecr.describe_repositories(repositoryNames=[repo])
    assert control.latency()["applied_ms"] == {"DescribeRepositories": 400}
    requests = control.requests()
    assert requests["DescribeRepositories"] == 2 and requests["DescribeImages"] == 1


def test_the_aws_preset_delays_ecr_registry_and_dynamodb_requests(aws_env, ecr, repo, control):
    import boto3

    control.set_latency("aws")
    ecr.describe_images(repositoryName=repo)
    boto3.client("dynamodb").list_tables()
    password = aws_env.password
    request = urllib.request.Request(f"{aws_env.endpoint}/v2/", headers={"Authorization": _basic(password)})
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200
    applied = control.latency()["applied_ms"]
    assert applied["DescribeImages"] == 50
    assert applied["DynamoDB.ListTables"] == 10
    assert applied["Registry.GET"] == 50


def test_blob_downloads_are_paced_to_the_configured_throughput(ecr, repo, pusher, control):
    manifest = im.image((1_000_000,))
    pusher.push(repo, manifest, "v1")
    layer = max(manifest.blobs, key=lambda blob: blob.size)
    control.set_latency("blob_mbps=4")
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=layer.digest)["downloadUrl"]
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        assert len(resp.read()) == layer.size
    # ~1 MB at 4 MB/s: at least 0.25 s (minus the first chunk, sent before the pace can wait).
    assert time.perf_counter() - began >= 0.2
    assert control.requests()["BlobHost.GET"] == 1


@pytest.mark.parametrize("spec", ["fast", "PutImage=abc", "PutImgae=10", "PutImage=-5", "blob_mbps=0"])
def test_promoter_local_refuses_a_bad_latency_with_exit_2(spec):
    result = subprocess.run(
        [*PROMOTER, "local", "--port", "0", "--latency", spec],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    # Our own refusal naming the bad item, not argparse's "unrecognized arguments".
    assert result.stderr.startswith("promoter local: latency"), result.stderr


def test_promoter_local_with_latency_aws_serves_with_the_preset_in_force():
    proc = subprocess.Popen(
        [*PROMOTER, "local", "--port", "0", "--latency", "aws"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("local AWS ready at "), proc.stderr.read() if proc.stderr else ""
        model = ControlClient(line.split(" at ", 1)[1].strip()).latency()["model"]
        assert model == parse_latency("aws").to_json()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_put_image_throttling_seen_by_the_engine_slows_its_shared_put_image_rate(
    aws_env, repo, pusher, control
):
    image = im.image((100,))
    for blob in image.blobs:
        pusher.push_blob(repo, blob)
    client = make_ecr_client()
    registry = EcrRegistry(client)
    rate = shared_rate(client.meta.region_name, "")
    throttled_before, admitted_before = rate.throttled, rate.admitted
    control.fail_next("PutImage", "ThrottlingException", count=1, message="Rate exceeded")
    manifest = Manifest(image.digest, image.media_type, image.text)
    assert registry.put_manifest(repo, manifest, "v1") is True  # botocore retried the throttle
    assert rate.throttled == throttled_before + 1
    assert rate.admitted == admitted_before + 1


def _basic(password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode()
