"""Target registries of other accounts: assumed-role sessions (moto's STS), cached and refreshed."""

from __future__ import annotations

import datetime

import boto3
import pytest

from promoter.aws.remote import ASSUME_ROLE_SESSION_NAME, TargetRegistries
from promoter.exceptions import RepositoryNotFoundError

pytestmark = pytest.mark.integration

ACCOUNT = "210987654321"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/image-promoter-target"


def _caller(credentials) -> dict:
    frozen = credentials.get_frozen_credentials()
    sts = boto3.client(
        "sts",
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token,
    )
    return sts.get_caller_identity()


def test_a_role_target_writes_as_the_assumed_role_in_its_account(aws_env, unique_name):
    registries = TargetRegistries()
    identity = _caller(registries.credentials(ROLE))
    assert identity["Account"] == ACCOUNT
    assert identity["Arn"].endswith(f"assumed-role/image-promoter-target/{ASSUME_ROLE_SESSION_NAME}")

    name = unique_name("remote")
    boto3.client("ecr", aws_access_key_id=ACCOUNT, aws_secret_access_key="test").create_repository(
        repositoryName=name
    )
    registry = registries.registry_for(ACCOUNT, None, ROLE)
    assert registry.get_manifests(name, ["v1"]) == {}  # the repository is found in that account
    with pytest.raises(RepositoryNotFoundError):
        registries.registry_for(None, None, None).get_manifests(name, ["v1"])  # not in our own


def test_registries_are_cached_per_account_region_and_role(aws_env):
    registries = TargetRegistries()
    prod = registries.registry_for(ACCOUNT, None, ROLE)
    assert registries.registry_for(ACCOUNT, None, ROLE) is prod
    assert registries.registry_for(ACCOUNT, "eu-west-1", ROLE) is not prod
    assert registries.registry_for(ACCOUNT, None, None) is not prod
    # Both regions of one role share its credentials: one AssumeRole, one refresh schedule.
    assert registries.credentials(ROLE) is registries.credentials(ROLE)


def test_assumed_credentials_are_refreshed_before_they_expire(aws_env):
    credentials = TargetRegistries().credentials(ROLE)
    first = credentials.get_frozen_credentials().access_key
    assert credentials.get_frozen_credentials().access_key == first  # an hour left: kept
    # Five minutes left: inside botocore's mandatory refresh window (10 minutes).
    credentials._expiry_time = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    refreshed = credentials.get_frozen_credentials().access_key
    assert refreshed != first
    assert _caller(credentials)["Account"] == ACCOUNT
