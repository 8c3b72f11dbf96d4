"""Which pushes the out-of-band check looks at: tags a rule can write, not every tag of a repository
that some rule targets (a repository is often one rule's source and another's target)."""

from __future__ import annotations

from promoter.model.config import parse_config
from promoter.workflows.out_of_band import rules_writing

CONFIG = parse_config(
    {
        "rules": [
            {
                "name": "promote",
                "source": {"repository": "dev", "tags": ["sha-*"]},
                "targets": [{"repository": "stage", "tags": ["{tag}", "b-{short_digest}"]}],
            },
            {
                "name": "release",
                "trigger": "request",
                "source": {"repository": "stage", "tags": ["sha-*"]},
                "targets": [{"repository": "dev", "tags": ["released-{tag}"]}],
            },
            {
                "name": "semver",
                "trigger": "request",
                "source": {"repository": "stage", "tags": ["re:^v(?P<v>[0-9.]+)$"]},
                "targets": [{"repository": "prod", "tags": ["{tag}", "{major}.{minor}", "latest"]}],
            },
        ]
    }
)


def test_a_ci_push_into_a_repository_that_a_rule_writes_other_tags_of_is_not_watched():
    assert rules_writing(CONFIG, "dev", "sha-1") == ()
    assert rules_writing(CONFIG, "dev", "released-sha-1") == ("release",)


def test_every_tag_a_template_can_render_is_watched_and_no_other():
    assert rules_writing(CONFIG, "stage", "sha-1") == ("promote",)
    assert rules_writing(CONFIG, "stage", "b-0123456789ab") == ("promote",)
    assert rules_writing(CONFIG, "stage", "v1.2.3") == ()
    assert rules_writing(CONFIG, "prod", "latest") == ("semver",)
    assert rules_writing(CONFIG, "prod", "1.4") == ("semver",)
    assert rules_writing(CONFIG, "elsewhere", "latest") == ()
