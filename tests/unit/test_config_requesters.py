"""Who may request which rule (issue 10, point 2): `requesters:` in the configuration, requests
bound to a rule by their event source, the authenticated requester kept apart from the declared
one, and control characters escaped where history is printed."""

from __future__ import annotations

import json

import pytest

from promoter import settings
from promoter.exceptions import ConfigError, EventError, InvalidRequestError
from promoter.model.config import parse_config
from promoter.model.events import PromotionRequested, parse_event
from promoter.model.plan import plan_event
from promoter_cli.cmd_release import history_row, print_table

DIGEST = "sha256:" + "ab" * 32
CI_ACCOUNT = "210987654321"
CI_ROLE = f"arn:aws:iam::{CI_ACCOUNT}:role/release-*"
RULES = {
    "rules": [
        {
            "name": "to-prod",
            "trigger": "request",
            "source": {"repository": "app-staging", "tags": ["v*"]},
            "targets": [{"repository": "app-prod"}],
            "requesters": [CI_ROLE, "123456789012"],
        },
        {
            "name": "to-qa",
            "trigger": "request",
            "source": {"repository": "app-staging", "tags": ["v*"]},
            "targets": [{"repository": "app-qa"}],
        },
    ]
}


def request_event(source: str, account: str = CI_ACCOUNT, **detail: str) -> dict:
    return {
        "version": "0",
        "id": "req-1",
        "detail-type": settings.REQUEST_DETAIL_TYPE,
        "source": source,
        "account": account,
        "time": "2026-11-20T10:15:30Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"repository-name": "app-staging", "image-tag": "v1.2.3", "image-digest": DIGEST, **detail},
    }


def test_requesters_are_parsed_and_staged():
    config = parse_config(RULES)
    assert config.rule("to-prod").requesters == (CI_ROLE, "123456789012")
    assert config.rule("to-qa").requesters == ()
    assert parse_config(json.loads(config.to_json())) == config


@pytest.mark.parametrize(
    ("requesters", "field", "reason"),
    [
        (["*"], "requesters[0]", "12-digit account id"),
        (["arn:aws:iam::*:role/ci"], "requesters[0]", "named account"),
        (["arn:aws:sts::210987654321:assumed-role/ci/x"], "requesters[0]", "IAM role or user ARN"),
        (["12345"], "requesters[0]", "12-digit"),
        ("210987654321", "requesters", "list"),
        ([CI_ROLE, CI_ROLE], "requesters", "twice"),
    ],
)
def test_bad_requesters_are_refused(requesters, field, reason):
    data = json.loads(json.dumps(RULES))
    data["rules"][0]["requesters"] = requesters
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert (info.value.rule, info.value.field) == ("to-prod", field)
    assert reason in info.value.reason


def test_a_push_rule_has_no_requesters():
    rule = {"name": "p", "source": {"repository": "app-dev"}, "targets": [{"repository": "app-qa"}]}
    with pytest.raises(ConfigError, match="only a request rule has requesters"):
        parse_config({"rules": [{**rule, "requesters": [CI_ACCOUNT]}]})


def test_a_request_on_the_rules_own_source_is_bound_to_that_rule_and_says_who_aws_authenticated():
    event = parse_event(request_event(settings.rule_request_source("to-prod"), **{"requested-by": "alice"}))
    assert isinstance(event, PromotionRequested)
    assert (event.rule, event.source_rule, event.sender_account) == ("to-prod", "to-prod", CI_ACCOUNT)
    plan = plan_event(event, parse_config(RULES))
    assert [(a.rule, a.target_repository) for a in plan.actions] == [("to-prod", "app-prod")]
    assert plan.provenance.requested_by == "alice"  # declared: free text
    assert plan.provenance.authenticated_as == f"account {CI_ACCOUNT}, a requester of rule to-prod"


def test_a_request_on_a_rules_source_naming_another_rule_is_bad_input():
    with pytest.raises(EventError, match="posted for rule 'to-prod'"):
        parse_event(request_event(settings.rule_request_source("to-prod"), rule="to-qa"))


def test_the_shared_source_cannot_request_a_rule_that_names_its_requesters():
    event = parse_event(request_event(settings.request_event_source(), rule="to-prod"))
    with pytest.raises(InvalidRequestError, match="takes requests only from its requesters"):
        plan_event(event, parse_config(RULES))


def test_the_shared_source_without_a_rule_fires_only_the_open_rules():
    event = parse_event(request_event(settings.request_event_source()))
    plan = plan_event(event, parse_config(RULES))
    assert [a.rule for a in plan.actions] == ["to-qa"]
    assert plan.provenance.authenticated_as == f"account {CI_ACCOUNT}, a principal the promotion bus trusts"


def test_history_table_escapes_control_characters_of_the_declared_requester(capsys):
    hostile = "ci\x1b]0;owned\x07\x1b[2J\r\nroot\x9b"
    print_table(
        [
            history_row(
                {
                    "pk": "app-prod:v1",
                    "outcome": "promoted",
                    "requested_by": hostile,
                    "authenticated_as": f"account {CI_ACCOUNT}, a requester of rule to-prod",
                    "request_reason": "release\x1b[31m",
                    "source": f"app-staging:v1@{DIGEST}",
                }
            )
        ]
    )
    out = capsys.readouterr().out
    assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in out)
    assert len(out.splitlines()) == 2  # the header and one row: an embedded newline is escaped
    assert "ci\\x1b]0;owned\\x07\\x1b[2J\\r\\nroot\\x9b" in out
    assert f"account {CI_ACCOUNT}, a requester of rule to-prod" in out
