"""Rules cannot hand a repository name to whoever names the source (issue 18.6): a named capture
never forms a whole target repository name or a whole path segment of it, and no rule needs an IAM
grant on every repository."""

from __future__ import annotations

import pytest

from promoter.exceptions import ConfigError
from promoter.model.config import parse_config
from promoter.model.templates import bare_segments

SOURCE = "re:svc/(?P<team>[a-z0-9-]+)/(?P<name>[a-z0-9-]+)-staging"


def _rule(source: str, target: str, trigger: str = "push") -> dict:
    return {
        "rules": [
            {
                "name": "r",
                "trigger": trigger,
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": target}],
            }
        ]
    }


def _refusal(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value


@pytest.mark.parametrize(
    ("target", "segment"),
    [
        ("{name}", "the whole target repository name"),
        ("prod/{team}/api", "the whole path segment '{team}'"),
        ("prod/{team}", "the whole path segment '{team}'"),
        ("{team}/api-prod", "the whole path segment '{team}'"),
        ("prod/{team}{name}", "the whole path segment '{team}{name}'"),
        ("prod/{team}-{name}", "the whole path segment '{team}-{name}'"),  # a separator narrows nothing
    ],
)
@pytest.mark.parametrize("trigger", ["push", "request"])
def test_a_capture_forming_a_whole_name_or_segment_is_refused(target, segment, trigger):
    error = _refusal(_rule(SOURCE, target, trigger))
    assert error.field == "targets[0].repository"
    assert segment in error.reason and "would choose the repository written to" in error.reason


@pytest.mark.parametrize(
    ("target", "glob"),
    [
        ("prod/{team}-{name}-prod", "prod/*-*-prod"),
        ("prod-{team}/{name}-api", "prod-*/*-api"),
    ],
)
def test_a_capture_beside_a_literal_part_of_its_segment_is_accepted(target, glob):
    assert parse_config(_rule(SOURCE, target)).target_repository_globs() == (glob,)


def test_repository_as_a_whole_segment_keeps_the_sources_literal_parts():
    config = parse_config(_rule("team/*", "release/{repository}"))
    assert config.target_repository_globs() == ("release/team/*",)


@pytest.mark.parametrize("source", ["*", "?*", "*/*", "re:.+", "re:(?P<any>[a-z/]+)", "re:[a-z]+/[a-z]+"])
def test_a_source_with_no_literal_part_is_refused_so_repository_cannot_name_every_repository(source):
    error = _refusal(_rule(source, "prod/{repository}", "request"))
    assert error.field == "source.repository" and "no literal part" in error.reason


def test_bare_segments_name_the_fields_that_form_a_whole_segment():
    assert bare_segments("svc/{team}/x") == (("{team}", ("team",)),)
    assert bare_segments("svc/{team}-x/{repository}") == (("{repository}", ("repository",)),)
    assert bare_segments("svc/{team}-x") == ()
