"""`require: approval:` in the configuration (issue 20, point 1): parsed with its defaults, staged
and read back, and refused with file:line when it is malformed or could never be passed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promoter.exceptions import ConfigError
from promoter.model.approvals import ALARM_TOPIC, DEFAULT_EXPIRES_AFTER_SECONDS, ApprovalGate
from promoter.model.config import load_config, parse_config

ACCOUNT = "111122223333"
SSO = f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Release_*/*"
ALICE, BOB = f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws:iam::{ACCOUNT}:user/bob"
TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:releases"


def config_with(approval: object) -> dict:
    return {
        "rules": [
            {
                "name": "to-prod",
                "trigger": "request",
                "source": {"repository": "app-staging", "tags": ["v*"]},
                "targets": [{"repository": "app-prod"}],
                "require": {"scan": {"max_severity": "HIGH"}, "approval": approval},
            }
        ]
    }


def refusal(approval: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(config_with(approval))
    return info.value


def test_an_approval_gate_takes_its_defaults_and_stands_beside_a_scan_gate():
    rule = parse_config(config_with({"approvers": [SSO]})).rule("to-prod")
    assert rule.approval_gate == ApprovalGate(approvers=(SSO,))
    assert (rule.approval_gate.min, rule.approval_gate.requester_may_approve) == (1, False)
    assert rule.approval_gate.expires_after == DEFAULT_EXPIRES_AFTER_SECONDS == 24 * 3600
    assert rule.approval_gate.notify is None
    assert rule.scan_gate is not None


def test_every_key_is_read_and_the_staged_json_reads_back_the_same():
    config = parse_config(
        config_with(
            {
                "approvers": [ALICE, BOB],
                "min": 2,
                "requester_may_approve": True,
                "expires_after": "30m",
                "notify": TOPIC,
            }
        )
    )
    gate = config.rule("to-prod").approval_gate
    assert gate == ApprovalGate(
        (ALICE, BOB), min=2, requester_may_approve=True, expires_after=1800, notify=TOPIC
    )
    staged = json.loads(config.to_json())
    assert staged["rules"][0]["require"]["approval"]["expires_after"] == "30m"
    assert parse_config(staged) == config
    assert (
        parse_config(config_with({"approvers": [SSO], "notify": ALARM_TOPIC}))
        .rule("to-prod")
        .approval_gate.notify
        == ALARM_TOPIC
    )


@pytest.mark.parametrize(
    ("approval", "field", "said"),
    [
        ({"approvers": [ALICE, BOB], "min": 3}, "require.approval.min", "min 3 can never be reached"),
        # The same person twice is one person.
        ({"approvers": [ALICE, ALICE], "min": 2}, "require.approval.approvers", "twice"),
        ({"approvers": [ALICE], "expires_after": "0h"}, "require.approval.expires_after", "30m, 24h or 7d"),
        ({"approvers": [ALICE], "expires_after": "8d"}, "require.approval.expires_after", "at most 7d"),
        ({"approvers": [ALICE], "expires_after": 3600}, "require.approval.expires_after", "got 3600"),
        ({"approvers": [ALICE], "min": 0}, "require.approval.min", "at least 1"),
        ({"approvers": [ALICE], "min": True}, "require.approval.min", "at least 1"),
        ({"approvers": ["alice@example.com"]}, "require.approval.approvers[0]", "IAM principal ARN"),
        ({"approvers": ["arn:aws:iam::*:user/alice"]}, "require.approval.approvers[0]", "named account"),
        ({"approvers": [f"arn:aws:sts::{ACCOUNT}:user/alice"]}, "require.approval.approvers[0]", "ARN"),
        ({"approvers": []}, "require.approval.approvers", "non-empty list"),
        ({"min": 1}, "require.approval", "must list the approvers"),
        ({"approvers": [ALICE], "notify": "releases"}, "require.approval.notify", "SNS topic ARN"),
        (
            {"approvers": [ALICE], "requester_may_approve": "yes"},
            "require.approval.requester_may_approve",
            "true or false",
        ),
        ({"approvers": [ALICE], "quorum": 1}, "require.approval.quorum", "unknown key"),
        ("yes", "require.approval", "must be a mapping"),
    ],
)
def test_a_malformed_or_impossible_gate_is_refused(approval, field, said):
    error = refusal(approval)
    assert (error.rule, error.field) == ("to-prod", field)
    assert said in error.reason


def test_a_role_or_a_pattern_bounds_nothing_so_any_min_may_be_reached():
    for entry in (SSO, f"arn:aws:iam::{ACCOUNT}:role/Release", f"arn:aws:iam::{ACCOUNT}:user/release-*"):
        gate = (
            parse_config(config_with({"approvers": [ALICE, entry], "min": 5})).rule("to-prod").approval_gate
        )
        assert gate.min == 5


def test_an_impossible_gate_is_refused_with_its_file_and_line(tmp_path: Path):
    path = tmp_path / "promotion.yaml"
    path.write_text(
        "rules:\n"
        "  - name: to-prod\n"
        "    trigger: request\n"
        "    source: {repository: app-staging}\n"
        "    targets: [{repository: app-prod}]\n"
        "    require:\n"
        "      approval:\n"
        f"        approvers: ['{ALICE}', '{BOB}']\n"
        "        min: 3\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.location == f"{path}:9"
    assert "the approvers name 2 person(s) exactly" in str(info.value.reason)


def test_the_schema_names_the_defaults_the_parser_applies():
    from promoter.model.approvals import parse_duration
    from promoter_cli.config_schema import build_schema

    approval = build_schema()["properties"]["rules"]["items"]["properties"]["require"]["properties"][
        "approval"
    ]
    defaults = {key: value.get("default") for key, value in approval["properties"].items()}
    gate = parse_config(config_with({"approvers": [SSO]})).rule("to-prod").approval_gate
    assert defaults["min"] == gate.min
    assert defaults["requester_may_approve"] is gate.requester_may_approve
    assert parse_duration(defaults["expires_after"]) == gate.expires_after


def test_the_schema_pattern_of_expires_after_takes_exactly_what_the_parser_takes():
    """A pattern cannot compare numbers: each unit's limit is spelled out, checked here on every count
    up to past the limit."""
    import re

    from promoter_cli.config_schema import EXPIRES_AFTER_SCHEMA_PATTERN

    pattern = re.compile(EXPIRES_AFTER_SCHEMA_PATTERN)
    for unit, beyond in (("m", 10082), ("h", 170), ("d", 9)):
        for count in ("0", "00", "01", *map(str, range(1, beyond))):
            text = f"{count}{unit}"
            try:
                parse_config(config_with({"approvers": [SSO], "expires_after": text}))
                parser_takes = True
            except ConfigError:
                parser_takes = False
            assert parser_takes is bool(pattern.search(text)), text


def test_the_configuration_says_which_topics_approval_gates_notify():
    other = f"arn:aws:sns:eu-west-1:{ACCOUNT}:security"
    data = config_with({"approvers": [ALICE], "notify": TOPIC})
    data["rules"].append(
        {**data["rules"][0], "name": "to-qa", "require": {"approval": {"approvers": [BOB], "notify": other}}}
    )
    data["rules"].append(
        {
            **data["rules"][0],
            "name": "to-dr",
            "require": {"approval": {"approvers": [BOB], "notify": ALARM_TOPIC}},
        }
    )
    data["rules"][1]["targets"] = [{"repository": "app-qa"}]
    data["rules"][2]["targets"] = [{"repository": "app-dr"}]
    config = parse_config(data)
    assert config.approval_gated() and config.notifies_alarm_topic()
    assert config.approval_notify_topics() == (TOPIC, other)
    plain = parse_config({"rules": [{**data["rules"][0], "require": {"scan": {"max_severity": "HIGH"}}}]})
    assert (
        not plain.approval_gated()
        and plain.approval_notify_topics() == ()
        and not plain.notifies_alarm_topic()
    )
