"""The latency model in the local AWS's request path, switched through the control API, and
`promoter local --latency` refusing bad input. Only generous lower bounds on time (a 200 ms
operation takes at least 200 ms); the control API reports what was applied."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest

from local_aws import images as im

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
    assert "latency" in result.stderr


def _basic(password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode()
