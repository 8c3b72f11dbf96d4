"""Several accounts in one local AWS: the account comes from the caller's access key, each
account and region is its own registry (own blobs, own `/v2/` endpoint, own token)."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config

from local_aws import images as im
from local_aws.images import EcrPusher

pytestmark = pytest.mark.integration

OTHER_ACCOUNT = "210987654321"


def _ecr(
    endpoint: str,
    key: str = "test",
    secret: str = "test",
    token: str | None = None,
    region: str = "us-east-1",
):
    return boto3.client(
        "ecr",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def _status(url: str, password: str) -> int:
    auth = base64.b64encode(f"AWS:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_an_access_key_of_twelve_digits_is_its_account(aws_env, ecr, unique_name):
    other = _ecr(aws_env.endpoint, key=OTHER_ACCOUNT)
    name = unique_name("acct")
    arn = other.create_repository(repositoryName=name)["repository"]["repositoryArn"]
    assert arn == f"arn:aws:ecr:us-east-1:{OTHER_ACCOUNT}:repository/{name}"
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[name])
    # registryId names the other account's registry (a repository policy would allow it on AWS).
    found = ecr.describe_repositories(repositoryNames=[name], registryId=OTHER_ACCOUNT)["repositories"]
    assert found[0]["registryId"] == OTHER_ACCOUNT


def test_an_assumed_role_session_acts_in_the_role_account(aws_env, unique_name):
    sts = boto3.client("sts", endpoint_url=aws_env.endpoint, region_name="us-east-1")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/target", RoleSessionName="test")[
        "Credentials"
    ]
    assumed = _ecr(aws_env.endpoint, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    name = unique_name("role")
    assert assumed.create_repository(repositoryName=name)["repository"]["registryId"] == OTHER_ACCOUNT
    assert _ecr(aws_env.endpoint, key=OTHER_ACCOUNT).describe_repositories(repositoryNames=[name])


def test_each_registry_has_its_own_blobs_endpoint_and_token(aws_env, ecr, repo, unique_name):
    manifest = im.image((256,))
    EcrPusher(ecr).push(repo, manifest, "v1")
    other = _ecr(aws_env.endpoint, key=OTHER_ACCOUNT)
    other.create_repository(repositoryName=repo)  # the same name in another account
    layer = manifest.blobs[1].digest
    check = other.batch_check_layer_availability(repositoryName=repo, layerDigests=[layer])
    assert check["layers"][0]["layerAvailability"] == "UNAVAILABLE"
    with pytest.raises(other.exceptions.LayersNotFoundException):
        other.put_image(repositoryName=repo, imageManifest=manifest.text, imageTag="v1")

    data = other.get_authorization_token()["authorizationData"][0]
    endpoint = data["proxyEndpoint"]
    password = base64.b64decode(data["authorizationToken"]).decode().partition(":")[2]
    assert endpoint != aws_env.endpoint
    assert password != aws_env.password
    assert _status(f"{endpoint}/v2/{repo}/tags/list", password) == 200
    assert _status(f"{aws_env.endpoint}/v2/{repo}/tags/list", password) == 401  # not the home token
    assert _status(f"{endpoint}/v2/{repo}/tags/list", aws_env.password) == 401

    EcrPusher(other).push(repo, manifest, "v1")
    url = other.get_download_url_for_layer(repositoryName=repo, layerDigest=layer)["downloadUrl"]
    assert f"/{OTHER_ACCOUNT}/us-east-1/{repo}/" in url  # signed for that registry's storage
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == manifest.blobs[1].data


def test_a_region_of_another_account_is_another_registry(aws_env, unique_name):
    name = unique_name("region")
    west = _ecr(aws_env.endpoint, key=OTHER_ACCOUNT, region="eu-west-1")
    west.create_repository(repositoryName=name)
    east = _ecr(aws_env.endpoint, key=OTHER_ACCOUNT)
    with pytest.raises(east.exceptions.RepositoryNotFoundException):
        east.describe_repositories(repositoryNames=[name])
    west_endpoint = west.get_authorization_token()["authorizationData"][0]["proxyEndpoint"]
    assert west_endpoint != east.get_authorization_token()["authorizationData"][0]["proxyEndpoint"]


def test_a_malformed_registry_id_is_an_invalid_parameter(ecr, repo):
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_images(repositoryName=repo, registryId="not-an-account")
