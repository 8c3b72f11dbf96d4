"""Template rendering and semantic versions."""

from __future__ import annotations

import pytest

from promoter.exceptions import TemplateError
from promoter.model.templates import (
    ImageFacts,
    SemVer,
    is_valid_repository,
    is_valid_tag,
    parse_semver,
    render,
    template_fields,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4
FACTS = ImageFacts(repository="team/api", tag="v1.4.2-rc.1", digest=DIGEST)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{tag}", "v1.4.2-rc.1"),
        ("{repository}-prod", "team/api-prod"),
        ("{digest}", DIGEST),
        ("build-{short_digest}", "build-0123456789ab"),
        ("{major}.{minor}", "1.4"),
        ("v{major}", "v1"),
        ("{patch}", "2"),
        ("stable", "stable"),
    ],
)
def test_render_fills_every_field(template, expected):
    assert render(template, FACTS) == expected


def test_semver_fields_cannot_be_filled_from_a_non_semver_tag():
    with pytest.raises(TemplateError, match="not a semantic version"):
        render("{major}", ImageFacts("app", "sha-abc", DIGEST))


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("1.2.3", SemVer(1, 2, 3)),
        ("v10.0.1", SemVer(10, 0, 1)),
        ("1.0.0-rc.1", SemVer(1, 0, 0, "rc.1")),
        ("1.2", None),
        ("01.2.3", None),
        ("latest", None),
        ("1.2.3_x", None),
    ],
)
def test_parse_semver(tag, version):
    assert parse_semver(tag) == version


def test_template_fields_refuses_unknown_fields_and_bad_syntax():
    assert template_fields("{tag}-{short_digest}") == ("tag", "short_digest")
    with pytest.raises(TemplateError, match="unknown field"):
        template_fields("{branch}")
    with pytest.raises(TemplateError, match="malformed"):
        template_fields("{tag")
    with pytest.raises(TemplateError, match="format spec"):
        template_fields("{tag:>5}")


def test_ecr_name_rules():
    assert is_valid_tag("v1.0_rc-1")
    assert not is_valid_tag(".hidden")
    assert not is_valid_tag("a" * 129)
    assert not is_valid_tag("a/b")
    assert is_valid_repository("team/api-prod")
    assert not is_valid_repository("a")
    assert not is_valid_repository("Team/api")
    assert not is_valid_repository("team//api")
