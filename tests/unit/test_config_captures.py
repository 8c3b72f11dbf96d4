"""Named captures: the groups of a `re:` source repository fill target templates (issue 14.6)."""

from __future__ import annotations

import pytest

from promoter.exceptions import ConfigError
from promoter.model.config import parse_config
from promoter.model.events import ImagePushed
from promoter.model.plan import plan_event

DIGEST = "sha256:" + "ab" * 32
SERVICE_RULE = {
    "name": "svc-dev-to-staging",
    "source": {"repository": "re:svc/(?P<service>[a-z0-9-]+)-dev", "tags": ["sha-*"]},
    "targets": [{"repository": "svc/{service}-staging", "tags": ["{tag}", "{service}-latest"]}],
}


def test_a_named_capture_maps_each_dev_repository_to_its_staging_repository():
    config = parse_config({"rules": [SERVICE_RULE]})
    plan = plan_event(ImagePushed("e1", "svc/billing-api-dev", DIGEST, "sha-1"), config)
    assert [(a.target_repository, a.target_tag) for a in plan.actions] == [
        ("svc/billing-api-staging", "sha-1"),
        ("svc/billing-api-staging", "billing-api-latest"),
    ]
    assert plan_event(ImagePushed("e2", "svc/billing-api-prod", DIGEST, "sha-1"), config).actions == ()


def test_iam_and_event_patterns_get_a_wildcard_only_where_a_capture_stands():
    config = parse_config({"rules": [SERVICE_RULE]})
    assert config.source_repository_globs() == ("svc/*-dev",)
    assert config.target_repository_globs() == ("svc/*-staging",)


def test_a_capture_whose_target_feeds_the_source_again_is_a_cycle():
    looping = {
        "name": "loop",
        "source": {"repository": "re:svc/(?P<service>[a-z-]+)", "tags": ["*"]},
        "targets": [{"repository": "svc/{service}-copy"}],
    }
    with pytest.raises(ConfigError, match="feed back"):
        parse_config({"rules": [looping]})


def test_captures_of_two_rules_writing_the_same_repository_tag_are_refused():
    other = dict(
        SERVICE_RULE, name="other", source={"repository": "re:team/(?P<service>[a-z]+)", "tags": ["sha-*"]}
    )
    with pytest.raises(ConfigError, match="can write the same tag"):
        parse_config({"rules": [SERVICE_RULE, other]})


@pytest.mark.parametrize(
    ("source", "target", "reason"),
    [
        ("re:svc/(?P<tag>[a-z]+)-dev", "svc/{tag}-staging", "would shadow"),
        ("re:svc/(?P<service>[a-z]+)-dev", "svc/{team}-staging", "unknown field {team}"),
        ("svc/*-dev", "svc/{service}-staging", "unknown field {service}"),
        ("re:svc/(?P<service>[A-Z]+)-dev", "svc/{service}(-staging", "not a valid ECR repository"),
    ],
)
def test_captures_are_checked_at_validation(source, target, reason):
    with pytest.raises(ConfigError, match=reason.replace("(", r"\(").replace("{", r"\{")):
        parse_config(
            {"rules": [{"name": "r", "source": {"repository": source}, "targets": [{"repository": target}]}]}
        )
