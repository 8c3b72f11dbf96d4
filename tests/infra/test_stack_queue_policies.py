"""Who may hand the promoter work, decided by the synthesized policies (issue 18, point 1).

Each queue policy and the bus policy of the template is evaluated for a list of principals with
the local AWS's evaluator (local_aws.policy, IAM's rules): only EventBridge acting for the stack's
own rules (and the named redrive principals, on the queue) may send to the queue; nobody to the
processing dead-letter queue; only the rules to the delivery dead-letter queue; only a rule's
requesters may post its requests on the bus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from infra.app import REDRIVE_PRINCIPALS_CONTEXT_KEY, build_app
from infra.bus_policies import request_statements
from infra.props import ImagePromoterProps
from infra.stack import STACK_NAME
from local_aws import policy
from local_aws.policy import Principal
from local_aws.principals import eventbridge, parse_principal, root_of
from promoter import settings
from promoter.model.config import parse_config

ACCOUNT = "123456789012"
OTHER = "210987654321"
REGION = "us-east-1"
REDRIVER = f"arn:aws:iam::{ACCOUNT}:role/operations"
REQUESTER = f"arn:aws:iam::{OTHER}:role/release-ci"
# The rule of TEST_CONFIG's kind, with requesters (one in another account).
REQUESTED_RULE = {
    "name": "to-prod",
    "trigger": "request",
    "source": {"repository": "app-staging", "tags": ["v*"]},
    "targets": [{"repository": "app-prod-eu"}],
    "requesters": [REQUESTER],
}
TLS = {"aws:SecureTransport": "true"}  # every request below comes over TLS: the TLS deny is not the test


@pytest.fixture(scope="module")
def template(test_config, tmp_path_factory) -> dict[str, Any]:
    data = test_config.to_dict()
    data["rules"].append(REQUESTED_RULE)
    outdir: Path = tmp_path_factory.mktemp("queue-policies")
    app = cdk.App(outdir=str(outdir), context={REDRIVE_PRINCIPALS_CONTEXT_KEY: REDRIVER})
    build_app(app, parse_config(data))
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag's findings: the other tests' concern, not this one's
        pytest.fail(f"the stack does not synthesize cleanly: {exc}")
    return json.loads((outdir / f"{STACK_NAME}.template.json").read_text())


class Resolver:
    """CloudFormation's intrinsics with made-up but well-formed values for one account."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.resources = template["Resources"]

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        properties = self.resources[logical_id].get("Properties", {})
        if kind == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{logical_id}"
        if kind == "AWS::Events::Rule":
            return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{logical_id}"
        if kind == "AWS::Events::EventBus":
            return f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{logical_id}"
        if kind == "AWS::IAM::Role":
            return f"arn:aws:iam::{ACCOUNT}:role/{self(properties.get('RoleName', logical_id))}"
        raise AssertionError(f"no ARN made for {kind}")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return {"AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::Region": REGION}.get(
                value["Ref"], value["Ref"]
            )
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            assert attribute == "Arn", value
            return self.arn(logical_id)
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(self(p)) for p in parts)
        return {k: self(v) for k, v in value.items()}


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _queue_id(template: dict[str, Any], part: str) -> str:
    (found,) = [k for k in _of_type(template, "AWS::SQS::Queue") if part in k]
    return found


def _queue_policy(template: dict[str, Any], queue_id: str) -> dict[str, Any]:
    resolve = Resolver(template)
    (document,) = [
        p["Properties"]["PolicyDocument"]
        for p in _of_type(template, "AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in p["Properties"]["Queues"]
    ]
    return resolve(document)


def _rule_arns(template: dict[str, Any], into_queue: bool = True) -> list[str]:
    """The ARNs of the rules whose target is the promoter's queue (or, `into_queue=False`, of the
    other rules: the reconciliation's schedule, whose target is its own function)."""
    resolve = Resolver(template)
    queue = {"Fn::GetAtt": [_queue_id(template, "PromoterQueue"), "Arn"]}
    return [
        resolve.arn(k)
        for k, rule in _of_type(template, "AWS::Events::Rule").items()
        if any(t["Arn"] == queue for t in rule["Properties"]["Targets"]) == into_queue
    ]


def _may_send(template: dict[str, Any], queue_id: str, principal: Principal, context: dict[str, str]) -> bool:
    queue_arn = Resolver(template).arn(queue_id)
    return policy.allows(
        _queue_policy(template, queue_id),
        principal,
        "sqs:SendMessage",
        queue_arn,
        ACCOUNT,
        {**TLS, **context},
    )


def _account_principals() -> list[Principal]:
    """Everyone who is not EventBridge: this account's administrator, role and user, another
    account's role, and another AWS service."""
    return [
        root_of(ACCOUNT),
        parse_principal(f"arn:aws:iam::{ACCOUNT}:role/developer"),
        parse_principal(f"arn:aws:iam::{ACCOUNT}:user/alice"),
        parse_principal(REQUESTER),
        Principal.of_service("sns.amazonaws.com"),
    ]


FOREIGN_RULE = f"arn:aws:events:{REGION}:{OTHER}:rule/forwarder"


def test_only_the_stacks_rules_and_the_named_redrivers_may_send_to_the_queue(template):
    queue = _queue_id(template, "PromoterQueue")
    rules = _rule_arns(template)
    assert len(rules) >= 2
    for rule in rules:
        assert _may_send(
            template, queue, eventbridge(), {"aws:SourceArn": rule, "aws:SourceAccount": ACCOUNT}
        )
    assert not _may_send(
        template, queue, eventbridge(), {"aws:SourceArn": FOREIGN_RULE, "aws:SourceAccount": OTHER}
    )
    (schedule,) = _rule_arns(template, into_queue=False)  # a rule of the stack, not one into the queue
    assert not _may_send(template, queue, eventbridge(), {"aws:SourceArn": schedule})
    for principal in _account_principals():
        assert not _may_send(template, queue, principal, {}), principal
    assert _may_send(template, queue, parse_principal(REDRIVER), {})


def test_nobody_may_send_to_the_processing_dead_letter_queue(template):
    dlq = _queue_id(template, "PromoterDeadLetterQueue")
    for rule in _rule_arns(template):
        assert not _may_send(template, dlq, eventbridge(), {"aws:SourceArn": rule})
    for principal in [*_account_principals(), parse_principal(REDRIVER)]:
        assert not _may_send(template, dlq, principal, {}), principal


def test_only_the_stacks_rules_may_send_to_the_delivery_dead_letter_queue(template):
    dlq = _queue_id(template, "DeliveryDeadLetterQueue")
    for rule in _rule_arns(template):
        assert _may_send(template, dlq, eventbridge(), {"aws:SourceArn": rule})
    assert not _may_send(template, dlq, eventbridge(), {"aws:SourceArn": FOREIGN_RULE})
    for principal in [*_account_principals(), parse_principal(REDRIVER)]:
        assert not _may_send(template, dlq, principal, {}), principal


def test_the_queue_denies_only_sending_so_the_function_and_operators_still_read(template):
    queue = _queue_id(template, "PromoterQueue")
    document = _queue_policy(template, queue)
    arn = Resolver(template).arn(queue)
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert policy.allows(document, root_of(ACCOUNT), action, arn, ACCOUNT, TLS)


def test_only_a_rules_requesters_may_post_its_requests_on_the_bus(template):
    resolve = Resolver(template)
    (bus_id,) = _of_type(template, "AWS::Events::EventBus")
    bus_arn = resolve.arn(bus_id)
    document = {
        "Version": "2012-10-17",
        "Statement": [
            resolve(p["Properties"]["Statement"])
            for p in _of_type(template, "AWS::Events::EventBusPolicy").values()
        ],
    }

    def may_post(principal: Principal, source: str, detail_type: str = settings.REQUEST_DETAIL_TYPE) -> bool:
        keys = {"events:source": source, "events:detail-type": detail_type}
        return policy.allows(document, principal, "events:PutEvents", bus_arn, ACCOUNT, keys)

    rule_source = settings.rule_request_source("to-prod")
    shared_source = settings.DEFAULT_REQUEST_EVENT_SOURCE
    requester = parse_principal(REQUESTER)
    assert may_post(requester, rule_source)
    assert not may_post(parse_principal(f"arn:aws:iam::{OTHER}:role/intruder"), rule_source)
    for principal in (root_of(ACCOUNT), parse_principal(f"arn:aws:iam::{ACCOUNT}:role/developer")):
        assert not may_post(principal, rule_source), principal
        assert may_post(principal, shared_source), principal  # the stack's account is trusted by default
    assert not may_post(requester, shared_source)  # another account needs the bus's consent
    promoter_role = resolve.arn(
        next(
            k
            for k, r in _of_type(template, "AWS::IAM::Role").items()
            if "FunctionRole" in k and "Reconcil" not in k
        )
    )
    assert may_post(parse_principal(promoter_role), shared_source, settings.PROMOTED_DETAIL_TYPE)
    assert not may_post(root_of(ACCOUNT), shared_source, settings.PROMOTED_DETAIL_TYPE)


def test_redrive_principals_are_exact_role_or_user_arns(test_config):
    for bad in (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:role/*", f"arn:aws:iam::{ACCOUNT}:root", "ops"):
        with pytest.raises(ValueError, match="redrive_principals takes exact IAM role or user ARNs"):
            ImagePromoterProps(config=test_config, redrive_principals=(bad,))


def _normalized(value: Any) -> Any:
    """A policy element as IAM reads it: a one-item list is its item; lists compare as sets."""
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        items = sorted((_normalized(v) for v in value), key=json.dumps)
        return items[0] if len(items) == 1 else items
    return value


def test_the_local_aws_puts_the_stacks_request_statements_on_its_bus(template, test_config):
    """promoter local --config writes infra.bus_policies' statements (no CDK there): they are the
    synthesized ones, so trying `requesters:` locally tries what the stack deploys."""
    resolve = Resolver(template)
    (bus_id,) = _of_type(template, "AWS::Events::EventBus")
    synthesized = {
        p["Properties"]["StatementId"].removeprefix("cdk-"): _normalized(
            resolve(p["Properties"]["Statement"])
        )
        for p in _of_type(template, "AWS::Events::EventBusPolicy").values()
    }
    local = {
        s.pop("Sid"): _normalized(s)
        for s in request_statements(resolve.arn(bus_id), ACCOUNT, [("to-prod", (REQUESTER,))])
    }
    assert set(local) == {
        "OnlyTrustedPrincipalsRequest",
        "OnlyRequestersOfRequestRule0",
        "RequestersOfRequestRule0MayRequest",
    }
    for sid, statement in local.items():
        assert statement == {k: v for k, v in synthesized[sid].items() if k != "Sid"}, sid
