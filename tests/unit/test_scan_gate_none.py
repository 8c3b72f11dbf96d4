"""`max_severity: NONE` (issue 21, item 6): a scan gate that lets no finding through at all."""

from __future__ import annotations

import pytest

from promoter.aws.registry import ScanReport
from promoter.exceptions import ConfigError
from promoter.gates.scan import check_scan
from promoter.model.config import SEVERITIES, ScanGate, parse_config
from promoter.model.verdicts import BLOCKED, PASSED


def _config(max_severity: object) -> object:
    rule = {
        "name": "clean",
        "trigger": "request",
        "source": {"repository": "app", "tags": ["v*"]},
        "targets": [{"repository": "app-prod"}],
        "require": {"scan": {"max_severity": max_severity}},
    }
    return parse_config({"rules": [rule]})


def test_none_is_parsed_and_round_trips():
    config = _config("NONE")
    assert config.rules[0].scan_gate.max_severity == "NONE"
    assert parse_config(config.to_dict()) == config


@pytest.mark.parametrize("severity", SEVERITIES)
def test_none_blocks_a_single_finding_of_every_severity(severity):
    assert ScanGate("NONE").blocking({severity: 1}) == {severity: 1}


def test_the_lowest_severity_still_lets_undefined_findings_through_but_none_does_not():
    counts = {"UNDEFINED": 2}
    assert ScanGate("UNDEFINED").blocking(counts) == {}
    assert ScanGate("NONE").blocking(counts) == {"UNDEFINED": 2}
    assert ScanGate("NONE").blocking({}) == {}


def test_a_misspelt_none_is_refused_naming_none_among_the_choices():
    with pytest.raises(ConfigError) as raised:
        _config("none")
    assert raised.value.field == "require.scan.max_severity" and "NONE" in str(raised.value)


class _Findings:
    """The one read the scan gate makes (DescribeImageScanFindings), answered with fixed counts."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def scan_findings(self, repository: str, digest: str) -> ScanReport:
        return ScanReport("COMPLETE", self.counts)


def test_the_verdict_says_the_rule_allows_no_findings():
    blocked = check_scan(_Findings({"LOW": 1}), "app", "sha256:" + "a" * 64, ScanGate("NONE"))  # type: ignore[arg-type]
    passed = check_scan(_Findings({}), "app", "sha256:" + "a" * 64, ScanGate("NONE"))  # type: ignore[arg-type]

    assert blocked.state == BLOCKED and "1 LOW" in blocked.reason and "allows no findings" in blocked.reason
    assert passed.state == PASSED
