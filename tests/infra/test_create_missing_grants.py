"""`create_missing` targets (issue 21, item 3): the stack grants ecr:CreateRepository on exactly the
repositories those targets name, in both roles that promote (the promoter and the reconciliation),
ecr:TagResource only on those created with tags, the KMS actions only on their keys; a
configuration without such targets gets none of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra.test_no_wildcard_repository_grants import _statements, _synth_all, _text

KEY = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CONFIG: dict[str, Any] = {
    "rules": [
        {
            "name": "release",
            "source": {"repository": "app-dev", "tags": ["v*"]},
            "targets": [
                {"repository": "app-staging"},  # not created: no grant for it
                {
                    "repository": "release/app",
                    "create_missing": {"encryption": {"type": "KMS", "kms_key": KEY}, "tags": {"team": "a"}},
                },
                {"repository": "release/api", "create_missing": {"image_tag_mutability": "IMMUTABLE"}},
            ],
        }
    ]
}


def _granted(statements: list[dict[str, Any]], action: str) -> list[list[str]]:
    """For each statement allowing `action`, its resources as text."""
    return [
        sorted(_text(r) for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]))
        for s in statements
        if action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]


@pytest.fixture(scope="module")
def statements(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    templates = _synth_all(CONFIG, Path(tmp_path_factory.mktemp("create-missing")))
    return [s for template in templates.values() for s in _statements(template)]


def test_create_repository_is_granted_on_the_exact_created_targets_in_each_promoting_role(statements):
    grants = _granted(statements, "ecr:CreateRepository")

    assert len(grants) == 2  # the promoter's role and the reconciliation's
    for resources in grants:
        assert [r.rsplit(":repository/", 1)[1] for r in resources] == ["release/api", "release/app"]


def test_tagging_and_the_kms_key_are_granted_only_for_the_target_that_needs_them(statements):
    tagging = _granted(statements, "ecr:TagResource")
    assert len(tagging) == 2
    for resources in tagging:
        assert [r.rsplit(":repository/", 1)[1] for r in resources] == ["release/app"]
    assert _granted(statements, "kms:CreateGrant") == [[KEY], [KEY]]
    assert _granted(statements, "kms:DescribeKey") == [[KEY], [KEY]]


def test_without_create_missing_nothing_is_created_or_tagged(tmp_path):
    plain = {"rules": [{**CONFIG["rules"][0], "targets": [{"repository": "app-staging"}]}]}
    found = [s for t in _synth_all(plain, tmp_path).values() for s in _statements(t)]

    for action in ("ecr:CreateRepository", "ecr:TagResource", "kms:CreateGrant"):
        assert _granted(found, action) == [], action
