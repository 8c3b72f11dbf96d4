"""Each region is its own registry: the region comes from the SigV4 credential scope."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

pytestmark = pytest.mark.integration


def test_repositories_are_scoped_to_the_region_of_the_request(aws_env, unique_name):
    east = boto3.client("ecr", region_name="us-east-1")
    west = boto3.client("ecr", region_name="eu-west-1", config=Config(retries={"total_max_attempts": 1}))
    name = unique_name("scoped")
    west.create_repository(repositoryName=name)
    arn = west.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryArn"]
    assert arn == f"arn:aws:ecr:eu-west-1:123456789012:repository/{name}"
    with pytest.raises(east.exceptions.RepositoryNotFoundException):
        east.describe_repositories(repositoryNames=[name])


def test_a_registry_id_of_another_account_is_not_found(ecr, repo):
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_images(repositoryName=repo, registryId="999999999999")
