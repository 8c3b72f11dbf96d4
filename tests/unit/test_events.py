"""Event parsing against the documented samples: what is a push, what is ignored, what is bad input."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from promoter import settings
from promoter.exceptions import EventError, MalformedMessageError
from promoter.model.events import (
    IgnoredEvent,
    ImagePushed,
    ImageScanned,
    PromotionRequested,
    parse_event,
    parse_json_event,
)
from tests.fixtures import EVENTS_DIR

EVENTS = EVENTS_DIR


def sample(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_tagged_push_sample_becomes_image_pushed():
    event = parse_event(sample("ecr-push.json"))
    assert event == ImagePushed(
        event_id="13cde686-328b-6117-af20-0e5566167482",
        repository="my-repository-name",
        digest="sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678",
        tag="latest",
        time="2026-11-20T10:15:30Z",  # the envelope's: when the push happened (out-of-band writes)
    )


def test_push_with_oci_fields_keeps_the_manifest_media_type():
    event = parse_event(sample("ecr-push-oci-fields.json"))
    assert isinstance(event, ImagePushed)
    assert (event.repository, event.tag) == ("team/service", "v1.4.0")
    assert event.media_type == "application/vnd.oci.image.manifest.v1+json"


def test_untagged_push_has_an_empty_tag():
    assert parse_event(sample("ecr-push-untagged.json")).tag == ""


def test_push_without_image_tag_field_is_tolerated_as_untagged():
    data = sample("ecr-push.json")
    del data["detail"]["image-tag"]
    assert parse_event(data).tag == ""


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ecr-delete.json", "'DELETE' is not a push"),
        ("ecr-archive.json", "'UPDATE_STORAGE_CLASS' is not a push"),
        ("ecr-replication.json", "do not trigger"),
        ("ecr-pull-through-cache.json", "do not trigger"),
    ],
)
def test_other_events_are_ignored_with_a_reason(name, reason):
    event = parse_event(sample(name))
    assert isinstance(event, IgnoredEvent)
    assert reason in event.reason


def test_failed_push_is_ignored():
    data = sample("ecr-push.json")
    data["detail"]["result"] = "FAILURE"
    assert "not SUCCESS" in parse_event(data).reason


def test_scan_sample_is_parsed_as_a_scan():
    event = parse_event(sample("ecr-image-scan.json"))
    assert isinstance(event, ImageScanned)
    assert event.status == "COMPLETE"


def test_inspector_scan_is_a_scan_of_the_repository_its_arn_names():
    event = parse_event(sample("inspector2-scan.json"))
    assert isinstance(event, ImageScanned)
    assert event.repository == "amazon/amazon-ecs-sample"
    assert event.digest.startswith("sha256:36c7b282")


def test_a_request_carries_who_asked_why_and_free_form_metadata():
    detail = {
        "repository-name": "app",
        "image-tag": "v1.0.0",
        "requested-by": "ci@github",
        "reason": "tests passed",
        "metadata": {"run": 42},
    }
    event = parse_event(request(**detail))
    assert (event.requested_by, event.reason, event.metadata) == ("ci@github", "tests passed", {"run": 42})


def test_the_request_source_is_configurable(monkeypatch):
    monkeypatch.setenv(settings.REQUEST_SOURCE_ENV, "acme.ci")
    data = request(**{"repository-name": "app", "image-tag": "v1"})
    assert isinstance(parse_event(data), IgnoredEvent)
    assert isinstance(parse_event({**data, "source": "acme.ci"}), PromotionRequested)


def test_the_request_contract_names():
    assert settings.DEFAULT_REQUEST_EVENT_SOURCE == "image-promoter"
    assert settings.REQUEST_DETAIL_TYPE == "Image Promotion Requested"


def request(**detail) -> dict:
    return {
        "id": "req-1",
        "source": settings.REQUEST_EVENT_SOURCE,
        "detail-type": settings.REQUEST_DETAIL_TYPE,
        "detail": detail,
    }


def test_promotion_request_by_tag_and_by_digest():
    assert parse_event(request(**{"repository-name": "app", "image-tag": "v1.0.0"})) == PromotionRequested(
        "req-1", "app", "v1.0.0"
    )
    digest = "sha256:" + "a" * 64
    by_digest = parse_event(request(**{"repository-name": "app", "image-digest": digest, "rule": "x"}))
    assert (by_digest.digest, by_digest.tag, by_digest.rule) == (digest, "", "x")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "JSON object"),
        ({"id": "x"}, "not an EventBridge event"),
        ({"id": "x", "source": "aws.ecr", "detail-type": "ECR Image Action"}, "no 'detail'"),
        (
            {
                "id": "x",
                "source": "aws.ecr",
                "detail-type": "ECR Image Action",
                "detail": {"action-type": "PUSH", "result": "SUCCESS", "repository-name": "a"},
            },
            "image-digest",
        ),
        (
            {
                "id": "x",
                "source": "aws.ecr",
                "detail-type": "ECR Image Action",
                "detail": {
                    "action-type": "PUSH",
                    "result": "SUCCESS",
                    "repository-name": "a",
                    "image-digest": "md5:1",
                },
            },
            "not a sha256 digest",
        ),
        (request(**{"repository-name": "app"}), "neither image-tag nor image-digest"),
        (request(**{"image-tag": "v1"}), "repository-name"),
        (request(**{"repository-name": "app", "image-digest": "sha256:zz"}), "not a sha256 digest"),
    ],
)
def test_bad_events_raise_event_error(data, message):
    with pytest.raises(EventError, match=message):
        parse_event(data)


def test_a_message_body_that_is_not_json_is_a_malformed_message():
    with pytest.raises(MalformedMessageError, match="not JSON"):
        parse_json_event("{not json")
    assert isinstance(parse_json_event(json.dumps(sample("ecr-push.json"))), ImagePushed)


envelope_values = st.recursive(
    st.none()
    | st.integers()
    | st.sampled_from(
        [
            "",
            "aws.ecr",
            "ECR Image Action",
            "PUSH",
            "SUCCESS",
            "sha256:" + "a" * 64,
            settings.REQUEST_EVENT_SOURCE,
            settings.REQUEST_DETAIL_TYPE,
        ]
    ),
    lambda children: (
        st.lists(children, max_size=2)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "source",
                    "detail-type",
                    "detail",
                    "action-type",
                    "result",
                    "repository-name",
                    "image-digest",
                    "image-tag",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=15,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(envelope_values)
def test_any_malformed_event_is_an_event_error_never_a_crash(data):
    with contextlib.suppress(EventError):  # anything else escaping fails the test
        parse_event(data)
