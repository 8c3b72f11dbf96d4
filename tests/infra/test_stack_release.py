"""Issue 5 in the stack: the request rule's contract names, a bus that takes requests only from
trusted principals and results only from the function, scan-gate rules and the sweep, the gates
table, and IAM (PutEvents on the bus only; scan findings only on the sources of gated rules)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_events as events
from aws_cdk.assertions import Template
from moto.events.models import EventPattern

from infra.app import build_app
from infra.event_patterns import basic_scan_event_pattern, inspector_scan_event_pattern
from infra.permissions import GATES_TABLE_ACTIONS
from infra.props import ImagePromoterProps
from infra.stack import STACK_NAME, PromoterStack
from promoter import settings
from promoter.model.config import parse_config

OTHER_ACCOUNT = "210987654321"
GATED_RULE = {
    "name": "gated-release",
    "trigger": "request",
    "source": {"repository": "team/*", "tags": ["v*"]},
    "targets": [{"repository": "prod/{repository}", "tags": ["{tag}"]}],
    "require": {"scan": {"max_severity": "HIGH", "timeout_minutes": 30}},
}


def _template(config_data: dict[str, Any], **props: Any) -> dict[str, Any]:
    app = cdk.App()
    stack = PromoterStack(app, "Release", config=parse_config(config_data), **props)
    return Template.from_stack(stack).to_json()


@pytest.fixture(scope="module")
def gated(test_config) -> dict[str, Any]:
    data = test_config.to_dict()
    data["rules"].append(GATED_RULE)
    return _template(
        data, trusted_principals=(OTHER_ACCOUNT,), request_source="acme.ci", gate_sweep_minutes=10
    )


def _of_type(template: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == cfn_type}


def _policy_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    (policy,) = [
        p for k, p in _of_type(template, "AWS::IAM::Policy").items() if k.startswith("PromoterFunctionRole")
    ]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def _bus_statements(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        p["Properties"]["StatementId"].removeprefix("cdk-"): p["Properties"]["Statement"]
        for p in _of_type(template, "AWS::Events::EventBusPolicy").values()
    }


def _request_rule_pattern(template: dict[str, Any]) -> dict[str, Any]:
    (rule,) = [
        r for r in _of_type(template, "AWS::Events::Rule").values() if "EventBusName" in r["Properties"]
    ]
    return rule["Properties"]["EventPattern"]


def _event(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "1",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-20T10:15:30Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


# --- requests and results ---------------------------------------------------------------------


def test_the_request_rule_uses_the_contract_names(synthesized):
    assert _request_rule_pattern(synthesized.template_dict) == {
        "source": ["image-promoter"],
        "detail-type": ["Image Promotion Requested"],
    }


def test_the_request_source_is_a_prop_and_reaches_the_function(gated):
    assert _request_rule_pattern(gated)["source"] == ["acme.ci"]
    (function,) = [
        f for k, f in _of_type(gated, "AWS::Lambda::Function").items() if k.startswith("PromoterFunction")
    ]
    assert function["Properties"]["Environment"]["Variables"][settings.REQUEST_SOURCE_ENV] == "acme.ci"


@pytest.mark.parametrize("detail_type", settings.RESULT_DETAIL_TYPES)
def test_result_events_never_match_the_request_rule(synthesized, detail_type):
    matcher = EventPattern.load(json.dumps(_request_rule_pattern(synthesized.template_dict)))
    result = _event(settings.DEFAULT_REQUEST_EVENT_SOURCE, detail_type, {"outcome": "promoted"})
    request = _event(settings.DEFAULT_REQUEST_EVENT_SOURCE, settings.REQUEST_DETAIL_TYPE, {})
    assert not matcher.matches_event(result)
    assert matcher.matches_event(request)


def test_the_function_may_put_events_on_the_promotion_bus_only(synthesized):
    (put,) = [s for s in _policy_statements(synthesized.template_dict) if "events:PutEvents" in _actions(s)]
    assert _actions(put) == ["events:PutEvents"]
    assert put["Resource"]["Fn::GetAtt"][0].startswith("PromoterPromotionBus")


def test_by_default_the_bus_takes_requests_only_from_the_stack_account(synthesized):
    statements = _bus_statements(synthesized.template_dict)
    assert set(statements) == {"OnlyTrustedPrincipalsRequest", "OnlyThePromoterPublishesResults"}
    deny = statements["OnlyTrustedPrincipalsRequest"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", {"AWS": "*"}, "events:PutEvents")
    assert deny["Condition"]["StringEquals"] == {"events:detail-type": settings.REQUEST_DETAIL_TYPE}
    (pattern,) = deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert {"Ref": "AWS::AccountId"} in pattern["Fn::Join"][1]


def test_only_the_function_publishes_results(synthesized):
    deny = _bus_statements(synthesized.template_dict)["OnlyThePromoterPublishesResults"]
    assert deny["Condition"]["StringEquals"] == {"events:detail-type": list(settings.RESULT_DETAIL_TYPES)}
    promoter, reconciliation = deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    assert promoter["Fn::GetAtt"][0].startswith("PromoterFunctionRole")
    assert reconciliation["Fn::GetAtt"][0].startswith("PromoterReconciliationRole")


def test_trusted_principals_of_another_account_may_request_and_nobody_else(gated):
    statements = _bus_statements(gated)
    allow = statements["TrustedPrincipalsMayRequest"]
    assert allow["Effect"] == "Allow"
    assert OTHER_ACCOUNT in json.dumps(allow["Principal"])
    assert allow["Condition"]["StringEquals"] == {
        "events:detail-type": settings.REQUEST_DETAIL_TYPE,
        "events:source": "acme.ci",
    }
    deny = statements["OnlyTrustedPrincipalsRequest"]
    (pattern,) = deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert OTHER_ACCOUNT in json.dumps(pattern) and "AWS::AccountId" not in json.dumps(pattern)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("trusted_principals", ("not-an-account",), "12-digit account ids or IAM principal ARNs"),
        ("request_source", "aws.ecr", "reserved"),
        ("gate_sweep_minutes", 0, "between 1 and 60"),
    ],
)
def test_bad_release_props_are_refused(test_config, field, value, message):
    with pytest.raises(ValueError, match=message):
        ImagePromoterProps(config=test_config, **{field: value})


def test_trusted_principals_cannot_govern_a_bus_passed_in(test_config):
    app = cdk.App()
    stack = cdk.Stack(app, "Other")
    bus = events.EventBus(stack, "Theirs")
    with pytest.raises(ValueError, match="trusted_principals and rules with requesters apply to the bus"):
        PromoterStack(app, "Release", config=test_config, event_bus=bus, trusted_principals=(OTHER_ACCOUNT,))


# --- scan gates -------------------------------------------------------------------------------


def test_scan_findings_are_read_only_on_the_sources_of_gated_rules(gated, synthesized):
    (scan,) = [s for s in _policy_statements(gated) if "ecr:DescribeImageScanFindings" in _actions(s)]
    assert _actions(scan) == ["ecr:DescribeImageScanFindings"]
    assert "repository/team/*" in json.dumps(scan["Resource"])
    assert len(scan["Resource"]) == 1 if isinstance(scan["Resource"], list) else True
    ungated = [
        s
        for s in _policy_statements(synthesized.template_dict)
        if "ecr:DescribeImageScanFindings" in _actions(s)
    ]
    assert ungated == []


def test_gated_rules_bring_scan_rules_and_a_sweep_into_the_queue(gated, synthesized):
    # Only this account's scans: the patterns carry the stack's account, as the template writes it.
    account = {"Ref": "AWS::AccountId"}
    rules = [r["Properties"] for r in _of_type(gated, "AWS::Events::Rule").values()]
    patterns = [r.get("EventPattern") for r in rules]
    assert basic_scan_event_pattern(["team/*"], account) in patterns
    assert inspector_scan_event_pattern(["team/*"], account) in patterns
    assert "rate(10 minutes)" in [r.get("ScheduleExpression") for r in rules]
    for rule in rules:
        if rule.get("EventPattern") in (
            basic_scan_event_pattern(["team/*"], account),
            inspector_scan_event_pattern(["team/*"], account),
        ):
            assert rule["Targets"][0]["Arn"]["Fn::GetAtt"][0].startswith("PromoterQueue")
    ungated = [
        r["Properties"].get("EventPattern", {})
        for r in _of_type(synthesized.template_dict, "AWS::Events::Rule").values()
    ]
    assert not [p for p in ungated if "ECR Image Scan" in json.dumps(p) or "Inspector2" in json.dumps(p)]


def test_scan_patterns_match_the_ecr_and_inspector_samples(load_event):
    basic = EventPattern.load(json.dumps(basic_scan_event_pattern(["my-repository-name"])))
    inspector = EventPattern.load(json.dumps(inspector_scan_event_pattern(["amazon/*"])))
    assert basic.matches_event(load_event("ecr-image-scan.json"))
    assert inspector.matches_event(load_event("inspector2-scan.json"))
    assert not EventPattern.load(json.dumps(inspector_scan_event_pattern(["other/*"]))).matches_event(
        load_event("inspector2-scan.json")
    )
    assert not basic.matches_event(load_event("ecr-push.json"))


def test_the_gates_table_has_a_ttl_and_exactly_the_calls_promoter_gates_makes(synthesized):
    template = synthesized.template_dict
    (table_id,) = [
        k for k in _of_type(template, "AWS::DynamoDB::Table") if k.startswith("PromoterGatesTable")
    ]
    table = template["Resources"][table_id]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    grants = [
        s
        for s in _policy_statements(template)
        if any(
            isinstance(r, dict) and r.get("Fn::GetAtt", [""])[0] == table_id for r in _as_list(s["Resource"])
        )
    ]
    assert [sorted(_actions(s)) for s in grants] == [sorted(GATES_TABLE_ACTIONS)]
    (function,) = [
        f for k, f in _of_type(template, "AWS::Lambda::Function").items() if k.startswith("PromoterFunction")
    ]
    assert function["Properties"]["Environment"]["Variables"][settings.GATES_TABLE_ENV] == {"Ref": table_id}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- requesters: who may request which rule, decided by the bus policy (issue 10, point 2) ---------

CI_ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/release-*"
RESTRICTED_RULE = {
    "name": "to-prod",
    "trigger": "request",
    "source": {"repository": "app-staging", "tags": ["v*"]},
    "targets": [{"repository": "app-prod-eu"}],
    "requesters": [CI_ROLE, "123456789012"],
}


@dataclass(frozen=True)
class _Synthesized:
    template_dict: dict[str, Any]
    error: str | None  # cdk-nag's validation failure, if any


@pytest.fixture(scope="module")
def restricted(test_config, tmp_path_factory) -> _Synthesized:
    """Synthesized as app.py does it (the AwsSolutions checks included)."""
    data = test_config.to_dict()
    data["rules"].append(RESTRICTED_RULE)
    outdir = tmp_path_factory.mktemp("restricted")
    app = cdk.App(outdir=str(outdir))
    build_app(app, parse_config(data))
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # jsii surfaces cdk-nag's ValidationFailed as RuntimeError
        error = str(exc)
    return _Synthesized(json.loads((outdir / f"{STACK_NAME}.template.json").read_text()), error)


def test_a_rule_with_requesters_is_requested_on_its_own_source_which_only_they_may_post(restricted):
    source = settings.rule_request_source("to-prod")
    statements = _bus_statements(restricted.template_dict)
    deny = statements["OnlyRequestersOfRequestRule0"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", {"AWS": "*"}, "events:PutEvents")
    assert deny["Condition"]["StringEquals"] == {
        "events:detail-type": settings.REQUEST_DETAIL_TYPE,
        "events:source": source,
    }
    patterns = deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert patterns[0] == CI_ROLE
    assert json.dumps(patterns[1]).endswith(':iam::123456789012:*"]]}')
    allow = statements["RequestersOfRequestRule0MayRequest"]
    assert allow["Effect"] == "Allow" and allow["Condition"]["StringEquals"]["events:source"] == source
    assert OTHER_ACCOUNT in json.dumps(allow["Principal"]) and "123456789012" in json.dumps(
        allow["Principal"]
    )
    # The trusted principals (here the stack's account) keep the shared source, not this one.
    shared = statements["OnlyTrustedPrincipalsRequest"]
    assert shared["Condition"]["StringNotEquals"] == {"events:source": [source]}


def test_the_request_rule_routes_the_rules_own_source_and_no_other(restricted):
    matcher = EventPattern.load(json.dumps(_request_rule_pattern(restricted.template_dict)))
    for source, routed in (
        (settings.rule_request_source("to-prod"), True),
        (settings.DEFAULT_REQUEST_EVENT_SOURCE, True),
        (settings.rule_request_source("staging-to-prod"), False),  # names no requesters: shared source
        (settings.rule_request_source("unknown"), False),
    ):
        assert matcher.matches_event(_event(source, settings.REQUEST_DETAIL_TYPE, {})) == routed, source


def test_requesters_keep_cdk_nag_and_cfn_lint_clean(restricted):
    from cfnlint.api import lint

    assert restricted.error is None
    matches = lint(json.dumps(restricted.template_dict))
    assert matches == [], "\n".join(f"{m.rule.id} {m.message}" for m in matches)


def test_requesters_cannot_govern_a_bus_passed_in(test_config):
    data = test_config.to_dict()
    data["rules"].append(RESTRICTED_RULE)
    app = cdk.App()
    bus = events.EventBus(cdk.Stack(app, "Other"), "Theirs")
    with pytest.raises(ValueError, match="rules with requesters apply to the bus the construct creates"):
        PromoterStack(app, "Release", config=parse_config(data), event_bus=bus)
