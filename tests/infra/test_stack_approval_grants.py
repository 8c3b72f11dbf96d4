"""What the promoter's roles may do for approval gates (issue 20), derived from the rules: the function
that announces approval waits (the push/request handler, which also runs the sweep) gets UpdateItem
on the gates table (ApprovalWaits' conditional claim and supersede), sns:Publish on exactly the
topics the gates notify and, for `notify: alarm-topic`, on the stack's alarm topic (with its key's
two actions) and ALARM_TOPIC_ARN in its environment. The reconciliation holds no waits and gets
none of it; nor does a stack without an approval gate. cdk-nag and cfn-lint stay clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from cfnlint.api import lint

from infra.app import ALARM_EMAIL_CONTEXT_KEY, ALARM_TOPIC_ARN_CONTEXT_KEY, build_app
from infra.stack import STACK_NAME
from promoter.gates.approval import ALARM_TOPIC_ENV
from promoter.model.config import parse_config
from tests.infra.conftest import RECONCILIATION_ID, TEST_CONFIG, cdk_json_context

APPROVER = "arn:aws:iam::111122223333:user/alice"
RELEASES_TOPIC = "arn:aws:sns:us-east-1:111122223333:releases"
IMPORTED_ALARM_TOPIC = "arn:aws:sns:eu-west-1:111122223333:ops-alarms"
PROMOTER_ROLE = "PromoterFunctionRole"
RECONCILE_ROLE = f"Promoter{RECONCILIATION_ID}Role"


def _config(*notifies: str | None) -> dict[str, Any]:
    """TEST_CONFIG, its request rule (app-staging -> app-prod) approval-gated once per `notifies`
    entry: the first on the rule itself, each further one on a copy of it under another name and
    target tag (same repositories: the ECR grants stay those of TEST_CONFIG)."""
    data: dict[str, Any] = json.loads(json.dumps(TEST_CONFIG))
    request_rule = data["rules"][3]
    for index, notify in enumerate(notifies):
        rule = request_rule
        if index:
            rule = json.loads(json.dumps(request_rule)) | {"name": f"hotfix-{index}"}
            rule["targets"][0]["tags"] = [f"hotfix{index}-{{tag}}"]
        approval: dict[str, Any] = {"approvers": [APPROVER], "min": 1}
        if notify is not None:
            approval["notify"] = notify
        rule["require"] = {"approval": approval}
        if index:
            data["rules"].append(rule)
    return data


def _synth(data: dict[str, Any], context: dict[str, str], outdir: Path) -> tuple[dict[str, Any], str | None]:
    """Synth as app.py does (cdk.json's flags, cdk-nag) with these `-c` values: (template, error)."""
    app = cdk.App(outdir=str(outdir), context={**cdk_json_context(), **context})
    build_app(app, parse_config(data))
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag's validation failure
        error = str(exc)
    return json.loads((outdir / f"{STACK_NAME}.template.json").read_text()), error


EMAIL = {ALARM_EMAIL_CONTEXT_KEY: "ops@example.com"}


@pytest.fixture(scope="module")
def without_approval(tmp_path_factory) -> dict[str, Any]:
    template, error = _synth(_config(), EMAIL, tmp_path_factory.mktemp("no-approval"))
    assert error is None, error
    return template


@pytest.fixture(scope="module")
def approving(tmp_path_factory) -> tuple[dict[str, Any], str | None, Path]:
    """One approval rule telling the stack's own alarm topic, one a named topic, one nobody."""
    outdir = tmp_path_factory.mktemp("approval-grants")
    template, error = _synth(_config("alarm-topic", RELEASES_TOPIC, None), EMAIL, outdir)
    return template, error, outdir


def _logical_id(template: dict[str, Any], cfn_type: str, part: str) -> str:
    (found,) = [k for k, v in template["Resources"].items() if v["Type"] == cfn_type and part in k]
    return found


def _allowed(template: dict[str, Any], role_part: str) -> set[tuple[str, str]]:
    """(action, resource as JSON) of every Allow in the identity policies of the role `role_part`."""
    found = set()
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        roles = [r["Ref"] for r in resource["Properties"].get("Roles", [])]
        if not any(role.startswith(role_part) for role in roles):
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            actions, resources = (
                value if isinstance(value, list) else [value]
                for value in (statement["Action"], statement["Resource"])
            )
            found |= {(a, json.dumps(r, sort_keys=True)) for a in actions for r in resources}
    return found


def _environment(template: dict[str, Any], function_part: str) -> dict[str, Any]:
    return template["Resources"][_logical_id(template, "AWS::Lambda::Function", function_part)]["Properties"][
        "Environment"
    ]["Variables"]


def _arn(logical_id: str) -> str:
    return json.dumps({"Fn::GetAtt": [logical_id, "Arn"]}, sort_keys=True)


def test_the_promoter_role_gets_exactly_the_approval_grants_the_rules_need(approving, without_approval):
    template, _, _ = approving
    table = _logical_id(template, "AWS::DynamoDB::Table", "GatesTable")
    alarm_topic = _logical_id(template, "AWS::SNS::Topic", "AlarmTopic")
    alarm_key = _logical_id(template, "AWS::KMS::Key", "AlarmTopicKey")

    added = _allowed(template, PROMOTER_ROLE) - _allowed(without_approval, PROMOTER_ROLE)

    assert added == {
        ("dynamodb:UpdateItem", _arn(table)),
        ("sns:Publish", json.dumps(RELEASES_TOPIC)),
        ("sns:Publish", json.dumps({"Ref": alarm_topic}, sort_keys=True)),
        ("kms:Decrypt", _arn(alarm_key)),
        ("kms:GenerateDataKey", _arn(alarm_key)),
    }
    assert _allowed(without_approval, PROMOTER_ROLE) - _allowed(template, PROMOTER_ROLE) == set()


def test_without_an_approval_gate_the_promoter_may_neither_update_waits_nor_publish(without_approval):
    granted = {action for action, _ in _allowed(without_approval, PROMOTER_ROLE)}
    assert "dynamodb:UpdateItem" in granted  # the idempotency table's: on that table only
    table = _arn(_logical_id(without_approval, "AWS::DynamoDB::Table", "GatesTable"))
    assert ("dynamodb:UpdateItem", table) not in _allowed(without_approval, PROMOTER_ROLE)
    assert not any(action.startswith("sns:") for action in granted)
    assert ALARM_TOPIC_ENV not in _environment(without_approval, "PromoterFunction")


def test_the_reconciliation_holds_no_waits_and_gets_none_of_the_approval_grants(approving, without_approval):
    template, _, _ = approving
    added = _allowed(template, RECONCILE_ROLE) - _allowed(without_approval, RECONCILE_ROLE)
    assert added == set()
    assert ALARM_TOPIC_ENV not in _environment(template, f"Promoter{RECONCILIATION_ID}Function")


def test_the_function_is_told_the_alarm_topic_it_publishes_to(approving):
    template, _, _ = approving
    alarm_topic = _logical_id(template, "AWS::SNS::Topic", "AlarmTopic")
    assert _environment(template, "PromoterFunction")[ALARM_TOPIC_ENV] == {"Ref": alarm_topic}


def test_an_imported_alarm_topic_is_published_to_by_its_arn_and_no_key_is_granted(tmp_path):
    template, error = _synth(
        _config("alarm-topic"), {ALARM_TOPIC_ARN_CONTEXT_KEY: IMPORTED_ALARM_TOPIC}, tmp_path
    )
    assert error is None, error
    granted = _allowed(template, PROMOTER_ROLE)
    assert {r for a, r in granted if a == "sns:Publish"} == {json.dumps(IMPORTED_ALARM_TOPIC)}
    assert not any(action in ("kms:Decrypt", "kms:GenerateDataKey") for action, _ in granted)
    assert _environment(template, "PromoterFunction")[ALARM_TOPIC_ENV] == IMPORTED_ALARM_TOPIC


def test_notify_alarm_topic_without_an_alarm_topic_is_refused_naming_the_fix(tmp_path):
    app = cdk.App(outdir=str(tmp_path), context=cdk_json_context())
    with pytest.raises(ValueError, match="notify: alarm-topic, but the stack has no alarm topic"):
        build_app(app, parse_config(_config("alarm-topic")))


def test_the_stack_with_approval_grants_passes_cdk_nag_and_cfn_lint(approving):
    _, error, outdir = approving
    assert error is None, error
    report = json.loads((outdir / "validation-report.json").read_text())
    (plugin,) = report["pluginReports"]
    assert plugin["violations"] == [], json.dumps(plugin["violations"], indent=1)[:4000]
    matches = lint((outdir / f"{STACK_NAME}.template.json").read_text())
    assert matches == [], "\n".join(f"{m.rule.id} {m.message} at {m.path}" for m in matches)
