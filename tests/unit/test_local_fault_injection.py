"""Fault injection for the local ECR: token-bucket rates, fail-next queues, call counts."""

from __future__ import annotations

import pytest

from local_aws.errors import ImageTagAlreadyExistsException, ThrottlingException
from local_aws.faults import Faults, parse_rate


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_allows_a_burst_of_one_second_then_throttles_until_tokens_refill():
    clock = FakeClock()
    faults = Faults({"PutImage": 2}, clock=clock)
    faults.admit("PutImage")
    faults.admit("PutImage")
    with pytest.raises(ThrottlingException, match="Rate exceeded"):
        faults.admit("PutImage")
    clock.now += 0.5  # one token back at 2/s
    faults.admit("PutImage")
    with pytest.raises(ThrottlingException):
        faults.admit("PutImage")


def test_rates_are_per_operation():
    faults = Faults({"PutImage": 1}, clock=FakeClock())
    faults.admit("PutImage")
    for _ in range(10):
        faults.admit("BatchGetImage")


def test_fail_next_raises_the_named_exception_count_times_then_passes():
    faults = Faults()
    faults.fail_next("PutImage", "ImageTagAlreadyExistsException", count=2, message="pinned")
    for _ in range(2):
        with pytest.raises(ImageTagAlreadyExistsException, match="pinned"):
            faults.admit("PutImage")
    faults.admit("PutImage")


def test_fail_next_accepts_exception_names_the_local_ecr_does_not_define():
    faults = Faults()
    faults.fail_next("PutImage", "KmsException")
    with pytest.raises(Exception) as exc:
        faults.admit("PutImage")
    assert type(exc.value).__name__ == "KmsException"


def test_every_admitted_call_is_counted_even_when_it_fails():
    faults = Faults()
    faults.fail_next("PutImage", "ServerException")
    with pytest.raises(Exception):  # noqa: B017 - the injected class is what is under test elsewhere
        faults.admit("PutImage")
    faults.admit("PutImage")
    assert faults.calls() == {"PutImage": 2}
    faults.reset_calls()
    assert faults.calls() == {}


@pytest.mark.parametrize(("spec", "expected"), [("PutImage=10", ("PutImage", 10.0)), (" X =0.5", ("X", 0.5))])
def test_rate_specs_parse(spec, expected):
    assert parse_rate(spec) == expected


@pytest.mark.parametrize("spec", ["PutImage", "=3", "PutImage=fast", "PutImage=0", "PutImage=-1"])
def test_bad_rate_specs_say_what_is_wrong(spec):
    with pytest.raises(ValueError):
        parse_rate(spec)


def test_fail_next_with_match_only_fails_matching_requests():
    faults = Faults()
    faults.fail_next("PutImage", "ServerException", match={"imageTag": "v1"})
    faults.admit("PutImage", {"repositoryName": "r", "imageDigest": "sha256:a"})  # a child: passes
    with pytest.raises(Exception, match="injected"):
        faults.admit("PutImage", {"repositoryName": "r", "imageTag": "v1"})
    faults.admit("PutImage", {"repositoryName": "r", "imageTag": "v1"})


def test_fail_for_fails_every_call_until_the_window_ends():
    clock = FakeClock()
    faults = Faults(clock=clock)
    faults.fail_for("DynamoDB.PutItem", "InternalServerError", seconds=2)
    for _ in range(3):
        assert faults.injected("DynamoDB.PutItem").exception == "InternalServerError"
    clock.now += 2.5
    assert faults.injected("DynamoDB.PutItem") is None


def test_before_hook_runs_once_before_the_matching_call():
    faults = Faults()
    ran: list[str] = []
    faults.before("BatchGetImage", lambda: ran.append("deleted"), match={"repositoryName": "src"})
    faults.admit("BatchGetImage", {"repositoryName": "dst"})
    assert ran == []
    faults.admit("BatchGetImage", {"repositoryName": "src"})
    faults.admit("BatchGetImage", {"repositoryName": "src"})
    assert ran == ["deleted"]


def test_calls_are_counted_per_repository():
    faults = Faults()
    faults.admit("PutImage", {"repositoryName": "a"})
    faults.admit("PutImage", {"repositoryName": "a"})
    faults.admit("PutImage", {"repositoryName": "b"})
    assert faults.calls_by_repository() == {"PutImage": {"a": 2, "b": 1}}
    faults.reset_calls()
    assert faults.calls_by_repository() == {}
