"""Shared fixtures: one local AWS per test session; tests isolate by unique repository names."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from local_aws import INSTALL_HINT, LocalAws, RegistryNotInstalledError
from tests.fixtures import EVENTS_DIR

REGION = "us-east-1"


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalAws]:
    """The local AWS (ECR on a real registry, moto for the rest), started once for the session."""
    instance = LocalAws()
    try:
        instance.start()
    except RegistryNotInstalledError:
        pytest.fail(f"the local AWS needs docker-registry: {INSTALL_HINT}")
    yield instance
    instance.stop()


@pytest.fixture(autouse=True)
def _clear_local_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Injected failures and rates never leak from one test into the next (the instance is shared)."""
    yield
    if "local_aws" in request.fixturenames:
        request.getfixturevalue("local_aws").control.clear_faults()


@pytest.fixture
def aws_env(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    """Point every boto3 client made in the test at the local AWS, with dummy credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_aws.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return local_aws


@pytest.fixture
def ecr(aws_env: LocalAws):
    """A boto3 ECR client on the local AWS (no retries, so faults are seen as they are)."""
    from botocore.config import Config

    return boto3.client(
        "ecr",
        endpoint_url=aws_env.endpoint,
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


_counter = itertools.count()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """`unique_name("app")` -> a repository name no other test (or session) uses."""
    run = uuid.uuid4().hex[:6]
    test = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")

    def make(prefix: str = "repo") -> str:
        return f"{prefix}/{test}-{run}-{next(_counter)}".replace("--", "-")

    return make


@pytest.fixture(scope="session")
def events_dir() -> Path:
    """The ECR event samples in tests/fixtures/events."""
    return EVENTS_DIR


def pytest_configure(config: pytest.Config) -> None:
    # botocore must never pick up a real profile in tests.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


TIERS = ("unit", "integration", "infra", "faults", "runtime")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test carries its tier's marker (the folder it lives in): `pytest -m unit` is the inner
    loop, in seconds; `-m "not faults and not runtime"` skips the slowest tiers."""
    root = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(root).parts
        if parts and parts[0] in TIERS:
            item.add_marker(parts[0])
