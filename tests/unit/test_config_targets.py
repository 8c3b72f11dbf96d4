"""Cross-account and cross-region targets: `targets[].account`, `.region`, `.role` (issue 6)."""

from __future__ import annotations

import pytest

from promoter.model.config import ConfigError, TargetRegistry, parse_config
from promoter.model.plan import SourceImage, plan_actions

ACCOUNT = "210987654321"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/image-promoter-target"


def config_with(target: dict, source_repository: str = "app", trigger: str = "push") -> dict:
    return {
        "rules": [
            {
                "name": "to-prod",
                "source": {"repository": source_repository, "tags": ["v*"]},
                "trigger": trigger,
                "targets": [{"repository": "app", **target}],
            }
        ]
    }


def refused(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value


def test_account_region_and_role_make_a_target_registry():
    config = parse_config(config_with({"account": ACCOUNT, "region": "eu-west-1", "role": ROLE}))
    target = config.rules[0].targets[0]
    assert target.registry == TargetRegistry(account=ACCOUNT, region="eu-west-1", role=ROLE)


def test_a_target_without_them_is_in_the_promoters_own_registry():
    assert parse_config(config_with({}, trigger="request")).rules[0].targets[0].registry is None


def test_the_staged_json_keeps_the_target_registry():
    config = parse_config(config_with({"account": ACCOUNT, "role": ROLE}))
    again = parse_config(config.to_dict())
    assert again == config
    assert config.to_dict()["rules"][0]["targets"][0] == {
        "repository": "app",
        "tags": ["{tag}"],
        "account": ACCOUNT,
        "role": ROLE,
    }


@pytest.mark.parametrize(
    ("target", "field", "says"),
    [
        ({"account": "12345"}, "targets[0].account", "12-digit"),
        ({"account": 210987654321}, "targets[0].account", "12-digit"),
        ({"region": "Europe"}, "targets[0].region", "region"),
        ({"account": ACCOUNT, "role": "image-promoter-target"}, "targets[0].role", "role ARN"),
        ({"role": ROLE}, "targets[0].account", "needs the account"),
        ({"account": "111111111111", "role": ROLE}, "targets[0].role", f"in account {ACCOUNT}"),
    ],
)
def test_a_malformed_target_registry_is_refused_naming_the_field(target, field, says):
    error = refused(config_with(target))
    assert error.field == field
    assert says in error.reason


def test_a_same_named_target_in_another_registry_is_no_cycle():
    # In one registry, app:v* -> app:{tag} would feed itself; in another account it cannot.
    assert refused(config_with({})).field == "targets"
    parse_config(config_with({"account": ACCOUNT, "role": ROLE}))
    parse_config(config_with({"region": "eu-west-1"}))


def test_remote_targets_are_left_out_of_the_own_target_globs():
    data = config_with({"account": ACCOUNT, "role": ROLE}, source_repository="app-dev")
    data["rules"][0]["targets"].append({"repository": "app-staging"})
    config = parse_config(data)
    assert config.target_repository_globs() == ("app-staging",)
    assert config.remote_targets() == ((TargetRegistry(account=ACCOUNT, role=ROLE), "app"),)


def test_plan_aims_actions_at_the_target_registry_and_keeps_same_named_targets_apart():
    data = config_with({"account": ACCOUNT, "role": ROLE}, source_repository="app-dev")
    data["rules"][0]["targets"] += [{"repository": "app"}, {"repository": "app", "region": "eu-west-1"}]
    config = parse_config(data)
    actions = plan_actions(SourceImage("app-dev", "v1", "sha256:" + "a" * 64), config.rules)
    assert [(a.target_account, a.target_region, a.target_role, a.target_repository) for a in actions] == [
        (ACCOUNT, None, ROLE, "app"),
        (None, None, None, "app"),
        (None, "eu-west-1", None, "app"),
    ]
    assert [a.remote_target for a in actions] == [True, False, True]


def test_the_source_repository_in_another_registry_is_not_the_source_itself():
    config = parse_config(config_with({"region": "eu-west-1"}, trigger="request"))
    (action,) = plan_actions(SourceImage("app", "v1", "sha256:" + "b" * 64), config.rules)
    assert action.skip_reason is None
    assert not action.same_repository
