"""`protect:`: a target, its rule or the configuration's `defaults:` declare a protected target
repository; the target's word wins over its rule's, the rule's over the defaults'."""

from __future__ import annotations

import pytest

from promoter.model.config import ConfigError, load_config, parse_config


def config(*targets, defaults=None, **rule_keys):
    data = {
        "rules": [
            {
                "name": "to-prod",
                "source": {"repository": "app-staging", "tags": ["v*"]},
                "targets": list(targets) or [{"repository": "app-prod"}],
                **rule_keys,
            }
        ]
    }
    if defaults is not None:
        data["defaults"] = defaults
    return data


def protected(data) -> list[tuple[str, bool]]:
    parsed = parse_config(data)
    return [(t.repository, t.protect) for t in parsed.rules[0].targets]


def test_nothing_is_protected_unless_said():
    assert protected(config()) == [("app-prod", False)]


def test_a_target_says_protect():
    assert protected(config({"repository": "app-prod", "protect": True}, {"repository": "app-qa"})) == [
        ("app-prod", True),
        ("app-qa", False),
    ]


def test_a_rule_protects_its_targets_and_a_target_may_opt_out():
    data = config({"repository": "app-prod"}, {"repository": "app-qa", "protect": False}, protect=True)
    assert protected(data) == [("app-prod", True), ("app-qa", False)]


def test_defaults_protect_every_rule_and_a_rule_may_opt_out():
    data = config({"repository": "app-prod"}, defaults={"protect": True})
    data["rules"].append(
        {
            "name": "to-qa",
            "source": {"repository": "app-dev", "tags": ["sha-*"]},
            "targets": [{"repository": "app-qa"}],
            "protect": False,
        }
    )
    parsed = parse_config(data)
    assert [(t.repository, t.protect) for r in parsed.rules for t in r.targets] == [
        ("app-prod", True),
        ("app-qa", False),
    ]
    assert parsed.protected_repositories() == ("app-prod",)


def test_protected_targets_name_their_registry_once():
    data = config(
        {"repository": "app-prod", "protect": True},
        {"repository": "app-prod", "tags": ["release-{tag}"], "protect": True},
        {"repository": "app-prod", "account": "210987654321", "protect": True},
    )
    parsed = parse_config(data)
    assert [(r.account if r else None, name) for r, name in parsed.protected_targets()] == [
        (None, "app-prod"),
        ("210987654321", "app-prod"),
    ]
    assert parsed.protected_repositories() == ("app-prod",)


def test_the_staged_json_keeps_what_is_protected():
    data = config(
        {"repository": "app-prod"}, {"repository": "app-qa", "protect": False}, defaults={"protect": True}
    )
    parsed = parse_config(data)
    assert parse_config(parsed.to_dict()) == parsed
    assert "defaults" not in parsed.to_dict()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (config({"repository": "app-prod", "protect": "yes"}), "targets[0].protect"),
        (config(protect=1), "protect"),
        (config(defaults={"protect": "true"}), "defaults.protect"),
        (config(defaults={"protected": True}), "defaults.protected"),
        (config(defaults=[{"protect": True}]), "defaults"),
    ],
)
def test_protect_is_true_or_false(data, field):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.field == field


def test_a_templated_target_cannot_be_protected():
    """The policy is set on repositories by name: one a template renders later would be open."""
    data = config({"repository": "prod/{repository}", "protect": True})
    with pytest.raises(ConfigError, match="exact repository name") as info:
        parse_config(data)
    assert info.value.field == "targets[0].protect"


def test_a_default_that_reaches_a_templated_target_says_where_it_came_from():
    data = config({"repository": "prod/{repository}"}, defaults={"protect": True})
    with pytest.raises(ConfigError, match=r"by the `defaults: \{protect: true\}`") as info:
        parse_config(data)
    assert info.value.field == "targets[0].repository"
    data["rules"][0]["targets"][0]["protect"] = False
    assert protected(data) == [("prod/{repository}", False)]


def test_a_refusal_in_a_file_names_the_line(tmp_path):
    path = tmp_path / "promotion.yaml"
    path.write_text(
        "defaults:\n"
        "  protect: maybe\n"
        "rules:\n"
        "  - name: to-prod\n"
        "    source: {repository: app-staging}\n"
        "    targets:\n"
        "      - repository: app-prod\n"
        "        protect: 1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 2
    path.write_text(
        path.read_text(encoding="utf-8").replace("protect: maybe", "protect: true"), encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 8 and info.value.field == "targets[0].protect"
