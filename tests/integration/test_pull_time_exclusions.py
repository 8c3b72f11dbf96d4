"""Lifecycle-neutral reads (issue 21, item 4): the local ECR records pull times
(`lastRecordedPullTime` in DescribeImages) on BatchGetImage and on a manifest GET of the registry
API, and leaves them alone for the principals registered with RegisterPullTimeUpdateExclusion; so a
promoter running as an excluded role promotes an image without keeping it alive under a "since
last pulled" lifecycle rule."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from local_aws import images as im
from local_aws.principals import credentials_for
from promoter.aws.idempotency import idempotent_runner, make_persistence
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model.config import parse_config
from promoter.model.events import ImagePushed
from promoter.model.outcomes import PROMOTED
from promoter.workflows.promote import Promoter
from promoter.workflows.service import handle_event

pytestmark = pytest.mark.integration
ACCOUNT = "123456789012"


@pytest.fixture
def role(ecr):
    """A role of the local account, registered as a pull-time update exclusion for the test."""
    arn = f"arn:aws:iam::{ACCOUNT}:role/promoter-{uuid.uuid4().hex[:8]}"
    ecr.register_pull_time_update_exclusion(principalArn=arn)
    yield arn
    try:
        ecr.deregister_pull_time_update_exclusion(principalArn=arn)
    except ClientError as exc:  # the test deregistered it itself
        assert exc.response["Error"]["Code"] == "ExclusionNotFoundException"


def _as(aws_env, arn: str):
    keys = credentials_for(arn)
    session = boto3.session.Session(
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        region_name="us-east-1",
    )
    return session, session.client("ecr", endpoint_url=aws_env.endpoint)


def _pulled(ecr, repo: str, digest: str):
    (detail,) = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": digest}])["imageDetails"]
    return detail.get("lastRecordedPullTime")


def test_a_pull_records_its_time_and_an_excluded_roles_pull_does_not(aws_env, ecr, repo, pusher, role):
    image = im.image((64,))
    pusher.push(repo, image, "v1")
    _, as_role = _as(aws_env, role)
    assert _pulled(ecr, repo, image.digest) is None  # a push is no pull

    as_role.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert _pulled(ecr, repo, image.digest) is None
    ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])  # the administrator
    first = _pulled(ecr, repo, image.digest)
    assert first is not None

    ecr.deregister_pull_time_update_exclusion(principalArn=role)
    as_role.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": image.digest}])
    assert _pulled(ecr, repo, image.digest) >= first


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo needed")
def test_skopeo_pulling_through_the_registry_api_records_the_time_unless_its_principal_is_excluded(
    aws_env, ecr, repo, pusher, role
):
    image = im.image((64,))
    pusher.push(repo, image, "v1")
    host = aws_env.endpoint.split("//", 1)[1]

    def skopeo_as(client) -> None:
        token = client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        creds = base64.b64decode(token).decode()
        done = subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", creds, f"docker://{host}/{repo}:v1"],
            capture_output=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    skopeo_as(_as(aws_env, role)[1])
    assert _pulled(ecr, repo, image.digest) is None
    skopeo_as(ecr)
    assert _pulled(ecr, repo, image.digest) is not None


def test_the_promoter_running_as_an_excluded_role_leaves_the_sources_pull_time_alone(
    aws_env, ecr, pusher, unique_name, role
):
    source, target = unique_name("src"), unique_name("dst")
    for name in (source, target):
        ecr.create_repository(repositoryName=name)
    config = parse_config(
        {
            "rules": [
                {
                    "name": "copy",
                    "source": {"repository": source, "tags": ["v*"]},
                    "targets": [{"repository": target}],
                }
            ]
        }
    )
    image = im.multi_arch(attestations=False)
    pusher.push(source, image, "v1")
    session, _ = _as(aws_env, role)
    registry = EcrRegistry(make_ecr_client(session))

    result = handle_event(
        ImagePushed(f"push-{uuid.uuid4().hex[:8]}", source, image.digest, "v1"),
        config,
        registry,
        idempotent_runner(Promoter(registry), make_persistence()),
    )

    assert [r.outcome for r in result.results] == [PROMOTED]
    assert ecr.describe_images(repositoryName=target, imageIds=[{"imageTag": "v1"}])["imageDetails"]
    for digest in (image.digest, *(c.digest for c in image.children)):
        assert _pulled(ecr, source, digest) is None


def test_exclusions_are_listed_and_refused_as_ecr_refuses_them(ecr, role):
    assert role in ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]
    cases = [
        (ecr.register_pull_time_update_exclusion, role, "ExclusionAlreadyExistsException"),
        (ecr.deregister_pull_time_update_exclusion, role + "-never", "ExclusionNotFoundException"),
        (
            ecr.register_pull_time_update_exclusion,
            f"arn:aws:iam::{ACCOUNT}:root",
            "InvalidParameterException",
        ),
        (ecr.register_pull_time_update_exclusion, "arn:aws:iam::12:role/short", "InvalidParameterException"),
    ]
    for call, arn, code in cases:
        with pytest.raises(ClientError) as exc:
            call(principalArn=arn)
        assert exc.value.response["Error"]["Code"] == code, arn
