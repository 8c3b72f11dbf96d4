"""Planning: which events fire which rules, and the actions they render."""

from __future__ import annotations

import json

import pytest

from promoter import settings
from promoter.exceptions import InvalidRequestError
from promoter.model.config import PromotionConfig, parse_config
from promoter.model.events import ImagePushed, PromotionRequested, parse_event
from promoter.model.plan import Action, SourceImage, plan_event, requested_digest_needed
from tests.fixtures import EVENTS_DIR

EVENTS = EVENTS_DIR
DIGEST = "sha256:" + "ab" * 32

CONFIG = parse_config(
    {
        "rules": [
            {
                "name": "dev-to-staging",
                "source": {"repository": "app-dev", "tags": ["sha-*"]},
                "targets": [{"repository": "app-staging"}, {"repository": "app-dev", "tags": ["latest"]}],
            },
            {
                "name": "releases",
                "source": {"repository": "team/*", "tags": ["v*"]},
                "targets": [{"repository": "release/{repository}", "tags": ["{tag}", "{major}.{minor}"]}],
            },
            {
                "name": "to-prod",
                "source": {"repository": "app-staging", "tags": ["*"]},
                "trigger": "request",
                "targets": [{"repository": "app-prod", "tags": ["{tag}", "prod-{short_digest}"]}],
            },
        ]
    }
)


def push(repository: str, tag: str) -> ImagePushed:
    return ImagePushed("e1", repository, DIGEST, tag)


def test_tagged_push_fires_matching_push_rule_for_every_target_and_tag():
    plan = plan_event(push("app-dev", "sha-1234"), CONFIG)
    source = SourceImage("app-dev", "sha-1234", DIGEST)
    assert plan.actions == (
        Action("dev-to-staging", source, "app-staging", "sha-1234"),
        Action("dev-to-staging", source, "app-dev", "latest"),
    )
    assert plan.actions[1].same_repository


def test_glob_rule_renders_repository_and_semver_templates():
    plan = plan_event(push("team/api", "v2.3.4"), CONFIG)
    assert [(a.target_repository, a.target_tag) for a in plan.actions] == [
        ("release/team/api", "v2.3.4"),
        ("release/team/api", "2.3"),
    ]


def test_semver_target_for_a_non_semver_tag_is_skipped_with_a_reason():
    plan = plan_event(push("team/api", "vnext"), CONFIG)
    assert plan.actions[0].skip_reason is None
    assert "not a semantic version" in plan.actions[1].skip_reason


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (push("app-dev", ""), "untagged push"),
        (push("app-dev", "sha256-" + "a" * 64 + ".sig"), "cosign signature tag"),
        (push("app-dev", "latest"), "no push rule matches app-dev:latest"),
        (push("app-staging", "sha-1"), "no push rule matches"),
    ],
)
def test_events_that_fire_no_push_rule_are_ignored_with_the_reason(event, reason):
    plan = plan_event(event, CONFIG)
    assert plan.actions == ()
    assert reason in plan.ignored_reason


@pytest.mark.parametrize(
    "name",
    [
        "ecr-delete.json",
        "ecr-archive.json",
        "ecr-image-scan.json",
        "ecr-replication.json",
        "ecr-referrer-action.json",
        "ecr-pull-through-cache.json",
        "inspector2-scan.json",
        "ecr-push-untagged.json",
    ],
)
def test_samples_other_than_tagged_push_plan_nothing(name):
    event = parse_event(json.loads((EVENTS / name).read_text()))
    plan = plan_event(event, CONFIG)
    assert plan.actions == ()
    assert plan.ignored_reason


def test_request_rules_do_not_fire_on_push_and_fire_on_request():
    assert plan_event(push("app-staging", "v1"), CONFIG).actions == ()
    request = PromotionRequested("r1", "app-staging", "v1")
    assert requested_digest_needed(request)
    plan = plan_event(request, CONFIG, resolved_digest=DIGEST)
    assert [(a.target_repository, a.target_tag) for a in plan.actions] == [
        ("app-prod", "v1"),
        ("app-prod", "prod-abababababab"),
    ]


def test_a_request_by_tag_without_the_resolved_digest_is_a_programming_error():
    with pytest.raises(ValueError, match="resolved_digest"):
        plan_event(PromotionRequested("r1", "app-staging", "v1"), CONFIG)


def test_a_request_naming_a_push_rule_is_a_bad_request():
    with pytest.raises(InvalidRequestError, match="is a push rule, not a request rule"):
        plan_event(PromotionRequested("r1", "app-dev", "sha-9", rule="dev-to-staging"), CONFIG, DIGEST)


def test_a_request_naming_an_unknown_rule_is_a_bad_request():
    with pytest.raises(InvalidRequestError, match="unknown rule 'nope'"):
        plan_event(PromotionRequested("r1", "app-dev", "sha-9", rule="nope"), CONFIG, DIGEST)


def test_a_request_carries_its_provenance_into_the_plan():
    request = PromotionRequested("r1", "app-staging", "v1", requested_by="ci", reason="green")
    plan = plan_event(request, CONFIG, DIGEST)
    assert (plan.provenance.trigger, plan.provenance.request_id) == ("request", "r1")
    assert (plan.provenance.requested_by, plan.provenance.reason) == ("ci", "green")


def test_a_request_by_digest_alone_is_planned_under_the_one_tag_the_image_carries():
    plan = plan_event(PromotionRequested("r1", "app-staging", "", digest=DIGEST), CONFIG, source_tags=("v7",))
    assert [(a.source.tag, a.target_tag) for a in plan.actions] == [("v7", "v7"), ("v7", "prod-abababababab")]


def test_a_request_by_digest_alone_of_an_untagged_image_matches_no_rule():
    with pytest.raises(InvalidRequestError, match="no request rule matches"):
        plan_event(PromotionRequested("r1", "app-staging", "", digest=DIGEST), CONFIG, source_tags=())


def test_a_request_by_digest_alone_with_several_matching_tags_is_ambiguous_for_tag_templates():
    request = PromotionRequested("r1", "app-staging", "", digest=DIGEST)
    with pytest.raises(InvalidRequestError, match=r"ambiguous for rule 'to-prod'.*rc, v7"):
        plan_event(request, CONFIG, source_tags=("v7", "rc"))


def test_a_rendered_tag_longer_than_ecr_allows_is_skipped():
    config = parse_config(
        {
            "rules": [
                {
                    "name": "r",
                    "source": {"repository": "a1", "tags": ["*"]},
                    "targets": [{"repository": "b1", "tags": ["{tag}-{tag}"]}],
                }
            ]
        }
    )
    plan = plan_event(push("a1", "x" * 100), config)
    assert "not a valid ECR tag" in plan.actions[0].skip_reason


def test_duplicate_targets_from_two_rules_are_planned_once():
    # Validation refuses two rules writing one tag; the plan still writes it once if given them.
    rules = [
        {"name": "a", "source": {"repository": "src", "tags": ["*"]}, "targets": [{"repository": "dst"}]},
        {"name": "b", "source": {"repository": "s*", "tags": ["v*"]}, "targets": [{"repository": "dst"}]},
    ]
    config = PromotionConfig(tuple(r for raw in rules for r in parse_config({"rules": [raw]}).rules))
    plan = plan_event(push("src", "v1"), config)
    assert [(a.rule, a.target_repository, a.target_tag) for a in plan.actions] == [("a", "dst", "v1")]


def test_action_round_trips_through_a_dict():
    action = plan_event(push("app-dev", "sha-1"), CONFIG).actions[0]
    assert Action.from_dict(json.loads(json.dumps(action.to_dict()))) == action


def test_request_event_source_names_come_from_settings():
    event = parse_event(
        {
            "id": "q",
            "source": settings.REQUEST_EVENT_SOURCE,
            "detail-type": settings.REQUEST_DETAIL_TYPE,
            "detail": {"repository-name": "app-staging", "image-digest": DIGEST},
        }
    )
    assert plan_event(event, CONFIG, source_tags=("v1",)).actions[1].target_tag == "prod-abababababab"
