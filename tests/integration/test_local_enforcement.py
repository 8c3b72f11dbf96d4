"""The local AWS enforces resource policies for the principal behind each set of credentials
(`local_aws.principals`, `local_aws.policy`): ECR repository policies on the JSON API and on `/v2/`,
the promotion bus's policy on PutEvents, the queues' policies on SendMessage; and what reaches the
promoter's queue by any other way than the stack's EventBridge rules is never promoted."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local_aws import images as im
from local_aws.images import EcrPusher
from local_aws.principals import credentials_for

pytestmark = pytest.mark.integration

HOME = "123456789012"
OTHER = "210987654321"
PROMOTER_ROLE = f"arn:aws:iam::{HOME}:role/promoter"
DEVELOPER_ROLE = f"arn:aws:iam::{HOME}:role/developer"
IMAGE_WRITES = [
    "ecr:PutImage",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:BatchDeleteImage",
    "ecr:SetRepositoryPolicy",
    "ecr:DeleteRepositoryPolicy",
]


def client(service: str, endpoint: str, principal_arn: str | None = None):
    """A boto3 client acting as `principal_arn` (None: the administrator the test keys stand for)."""
    keys: dict[str, str] = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    if principal_arn is not None:
        creds = credentials_for(principal_arn)
        keys = {"aws_access_key_id": creds.access_key_id, "aws_secret_access_key": creds.secret_access_key}
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        **keys,
    )


def only_promoter_writes(repository_arn: str) -> str:
    """The shape of a protected repository's policy: image writes denied to all but the promoter."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OnlyThePromoterWrites",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": IMAGE_WRITES,
                    "Resource": repository_arn,
                    "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [PROMOTER_ROLE]}},
                }
            ],
        }
    )


def registry_put_manifest(endpoint: str, ecr_client, repository: str, manifest: im.Manifest, tag: str) -> int:
    """PUT a manifest through `/v2/` with the Basic auth token of `ecr_client`'s credentials."""
    token = ecr_client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    request = urllib.request.Request(
        f"{endpoint}/v2/{repository}/manifests/{tag}",
        data=manifest.raw,
        method="PUT",
        headers={"Authorization": f"Basic {token}", "Content-Type": manifest.media_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def registry_start_upload(endpoint: str, ecr_client, repository: str) -> int:
    token = ecr_client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    request = urllib.request.Request(
        f"{endpoint}/v2/{repository}/blobs/uploads/",
        data=b"",
        method="POST",
        headers={"Authorization": f"Basic {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def protected_repo(aws_env, ecr, unique_name):
    """A repository whose policy lets only the promoter's role write, with one image's blobs in it."""
    name = unique_name("prot")
    arn = ecr.create_repository(repositoryName=name)["repository"]["repositoryArn"]
    manifest = im.image((256,))
    for blob in manifest.blobs:
        EcrPusher(ecr).push_blob(name, blob)
    ecr.set_repository_policy(repositoryName=name, policyText=only_promoter_writes(arn))
    return name, manifest


def test_a_repository_policy_refuses_a_direct_push_on_the_json_api_and_lets_the_allowed_principal_in(
    aws_env, ecr, protected_repo
):
    name, manifest = protected_repo
    developer = client("ecr", aws_env.endpoint, DEVELOPER_ROLE)
    put = {
        "repositoryName": name,
        "imageManifest": manifest.text,
        "imageManifestMediaType": manifest.media_type,
    }
    for attempt in (
        lambda: developer.put_image(**put, imageTag="hand"),
        lambda: developer.initiate_layer_upload(repositoryName=name),
        lambda: developer.delete_repository_policy(repositoryName=name),
        lambda: ecr.put_image(**put, imageTag="admin"),  # the account's administrator is no exception
    ):
        with pytest.raises(ClientError) as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "explicit deny" in refused.value.response["Error"]["Message"]
    assert ecr.list_images(repositoryName=name)["imageIds"] == []
    # Reads are not image writes: the developer still sees the repository.
    assert developer.describe_repositories(repositoryNames=[name])["repositories"]

    promoter = client("ecr", aws_env.endpoint, PROMOTER_ROLE)
    promoter.put_image(**put, imageTag="promoted")
    assert [i["imageTag"] for i in ecr.list_images(repositoryName=name)["imageIds"]] == ["promoted"]


def test_a_repository_policy_refuses_a_direct_push_on_v2_and_lets_the_allowed_principal_in(
    aws_env, ecr, protected_repo
):
    name, manifest = protected_repo
    developer = client("ecr", aws_env.endpoint, DEVELOPER_ROLE)
    assert registry_start_upload(aws_env.endpoint, developer, name) == 403
    assert registry_put_manifest(aws_env.endpoint, developer, name, manifest, "hand") == 403
    assert registry_put_manifest(aws_env.endpoint, ecr, name, manifest, "admin") == 403
    assert ecr.list_images(repositoryName=name)["imageIds"] == []

    promoter = client("ecr", aws_env.endpoint, PROMOTER_ROLE)
    assert registry_start_upload(aws_env.endpoint, promoter, name) == 202
    assert registry_put_manifest(aws_env.endpoint, promoter, name, manifest, "promoted") == 201
    assert [i["imageTag"] for i in ecr.list_images(repositoryName=name)["imageIds"]] == ["promoted"]


def test_another_account_writes_only_what_a_repository_policy_allows_it(aws_env, ecr, unique_name):
    name = unique_name("xacct")
    arn = ecr.create_repository(repositoryName=name)["repository"]["repositoryArn"]
    manifest = im.image((128,))
    EcrPusher(ecr).push(name, manifest, "v1")
    ci = client("ecr", aws_env.endpoint, f"arn:aws:iam::{OTHER}:role/ci")
    with pytest.raises(ClientError) as refused:
        ci.batch_delete_image(repositoryName=name, registryId=HOME, imageIds=[{"imageTag": "v1"}])
    assert "no resource-based policy allows" in refused.value.response["Error"]["Message"]
    allow = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": OTHER},
                "Action": "ecr:BatchDeleteImage",
                "Resource": arn,
            }
        ],
    }
    ecr.set_repository_policy(repositoryName=name, policyText=json.dumps(allow))
    assert json.loads(ecr.get_repository_policy(repositoryName=name)["policyText"]) == allow
    ci.batch_delete_image(repositoryName=name, registryId=HOME, imageIds=[{"imageTag": "v1"}])
    assert ecr.list_images(repositoryName=name)["imageIds"] == []


def test_the_administrator_token_still_opens_v2_as_before(aws_env, ecr):
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    assert base64.b64decode(token).decode() == f"AWS:{aws_env.password}"
