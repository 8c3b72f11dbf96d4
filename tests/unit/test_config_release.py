"""Configuration for release workflows: scan gates and floating tags in immutable targets."""

from __future__ import annotations

import re
from typing import Any

import pytest

from promoter.exceptions import ConfigError
from promoter.model.config import DEFAULT_GATE_TIMEOUT_MINUTES, ScanGate, parse_config


def _rule(**extra: Any) -> dict[str, Any]:
    return {
        "name": "release",
        "trigger": "request",
        "source": {"repository": "app", "tags": ["v*"]},
        "targets": [{"repository": "app-prod", "tags": ["{tag}", "{major}.{minor}", "latest"]}],
        **extra,
    }


def test_a_scan_gate_is_parsed_with_its_default_timeout_and_round_trips():
    config = parse_config({"rules": [_rule(require={"scan": {"max_severity": "HIGH"}})]})
    assert config.rules[0].scan_gate == ScanGate("HIGH", DEFAULT_GATE_TIMEOUT_MINUTES)
    assert parse_config(config.to_dict()) == config
    assert config.gated_source_repository_globs() == ("app",)


@pytest.mark.parametrize(
    ("require", "field"),
    [
        ({"scan": {"max_severity": "SEVERE"}}, "require.scan.max_severity"),
        ({"scan": {"max_severity": "HIGH", "timeout_minutes": 0}}, "require.scan.timeout_minutes"),
        ({"scan": {"max_severity": "HIGH", "timeout_minutes": True}}, "require.scan.timeout_minutes"),
        ({"scan": {"max_severity": "HIGH", "wait": 1}}, "require.scan.wait"),
        ({"tests": {}}, "require.tests"),
        ("HIGH", "require"),
    ],
)
def test_a_bad_scan_gate_names_its_field(require, field):
    with pytest.raises(ConfigError) as raised:
        parse_config({"rules": [_rule(require=require)]})
    assert raised.value.field == field


def test_findings_above_the_threshold_block_and_those_at_or_below_pass():
    gate = ScanGate("HIGH")
    assert gate.blocking({"CRITICAL": 2, "HIGH": 5, "LOW": 1}) == {"CRITICAL": 2}
    assert gate.blocking({"HIGH": 5, "MEDIUM": 1}) == {}
    assert ScanGate("UNDEFINED").blocking({"INFORMATIONAL": 1}) == {"INFORMATIONAL": 1}


def test_a_floating_tag_in_an_immutable_target_is_a_configuration_error():
    rule = _rule()
    rule["targets"][0]["image_tag_mutability"] = "IMMUTABLE"
    with pytest.raises(
        ConfigError, match=re.escape("floating tag '{major}.{minor}' in an IMMUTABLE repository")
    ) as raised:
        parse_config({"rules": [rule]})
    assert raised.value.field == "targets[0].tags[1]"


def test_exact_tags_in_an_immutable_target_are_fine():
    rule = _rule()
    rule["targets"][0].update(tags=["{tag}", "prod-{short_digest}"], image_tag_mutability="IMMUTABLE")
    config = parse_config({"rules": [rule]})
    assert parse_config(config.to_dict()) == config
