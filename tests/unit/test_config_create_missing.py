"""`create_missing` on a target (issue 21, item 3): the settings the promoter creates a missing
target repository with, only for an exact name in its own registry, and the repositories and keys
the stack's grants are derived from."""

from __future__ import annotations

from typing import Any

import pytest

from promoter.model.config import ConfigError, CreateMissing, parse_config

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def config(target: dict[str, Any], source: str = "app-dev") -> dict[str, Any]:
    rule = {"name": "r", "source": {"repository": source, "tags": ["sha-*"]}, "targets": [target]}
    return {"rules": [rule]}


def refusal(target: dict[str, Any], source: str = "app-dev") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(config(target, source))
    return info.value


def test_create_missing_is_read_with_its_settings_and_written_back_the_same():
    parsed = parse_config(
        config(
            {
                "repository": "release/app",
                "tags": ["{tag}"],
                "create_missing": {
                    "image_tag_mutability": "IMMUTABLE",
                    "scan_on_push": True,
                    "encryption": {"type": "KMS", "kms_key": KEY},
                    "tags": {"team": "platform", "cost-centre": "42"},
                },
            }
        )
    )

    (target,) = parsed.rules[0].targets
    assert target.create_missing == CreateMissing(
        image_tag_mutability="IMMUTABLE",
        scan_on_push=True,
        encryption_type="KMS",
        kms_key=KEY,
        tags=(("cost-centre", "42"), ("team", "platform")),
    )
    assert target.image_tag_mutability == "IMMUTABLE"  # the repository will be configured so
    assert parsed.created_target_repositories() == ("release/app",)
    assert parsed.created_tagged_target_repositories() == ("release/app",)
    assert parsed.created_target_kms_keys() == (KEY,)
    assert parse_config(parsed.to_dict()) == parsed


def test_an_empty_create_missing_takes_ecrs_defaults_and_the_targets_mutability():
    parsed = parse_config(
        config({"repository": "release/app", "image_tag_mutability": "IMMUTABLE", "create_missing": {}})
    )

    (target,) = parsed.rules[0].targets
    assert target.create_missing == CreateMissing(image_tag_mutability="IMMUTABLE")
    assert parsed.created_tagged_target_repositories() == ()
    assert parsed.created_target_kms_keys() == ()


def test_targets_without_create_missing_are_not_created():
    parsed = parse_config(config({"repository": "release/app"}))

    assert parsed.rules[0].targets[0].create_missing is None
    assert parsed.created_target_repositories() == ()


@pytest.mark.parametrize(
    ("target", "field", "reason"),
    [
        (
            {"repository": "release/{repository}", "create_missing": {}},
            "targets[0].create_missing",
            "needs an exact repository name",
        ),
        (
            {"repository": "release/app", "account": "210987654321", "create_missing": {}},
            "targets[0].create_missing",
            "own registry only",
        ),
        (
            {"repository": "release/app", "region": "eu-west-1", "create_missing": {}},
            "targets[0].create_missing",
            "own registry only",
        ),
        (
            {
                "repository": "release/app",
                "image_tag_mutability": "MUTABLE",
                "create_missing": {"image_tag_mutability": "IMMUTABLE"},
            },
            "targets[0].create_missing.image_tag_mutability",
            "say it once",
        ),
        (
            {"repository": "release/app", "create_missing": {"image_tag_mutability": "SOMETIMES"}},
            "targets[0].create_missing.image_tag_mutability",
            "must be one of",
        ),
        (
            {"repository": "release/app", "create_missing": {"scan_on_push": "yes"}},
            "targets[0].create_missing.scan_on_push",
            "must be true or false",
        ),
        (
            {"repository": "release/app", "create_missing": {"encryption": {"type": "ROT13"}}},
            "targets[0].create_missing.encryption.type",
            "must be one of",
        ),
        (
            {"repository": "release/app", "create_missing": {"encryption": {"kms_key": KEY}}},
            "targets[0].create_missing.encryption.kms_key",
            "a KMS key needs encryption type KMS or KMS_DSSE",
        ),
        (
            {"repository": "app", "create_missing": {"encryption": {"type": "KMS", "kms_key": "a/x"}}},
            "targets[0].create_missing.encryption.kms_key",
            "must be a KMS key ARN",
        ),
        (
            {"repository": "release/app", "create_missing": {"tags": {"team": 1}}},
            "targets[0].create_missing.tags",
            "must map tag keys",
        ),
        (
            {"repository": "release/app", "create_missing": {"lifecycle": "x"}},
            "targets[0].create_missing.lifecycle",
            "unknown key",
        ),
        ({"repository": "release/app", "create_missing": True}, "targets[0].create_missing", "a mapping"),
    ],
)
def test_create_missing_is_refused_when_it_could_not_be_granted_or_applied(target, field, reason):
    error = refusal(target)

    assert error.field == field
    assert reason in error.reason


def test_a_floating_tag_in_a_target_created_immutable_is_refused_as_in_an_immutable_target():
    data = config({"repository": "release/app", "tags": ["{tag}", "{major}"], "create_missing": {}})
    data["rules"][0]["source"]["tags"] = ["v*"]
    data["rules"][0]["targets"][0]["create_missing"]["image_tag_mutability"] = "IMMUTABLE"

    with pytest.raises(ConfigError) as info:
        parse_config(data)

    assert info.value.field == "targets[0].tags[1]"
    assert "IMMUTABLE repository could never move forward" in info.value.reason
