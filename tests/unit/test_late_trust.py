"""Late trust material (issue 21.1), the pure parts: what the referrer event and a cosign tag's
push parse into, and which events the trust-material pattern lets through (moto's EventBridge
pattern engine, the one its rule routing uses, fed the pattern as the stack would carry it)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from infra.event_patterns import trust_material_event_pattern
from promoter.model.events import IgnoredEvent, ReferrerArrived, parse_event
from promoter.workflows.late_trust import TrustArrival, trust_arrival
from tests.fixtures import EVENTS_DIR

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "ab" * 32


def _sample(name: str, **detail: Any) -> dict[str, Any]:
    event = json.loads((EVENTS_DIR / name).read_text())
    changed = copy.deepcopy(event)
    for key, value in detail.items():
        if value is None:
            changed["detail"].pop(key.replace("_", "-"), None)
        else:
            changed["detail"][key.replace("_", "-")] = value
    return changed


def _cosign_push(repository: str = "app-dev") -> dict[str, Any]:
    return _sample(
        "ecr-push-oci-fields.json", repository_name=repository, image_tag=f"sha256-{'ab' * 32}.sig"
    )


def test_the_sample_referrer_event_restored_to_standard_is_an_arrival_of_that_referrer():
    event = parse_event(_sample("ecr-referrer-action.json"))

    assert isinstance(event, ReferrerArrived)
    assert (event.repository, event.digest) == (
        "sbom",
        _sample("ecr-referrer-action.json")["detail"]["image-digest"],
    )
    assert event.artifact_type == "text/sbom+json"
    assert trust_arrival(event) == TrustArrival(event.event_id, "sbom", event.digest, None)


def test_a_pushed_referrer_is_an_arrival_and_an_archived_or_deleted_one_is_not():
    pushed = parse_event(_sample("ecr-referrer-action.json", action_type="PUSH", target_storage_class=None))
    archived = parse_event(_sample("ecr-referrer-action.json", target_storage_class="ARCHIVE"))
    deleted = parse_event(_sample("ecr-referrer-action.json", action_type="DELETE"))

    assert isinstance(pushed, ReferrerArrived)
    assert isinstance(archived, IgnoredEvent) and isinstance(deleted, IgnoredEvent)


def test_a_cosign_tag_push_is_an_arrival_about_the_digest_its_tag_names():
    event = parse_event(_cosign_push())

    arrival = trust_arrival(event)

    assert arrival is not None and arrival.subject == DIGEST and arrival.repository == "app-dev"
    assert trust_arrival(parse_event(_sample("ecr-push.json"))) is None  # an ordinary tagged push


@pytest.fixture(scope="module")
def matches():
    pattern = trust_material_event_pattern(["app-dev", "team/*"], "123456789012")
    return EventPattern.load(json.dumps(pattern)).matches_event


def test_the_pattern_takes_referrer_events_and_cosign_tag_pushes_of_the_sources(matches):
    assert matches(_sample("ecr-referrer-action.json", repository_name="team/api"))
    assert matches(_sample("ecr-referrer-action.json", repository_name="app-dev", action_type="PUSH"))
    assert matches(_cosign_push("app-dev"))


def test_the_pattern_leaves_out_tagged_and_untagged_image_pushes_and_other_repositories(matches):
    assert not matches(_sample("ecr-push-oci-fields.json", repository_name="app-dev", image_tag="v1"))
    assert not matches(_sample("ecr-push-untagged.json", repository_name="team/api"))  # "image-tag": ""
    assert not matches(_sample("ecr-referrer-action.json", repository_name="app-prod"))
    assert not matches(_cosign_push("elsewhere"))
    assert not matches(_sample("ecr-referrer-action.json", repository_name="team/api", result="FAILURE"))
