"""The synthesized EventBridge patterns, run against the shared ECR samples by a real matcher.

The matcher is moto's EventBridge pattern engine (`moto.events.models.EventPattern`, the code its
rule routing uses; moto 5.2.5's TestEventPattern API answers without a result), fed the pattern
exactly as the template carries it: these tests do not re-implement the pattern logic.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from moto.events.models import EventPattern

from infra.event_patterns import push_event_pattern, repository_filter
from promoter import settings

Event = dict[str, Any]
# The account of the shared samples: the stack is deployed there in these tests (the template's
# `{"Ref": "AWS::AccountId"}` is resolved to it before the pattern is matched).
STACK_ACCOUNT = "123456789012"
FOREIGN_ACCOUNT = "999999999999"


def _rule_pattern(synthesized, *, on_custom_bus: bool) -> dict[str, Any]:
    rule = synthesized.event_rule("RequestRule" if on_custom_bus else "PushRule")
    assert ("EventBusName" in rule["Properties"]) == on_custom_bus
    return _deployed_in(rule["Properties"]["EventPattern"], STACK_ACCOUNT)


def _deployed_in(pattern: Any, account: str) -> Any:
    """The pattern as CloudFormation resolves it in `account` (only `AWS::AccountId` occurs)."""
    if pattern == {"Ref": "AWS::AccountId"}:
        return account
    if isinstance(pattern, dict):
        return {key: _deployed_in(value, account) for key, value in pattern.items()}
    if isinstance(pattern, list):
        return [_deployed_in(value, account) for value in pattern]
    return pattern


def _matcher(pattern: dict[str, Any]) -> Callable[[Event], bool]:
    loaded = EventPattern.load(json.dumps(pattern))  # also validates the pattern's syntax
    return loaded.matches_event


@pytest.fixture(scope="module")
def push_matches(synthesized) -> Callable[[Event], bool]:
    return _matcher(_rule_pattern(synthesized, on_custom_bus=False))


@pytest.fixture(scope="module")
def request_matches(synthesized) -> Callable[[Event], bool]:
    return _matcher(_rule_pattern(synthesized, on_custom_bus=True))


def _with_detail(event: Event, **detail: Any) -> Event:
    changed = copy.deepcopy(event)
    for key, value in detail.items():
        name = key.replace("_", "-")
        if value is None:
            changed["detail"].pop(name, None)
        else:
            changed["detail"][name] = value
    return changed


def test_tagged_push_into_an_exact_source_repository_matches(push_matches, load_event):
    assert push_matches(load_event("ecr-push.json"))  # my-repository-name:latest


def test_tagged_push_into_a_prefix_glob_repository_matches(push_matches, load_event):
    assert push_matches(load_event("ecr-push-oci-fields.json"))  # team/service:v1.4.0


def test_push_into_an_inner_wildcard_glob_repository_matches(push_matches, load_event):
    assert push_matches(_with_detail(load_event("ecr-push.json"), repository_name="svc-a-api"))


def test_a_push_in_another_account_is_rejected(push_matches, load_event):
    # Another account's ECR events can reach this default bus (an organization forwarding rule);
    # a repository of the same name there is not a source of this stack.
    event = load_event("ecr-push.json")
    assert event["account"] == STACK_ACCOUNT and push_matches(event)
    event["account"] = FOREIGN_ACCOUNT
    assert not push_matches(event)


def test_the_push_rule_names_the_stack_account(synthesized):
    for name in ("PushRule", "TrustMaterialRule"):  # the default bus carries every account's events
        rule = synthesized.event_rule(name)
        assert rule["Properties"]["EventPattern"]["account"] == [{"Ref": "AWS::AccountId"}], name


def test_untagged_push_with_empty_tag_is_rejected(push_matches, load_event):
    assert not push_matches(load_event("ecr-push-untagged.json"))


def test_untagged_push_without_tag_field_is_rejected(push_matches, load_event):
    event = _with_detail(load_event("ecr-push-oci-fields.json"), image_tag=None)
    assert "image-tag" not in event["detail"]
    assert not push_matches(event)


def test_delete_event_is_rejected(push_matches, load_event):
    assert not push_matches(load_event("ecr-delete.json"))


def test_failed_push_is_rejected(push_matches, load_event):
    assert not push_matches(_with_detail(load_event("ecr-push.json"), result="FAILURE"))


@pytest.mark.parametrize(
    "repository", ["other-repository", "teams/service", "my-repository-name-dev", "svc-a-web"]
)
def test_push_into_an_unconfigured_repository_is_rejected(push_matches, load_event, repository):
    assert not push_matches(_with_detail(load_event("ecr-push.json"), repository_name=repository))


@pytest.mark.parametrize("repository", ["my-repository-name-prod", "release/team/service", "app-prod"])
def test_pushes_into_the_target_repositories_reach_the_promoter(push_matches, load_event, repository):
    """Issue 18: a push into a target that no promotion explains is a write behind the promoter's back,
    so the promoter must see every target's pushes (its own included: it recognises those)."""
    assert push_matches(_with_detail(load_event("ecr-push.json"), repository_name=repository))


def test_push_into_a_request_only_source_is_rejected(push_matches, load_event):
    # app-staging is the source of a `request` rule only: its pushes must not start promotions.
    assert not push_matches(_with_detail(load_event("ecr-push.json"), repository_name="app-staging"))


@pytest.mark.parametrize(
    "sample",
    [
        "ecr-image-scan.json",
        "ecr-referrer-action.json",
        "ecr-replication.json",
        "ecr-pull-through-cache.json",
        "ecr-archive.json",
        "inspector2-scan.json",
    ],
)
def test_other_ecr_and_inspector_events_are_rejected(push_matches, load_event, sample):
    assert not push_matches(load_event(sample))


def _request_event(detail_type: str) -> Event:
    return {
        "version": "0",
        "id": "6f9d1c2e-0000-4000-8000-000000000001",
        "detail-type": detail_type,
        "source": settings.REQUEST_EVENT_SOURCE,
        "account": "123456789012",
        "time": "2026-11-20T10:15:30Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"repository-name": "app-staging", "image-tag": "v1.2.3", "rule": "staging-to-prod"},
    }


def test_promotion_request_on_the_bus_matches(request_matches):
    assert request_matches(_request_event(settings.REQUEST_DETAIL_TYPE))


def test_result_events_on_the_same_bus_do_not_loop_back(request_matches):
    assert not request_matches(_request_event("Promotion Result"))


def test_ecr_push_does_not_match_the_request_rule(request_matches, load_event):
    assert not request_matches(load_event("ecr-push.json"))


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("app-dev", "app-dev"),
        ("team/*", {"prefix": "team/"}),
        ("svc-?-api", {"wildcard": "svc-*-api"}),
        ("*/api", {"wildcard": "*/api"}),
        ("a**b", {"wildcard": "a*b"}),
        ("*", None),
    ],
)
def test_repository_glob_becomes_the_cheapest_eventbridge_filter(glob, expected):
    assert repository_filter(glob) == expected


def test_a_catch_all_glob_drops_the_repository_filter_but_keeps_the_tag_filter():
    detail = push_event_pattern(["team/*", "*"])["detail"]
    assert "repository-name" not in detail
    assert detail["image-tag"] == [{"anything-but": [""]}]


def test_empty_repository_glob_is_refused():
    with pytest.raises(ValueError, match="must not be empty"):
        repository_filter("")


def test_a_pattern_over_eventbridges_size_quota_fails_synth_with_advice():
    many = [f"service-number-{i:04d}" for i in range(200)]
    with pytest.raises(ValueError, match=r"200 repository filters .* over the 2048 .* one glob"):
        push_event_pattern(many)


def test_moto_eventbridge_routes_only_tagged_pushes_of_configured_repositories_to_the_queue(
    synthesized, load_event, aws_env, unique_name
):
    """The same pattern through moto's whole route: rule on the default bus -> SQS target.

    It runs on the session's local AWS (moto's EventBridge and SQS), not in `mock_aws()`: that
    context resets moto's process-wide state, which the local AWS of this test session lives in.
    """
    import boto3

    samples = [
        "ecr-push.json",
        "ecr-push-oci-fields.json",
        "ecr-push-untagged.json",
        "ecr-delete.json",
        "ecr-image-scan.json",
        "ecr-referrer-action.json",
    ]
    name = unique_name("push").replace("/", "-")
    sqs = boto3.client("sqs", endpoint_url=aws_env.endpoint, region_name="us-east-1")
    events = boto3.client("events", endpoint_url=aws_env.endpoint, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = _rule_pattern(synthesized, on_custom_bus=False)
    events.put_rule(Name=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": queue_arn}])
    try:
        for sample_name in samples:
            sample = load_event(sample_name)
            entry = {
                "Source": sample["source"],
                "DetailType": sample["detail-type"],
                "Detail": json.dumps(sample["detail"]),
            }
            assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    finally:
        events.remove_targets(Rule=name, Ids=["queue"])
        events.delete_rule(Name=name)
    delivered = sorted(
        (json.loads(m["Body"])["detail"]["repository-name"], json.loads(m["Body"])["detail"]["image-tag"])
        for m in received
    )
    assert delivered == [("my-repository-name", "latest"), ("team/service", "v1.4.0")]
