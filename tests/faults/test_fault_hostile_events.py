"""Malformed and hostile events, fuzzed with hypothesis, through the real queue: the handler never
crashes, nothing is written to ECR, and every message ends as a result or in the DLQ with the
reason the handler logged (only messages that are not EventBridge events go there)."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promoter import settings as promoter_settings

pytestmark = pytest.mark.integration

ABSENT_DIGEST = "sha256:" + "0" * 64
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
# Appended to the rule's source repository, so the hostile names match the rule's glob.
suffixes = (
    st.sampled_from(
        ["", "/../../etc/passwd", "/..", "/%2e%2e/x", "/ünï/cødé", "/a b", "/x\u202e", "/" + "a" * 4000, "//"]
    )
    | texts
)


def envelope(source: str, detail_type: str, detail: object) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-26T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


def hostile_bodies(source_repository: str) -> st.SearchStrategy[str]:
    names = suffixes.map(lambda s: source_repository + s) | anything
    digests = st.sampled_from([ABSENT_DIGEST, "sha256:../../x", "md5:abc", ""]) | anything
    push = st.fixed_dictionaries(
        {
            "action-type": st.sampled_from(["PUSH", "DELETE"]) | anything,
            "result": st.just("SUCCESS") | anything,
            "repository-name": names,
            "image-digest": digests,
            "image-tag": st.sampled_from(["v1", "", "../v1", "v" * 300]) | anything,  # data, not a path
        }
    )
    request = st.fixed_dictionaries(
        {"repository-name": names},
        optional={"image-tag": texts | anything, "image-digest": digests, "rule": texts | anything},
    )
    return st.one_of(
        st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=200),  # not JSON
        anything.map(json.dumps),  # JSON, not an envelope (or an envelope missing its keys)
        st.dictionaries(st.sampled_from(["id", "source", "detail-type", "detail"]), anything).map(json.dumps),
        push.map(lambda d: json.dumps(envelope("aws.ecr", "ECR Image Action", d))),
        request.map(
            lambda d: json.dumps(
                envelope(promoter_settings.REQUEST_EVENT_SOURCE, promoter_settings.REQUEST_DETAIL_TYPE, d)
            )
        ),
        anything.map(
            lambda d: json.dumps(envelope("aws.ecr", "ECR Image Action", d))
        ),  # detail not an object
    ).filter(lambda body: body.strip() != "" and len(body.encode()) < 200_000)


def test_hostile_events_never_crash_the_handler_or_write_to_ecr(pipeline, repos, aws_env):
    source, target, requested = repos("dev"), repos("staging"), repos("requested")
    config = {
        "rules": [
            {
                "name": "fuzzed",
                "source": {"repository": f"{source}*", "tags": ["*"]},
                "targets": [{"repository": target, "tags": ["{tag}"]}],
            },
            {
                "name": "fuzzed-request",
                "trigger": "request",
                "source": {"repository": f"{source}*", "tags": ["*"]},
                # Its own repository: two rules that can write one tag are refused by the configuration.
                "targets": [{"repository": requested, "tags": ["{tag}"]}],
            },
        ]
    }
    # One worker and no visibility timeout: a rejected message is back at once, so the DLQ is
    # reached in milliseconds (and no copy of it can be in two invocations at the same time).
    flow = pipeline(config, max_receive_count=2, visibility_timeout=0, max_concurrency=1)
    aws_env.control.reset_calls()

    @settings(
        max_examples=8,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(bodies=st.lists(hostile_bodies(source), min_size=1, max_size=6))
    def deliver(bodies: list[str]) -> None:
        sent = {flow.send(body): body for body in bodies}
        flow.run()
        ends = flow.assert_every_event_accounted()
        assert set(sent) <= set(ends)
        crashes = [d for d in flow.ledger.deliveries if d.status == "crash"]
        assert not crashes, crashes[0].error
        for message_id, end in ends.items():
            if end == "dlq":  # only what is not an EventBridge event at all
                assert flow.reason(message_id).startswith("not an EventBridge event"), flow.reason(message_id)

    deliver()

    assert "PutImage" not in aws_env.control.calls_by_repository()
    assert flow.ecr.list_images(repositoryName=target)["imageIds"] == []
    assert flow.ecr.list_images(repositoryName=requested)["imageIds"] == []
