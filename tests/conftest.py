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
    _session_aws.append(instance)
    yield instance
    _session_aws.clear()
    instance.stop()


# The session's local AWS once started (its moto runs in this process: see _moto_state_kept).
_session_aws: list[LocalAws] = []


@pytest.fixture(autouse=True)
def _moto_state_kept() -> Iterator[None]:
    """The session's local AWS still holds its default tables after each test. Its moto backends
    are this process's: anything that resets them in process (moto's `mock_aws()` does on start)
    wipes every table, queue and bus of the session, and every later test in the worker fails
    far from the cause (the idempotency table 'not found'). The test that did it fails here."""
    yield
    if not _session_aws:
        return
    from moto.backends import get_backend

    from local_aws.tables import create_default_tables
    from promoter.settings import DEFAULT_IDEMPOTENCY_TABLE

    local = _session_aws[0]
    if DEFAULT_IDEMPOTENCY_TABLE not in get_backend("dynamodb")[local.account][local.region].tables:
        create_default_tables(local.endpoint, local.region)  # so the tests after it run as before
        pytest.fail(
            "the test reset the local AWS's moto state in this process (moto's mock_aws()?): its "
            "tables, queues and buses were gone for every later test; use the session's local AWS "
            "(aws_env)"
        )


@pytest.fixture(autouse=True)
def _clear_local_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Injected failures and rates never leak from one test into the next (the instance is shared)."""
    yield
    if "local_aws" in request.fixturenames:
        request.getfixturevalue("local_aws").control.clear_faults()


# Set by pytest itself around each test; never a test's doing.
_ENVIRONMENT_OWNED_BY_PYTEST = frozenset({"PYTEST_CURRENT_TEST"})


def environment_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The variables a test added, changed or removed (names only: values may be secrets)."""
    names = (set(before) | set(after)) - _ENVIRONMENT_OWNED_BY_PYTEST
    return sorted(n for n in names if before.get(n) != after.get(n))


@pytest.fixture(autouse=True)
def _environment_unchanged() -> Iterator[None]:
    """os.environ is the same after each test as before it (monkeypatch's changes are undone
    first: this fixture is set up before it). A test that leaks a variable (a `--stack`'s outputs,
    another account's keys, a region) would send the handler of every later test in its worker
    somewhere else; the leak is undone and the leaking test fails, naming the variables."""
    before = dict(os.environ)
    yield
    after = dict(os.environ)
    changed = environment_changes(before, after)
    if changed:
        for name in changed:
            if name in before:
                os.environ[name] = before[name]
            else:
                os.environ.pop(name, None)
        pytest.fail(f"the test left os.environ changed (restored now): {', '.join(changed)}")


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
    # Importing `infra` sets jsii's variables for the whole process (infra/__init__.py), once: set
    # before the first test, they are no test's change to the environment (_environment_unchanged).
    import infra  # noqa: F401


TIERS = ("unit", "integration", "infra", "faults", "runtime")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test carries its tier's marker (the folder it lives in): `pytest -m unit` is the inner
    loop, in seconds; `-m "not faults and not runtime"` skips the slowest tiers."""
    root = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(root).parts
        if parts and parts[0] in TIERS:
            item.add_marker(parts[0])
