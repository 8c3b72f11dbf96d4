"""The configuration contract: what is accepted, and every reason a configuration is refused."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promoter.model.config import (
    ConfigError,
    PromotionConfig,
    Rule,
    SourceSpec,
    TargetSpec,
    load_config,
    parse_config,
)

REPO_ROOT = Path(__file__).parents[2]


def rule(name="r", source=None, targets=None, **extra):
    data = {
        "name": name,
        "source": source or {"repository": "app-dev", "tags": ["sha-*"]},
        "targets": [{"repository": "app-staging", "tags": ["{tag}"]}] if targets is None else targets,
    }
    data.update(extra)
    return data


def refused(data) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value


def test_sample_promotion_yaml_is_valid_and_round_trips_through_staged_json():
    config = load_config(REPO_ROOT / "promotion.yaml")
    assert [r.name for r in config.rules] == ["dev-to-staging", "staging-to-prod", "team-releases"]
    assert parse_config(json.loads(config.to_json())) == config


def test_defaults_are_push_trigger_any_source_tag_and_same_target_tag():
    config = parse_config(
        {"rules": [{"name": "a", "source": {"repository": "x1"}, "targets": [{"repository": "y1"}]}]}
    )
    assert config == PromotionConfig(
        (Rule("a", SourceSpec("x1", ("*",)), "push", (TargetSpec("y1", ("{tag}",)),)),)
    )


def test_load_config_reads_json_files(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"rules": [rule()]}))
    assert load_config(path).rules[0].name == "r"


def test_unreadable_or_malformed_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad_json)


@pytest.mark.parametrize("data", [None, [], "rules", {"rules": []}, {"rules": "x"}])
def test_a_configuration_without_a_list_of_rules_is_refused(data):
    refused(data)


def test_unknown_top_level_key_is_refused():
    assert "unknown key" in refused({"rules": [rule()], "extra": 1}).reason


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (rule(colour="red"), "colour"),
        (rule(source={"repository": "a1", "tags": ["x"], "tag": "y"}), "source.tag"),
        (rule(targets=[{"repository": "b1", "tagz": ["x"]}]), "targets[0].tagz"),
    ],
)
def test_unknown_keys_are_refused_with_rule_and_field(data, field):
    error = refused({"rules": [data]})
    assert (error.rule, error.field) == ("r", field)
    assert "unknown key" in error.reason


@pytest.mark.parametrize("name", ["Upper", "has space", "", "-lead", 7, "x" * 65, "under_score"])
def test_bad_rule_names_are_refused(name):
    assert refused({"rules": [rule(name=name)]}).field == "name"


def test_duplicate_rule_names_are_refused():
    error = refused({"rules": [rule("same"), rule("same", source={"repository": "other", "tags": ["x"]})]})
    assert (error.rule, error.field, error.reason) == ("same", "name", "duplicate rule name")


def test_unknown_trigger_is_refused():
    error = refused({"rules": [rule(trigger="pull")]})
    assert (error.rule, error.field) == ("r", "trigger")


@pytest.mark.parametrize(
    ("source", "field", "reason"),
    [
        ({"repository": "team/[ab]", "tags": ["x"]}, "source.repository", "bad glob"),
        ({"repository": "Team", "tags": ["x"]}, "source.repository", "bad glob"),
        ({"repository": "a", "tags": ["x"]}, "source.repository", "not a valid ECR repository"),
        ({"repository": "app", "tags": ["x{y}"]}, "source.tags[0]", "bad glob"),
        ({"repository": "app", "tags": ["ok", "re:(unclosed"]}, "source.tags[1]", "bad regex"),
        ({"repository": "app", "tags": "sha-*"}, "source.tags", "non-empty list"),
        ({"repository": "app", "tags": []}, "source.tags", "non-empty list"),
        ("app", "source", "mapping"),
    ],
)
def test_bad_source_patterns_are_refused(source, field, reason):
    error = refused({"rules": [rule(source=source)]})
    assert (error.rule, error.field) == ("r", field)
    assert reason in error.reason


@pytest.mark.parametrize(
    ("target", "field", "reason"),
    [
        ({"repository": "app-staging", "tags": ["{branch}"]}, "targets[0].tags[0]", "unknown field"),
        ({"repository": "app-staging", "tags": ["{tag"]}, "targets[0].tags[0]", "malformed"),
        ({"repository": "app-staging", "tags": ["{tag!r}"]}, "targets[0].tags[0]", "no format spec"),
        ({"repository": "app-staging", "tags": ["{digest}"]}, "targets[0].tags[0]", "':' is not allowed"),
        ({"repository": "app-staging", "tags": ["-{tag}"]}, "targets[0].tags[0]", "not a valid ECR tag"),
        ({"repository": "app-staging", "tags": ["x" * 129]}, "targets[0].tags[0]", "not a valid ECR tag"),
        (
            {"repository": "App-{repository}", "tags": ["{tag}"]},
            "targets[0].repository",
            "not a valid ECR repository",
        ),
        ({"repository": "{digest}", "tags": ["{tag}"]}, "targets[0].repository", "comes from the pushed tag"),
        ({"repository": "", "tags": ["{tag}"]}, "targets[0].repository", "non-empty"),
    ],
)
def test_bad_target_templates_are_refused(target, field, reason):
    error = refused({"rules": [rule(targets=[target])]})
    assert (error.rule, error.field) == ("r", field)
    assert reason in error.reason


def test_repository_field_in_a_tag_is_refused_when_it_can_contain_a_slash():
    error = refused(
        {
            "rules": [
                rule(
                    source={"repository": "team/*", "tags": ["v*"]},
                    targets=[{"repository": "mirror", "tags": ["{repository}"]}],
                )
            ]
        }
    )
    assert "'/'" in error.reason
    ok = parse_config(
        {
            "rules": [
                rule(
                    source={"repository": "app", "tags": ["v*"]},
                    targets=[{"repository": "mirror", "tags": ["{repository}-{tag}"]}],
                )
            ]
        }
    )
    assert ok.rules[0].targets[0].tags == ("{repository}-{tag}",)


def test_no_targets_is_refused():
    assert refused({"rules": [rule(targets=[])]}).field == "targets"
    assert refused({"rules": [{"name": "r", "source": {"repository": "ab"}}]}).field == "targets"


@pytest.mark.parametrize("tags", [["sha-*"], ["latest"], ["v_*"], ["vx*"]])
def test_semver_fields_are_refused_when_no_source_tag_can_be_a_version(tags):
    error = refused(
        {
            "rules": [
                rule(
                    source={"repository": "app", "tags": tags},
                    targets=[{"repository": "prod", "tags": ["{major}"]}],
                )
            ]
        }
    )
    assert (error.rule, error.field) == ("r", "source.tags")


@pytest.mark.parametrize("tags", [["v*"], ["1.*"], ["1.2.3"], ["re:.*"], ["latest", "*"]])
def test_semver_fields_are_accepted_when_a_source_tag_can_be_a_version(tags):
    config = parse_config(
        {
            "rules": [
                rule(
                    source={"repository": "app", "tags": tags},
                    targets=[{"repository": "prod", "tags": ["{major}.{minor}"]}],
                )
            ]
        }
    )
    assert config.rules[0].uses_semver


def test_a_rule_whose_target_matches_its_own_source_is_a_refused_self_loop():
    error = refused(
        {
            "rules": [
                rule(
                    source={"repository": "app", "tags": ["sha-*"]},
                    targets=[{"repository": "app", "tags": ["sha-{short_digest}"]}],
                )
            ]
        }
    )
    assert (error.rule, error.field) == ("r", "targets")
    assert "r -> r" in error.reason


def test_a_glob_target_repository_overlapping_its_source_is_a_self_loop():
    error = refused(
        {
            "rules": [
                rule(
                    source={"repository": "team/*", "tags": ["v*"]},
                    targets=[{"repository": "{repository}-release", "tags": ["{tag}"]}],
                )
            ]
        }
    )
    assert "r -> r" in error.reason


def test_rules_feeding_each_other_in_a_ring_are_refused():
    rules = [
        rule("a", source={"repository": "one", "tags": ["*"]}, targets=[{"repository": "two"}]),
        rule("b", source={"repository": "two", "tags": ["re:^rc-.*"]}, targets=[{"repository": "three"}]),
        rule("c", source={"repository": "three", "tags": ["*"]}, targets=[{"repository": "one"}]),
    ]
    error = refused({"rules": rules})
    assert "a -> b -> c -> a" in error.reason


def test_a_chain_without_a_cycle_is_accepted():
    rules = [
        rule("a", source={"repository": "one", "tags": ["*"]}, targets=[{"repository": "two"}]),
        rule("b", source={"repository": "two", "tags": ["*"]}, targets=[{"repository": "three"}]),
    ]
    assert len(parse_config({"rules": rules}).rules) == 2


def test_a_same_repository_retag_to_a_tag_the_source_does_not_take_is_not_a_loop():
    config = parse_config(
        {
            "rules": [
                rule(
                    source={"repository": "app", "tags": ["sha-*"]},
                    targets=[{"repository": "app", "tags": ["latest"]}],
                )
            ]
        }
    )
    assert config.rules[0].targets[0].repository == "app"


def test_request_rules_are_not_fed_by_pushes_so_they_close_no_cycle():
    rules = [
        rule("a", source={"repository": "one", "tags": ["*"]}, targets=[{"repository": "two"}]),
        rule(
            "b",
            source={"repository": "two", "tags": ["*"]},
            targets=[{"repository": "one"}],
            trigger="request",
        ),
    ]
    assert len(parse_config({"rules": rules}).rules) == 2


def test_repository_globs_for_iam_render_the_source_glob_into_target_templates():
    config = parse_config(
        {
            "rules": [
                rule(
                    "a",
                    source={"repository": "team/*", "tags": ["v*"]},
                    targets=[{"repository": "release/{repository}"}, {"repository": "all-{repository}"}],
                ),
                rule("b", source={"repository": "app", "tags": ["x"]}, targets=[{"repository": "app-prod"}]),
            ]
        }
    )
    assert config.source_repository_globs() == ("app", "team/*")
    assert config.target_repository_globs() == ("all-team/*", "app-prod", "release/team/*")


def test_source_matches_globs_and_anchored_regexes():
    config = parse_config({"rules": [rule(source={"repository": "team/*", "tags": ["v*", "re:rc-[0-9]+"]})]})
    source = config.rules[0].source
    assert source.matches("team/api", "v1.0.0")
    assert source.matches("team/a/b", "rc-12")
    assert not source.matches("team/api", "xrc-12")
    assert not source.matches("other/api", "v1")


def test_a_repository_template_from_a_catch_all_glob_is_refused():
    error = refused(
        {
            "rules": [
                rule(
                    source={"repository": "*", "tags": ["v*"]},
                    targets=[{"repository": "{repository}", "tags": ["stable"]}],
                )
            ]
        }
    )
    assert error.field == "source.repository" and "no literal part" in error.reason


def test_a_source_feeding_any_repository_it_matches_is_a_loop():
    error = refused(
        {
            "rules": [
                rule(
                    source={"repository": "*-dev", "tags": ["v*"]},
                    targets=[{"repository": "mirror/{repository}"}],
                )
            ]
        }
    )
    assert "r -> r" in error.reason


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(["", "*", "{tag}", "a1", "re:(", "push", "x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["rules", "name", "source", "targets", "repository", "tags", "trigger"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_malformed_data_is_refused_with_config_error_never_a_crash(data):
    with contextlib.suppress(ConfigError):  # anything else escaping fails the test
        parse_config(data)
