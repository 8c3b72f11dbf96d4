"""One scheduled reconciliation at a time without reserved concurrency: the lease on the reconcile
table (DynamoDB on the local AWS). Two runs at once: one runs, the other exits with its reason."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local_aws import images as im
from promoter import handler, reconcile_handler, settings
from promoter.aws.reconcile_state import DynamoDbRunLease
from promoter.model.outcomes import PROMOTED

pytestmark = pytest.mark.integration

RUNTIME = handler.runtime
# Only a guard against a hung test: no assertion depends on how long anything takes.
HANG_GUARD_SECONDS = 120


@dataclasses.dataclass
class Context:
    function_name: str = "reconcile"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:reconcile"
    aws_request_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


class HeldAtFirstListing:
    """The real ECR client; the first DescribeImages waits until the test lets it go, so that a
    run is certainly in progress while another one starts."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.listing = threading.Event()
        self.go_on = threading.Event()

    def describe_images(self, **kwargs: Any) -> Any:
        self.listing.set()
        assert self.go_on.wait(HANG_GUARD_SECONDS)
        return self._client.describe_images(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def sweep(aws_env, ecr, unique_name, pusher, tmp_path, monkeypatch) -> tuple[str, dict[str, str]]:
    """Images whose push events were lost, a rule for them, and clean handler caches."""
    source, target = unique_name("dev"), unique_name("prod")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    digests = {}
    for tag in ("v1", "v2"):
        image = im.image((256,))
        pusher.push(source, image, tag)
        digests[tag] = image.digest
    path = tmp_path / settings.STAGED_CONFIG_FILE
    path.write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "name": "ship",
                        "source": {"repository": source, "tags": ["v*"]},
                        "targets": [{"repository": target, "tags": ["{tag}"]}],
                    }
                ]
            }
        )
    )
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    for cached in (RUNTIME, reconcile_handler.cursor_store, reconcile_handler.run_lease):
        cached.cache_clear()
    yield target, digests
    for cached in (RUNTIME, reconcile_handler.cursor_store, reconcile_handler.run_lease):
        cached.cache_clear()


def test_two_runs_at_once_one_reconciles_and_the_other_exits_with_its_reason(
    sweep, ecr, monkeypatch, capsys
):
    target, digests = sweep
    held = HeldAtFirstListing(RUNTIME().ecr)
    state = dataclasses.replace(RUNTIME(), ecr=held)
    monkeypatch.setattr(reconcile_handler, "runtime", lambda: state)
    logged = io.StringIO()
    monkeypatch.setattr(reconcile_handler.logger.registered_handler, "stream", logged)
    first, second = Context(), Context()

    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(reconcile_handler.handle, {"source": "aws.events"}, first)
        assert held.listing.wait(HANG_GUARD_SECONDS)  # the first run holds the lease and is listing
        skipped = reconcile_handler.handle({"source": "aws.events"}, second)
        held.go_on.set()
        report = running.result(HANG_GUARD_SECONDS)

    assert skipped == {"skipped": skipped["skipped"]} and first.aws_request_id in skipped["skipped"]
    assert report["complete"] and report["outcomes"] == {PROMOTED: 2}
    listed = ecr.list_images(repositoryName=target, filter={"tagStatus": "TAGGED"})["imageIds"]
    assert {i["imageTag"]: i["imageDigest"] for i in listed} == digests
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    (reason,) = [x for x in lines if x["message"] == "reconcile run skipped: another run is in progress"]
    assert reason["level"] == "INFO" and reason["function_request_id"] == second.aws_request_id
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(doc.get("ReconcileRunsSkipped") == [1.0] for doc in emf)
    # The first run gave the lease back: the next scheduled run takes it at once.
    assert reconcile_handler.run_lease().try_acquire("next", 60) is None
    assert reconcile_handler.run_lease().release("next")


def test_a_lease_whose_run_ended_without_giving_it_back_is_taken_by_the_next_run(sweep):
    lease = DynamoDbRunLease()
    assert lease.try_acquire("killed-at-its-timeout", -1) is None  # already past its expiry
    assert lease.try_acquire("next", 60) is None
    assert "next" in (lease.try_acquire("third", 60) or "")
    assert not lease.release("killed-at-its-timeout")  # no longer its own: nothing removed
    assert lease.release("next")
