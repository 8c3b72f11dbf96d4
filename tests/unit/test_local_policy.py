"""The local AWS's resource-policy evaluator (local_aws.policy) and its principals: IAM's semantics
for explicit Deny, Allow, principals and the condition operators the stack writes."""

from __future__ import annotations

import pytest

from local_aws import policy
from local_aws.policy import Decision, PolicyError, Principal
from local_aws.principals import (
    credentials_for,
    eventbridge,
    parse_principal,
    principal_of,
    principal_of_key,
    root_of,
)

HOME = "123456789012"
OTHER = "210987654321"
QUEUE = f"arn:aws:sqs:us-east-1:{HOME}:q"
RULE = f"arn:aws:events:us-east-1:{HOME}:rule/r"
CI = parse_principal(f"arn:aws:iam::{OTHER}:role/ci")
LOCAL_CI = parse_principal(f"arn:aws:iam::{HOME}:role/ci")


def _doc(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _deny(**fields) -> dict:
    return {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "sqs:SendMessage",
        "Resource": QUEUE,
        **fields,
    }


def _allow(**fields) -> dict:
    return {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE, **fields}


def test_an_explicit_deny_wins_over_an_allow_in_the_same_document():
    doc = _doc(_allow(Principal={"AWS": OTHER}), _deny())
    assert policy.evaluate(doc, CI, "sqs:SendMessage", QUEUE) is Decision.DENY


def test_no_statement_is_no_match_and_only_the_resource_account_may_then_act():
    assert policy.evaluate(None, CI, "sqs:SendMessage", QUEUE) is Decision.NO_MATCH
    assert policy.allows(None, LOCAL_CI, "sqs:SendMessage", QUEUE, HOME)
    assert not policy.allows(None, CI, "sqs:SendMessage", QUEUE, HOME)
    assert not policy.allows(None, eventbridge(), "sqs:SendMessage", QUEUE, HOME)


def test_another_account_needs_an_allow_naming_it_its_root_or_its_role():
    for named in (OTHER, f"arn:aws:iam::{OTHER}:root", f"arn:aws:iam::{OTHER}:role/ci"):
        assert policy.allows(_doc(_allow(Principal={"AWS": named})), CI, "sqs:SendMessage", QUEUE, HOME)
    other_role = _doc(_allow(Principal={"AWS": f"arn:aws:iam::{OTHER}:role/deployer"}))
    assert not policy.allows(other_role, CI, "sqs:SendMessage", QUEUE, HOME)


def test_the_action_and_resource_must_match_with_iam_wildcards():
    doc = _doc(
        _deny(Action=["ecr:Put*", "ecr:?atchDeleteImage"], Resource="arn:aws:ecr:*:*:repository/prod/*")
    )
    prod = "arn:aws:ecr:us-east-1:123456789012:repository/prod/api"
    assert policy.evaluate(doc, CI, "ecr:PutImage", prod) is Decision.DENY
    assert policy.evaluate(doc, CI, "ECR:batchdeleteimage", prod) is Decision.DENY  # actions ignore case
    assert policy.evaluate(doc, CI, "ecr:GetDownloadUrlForLayer", prod) is Decision.NO_MATCH
    assert policy.evaluate(doc, CI, "ecr:PutImage", prod.replace("prod/", "dev/")) is Decision.NO_MATCH


def test_a_service_principal_is_matched_by_service_not_by_account():
    doc = _doc(_allow(Principal={"Service": "events.amazonaws.com"}))
    assert policy.evaluate(doc, eventbridge(), "sqs:SendMessage", QUEUE) is Decision.ALLOW
    assert policy.evaluate(doc, LOCAL_CI, "sqs:SendMessage", QUEUE) is Decision.NO_MATCH
    # {"AWS": "*"} is everyone, AWS services included (as "Principal": "*").
    assert policy.evaluate(_doc(_deny()), eventbridge(), "sqs:SendMessage", QUEUE) is Decision.DENY


def test_a_negated_operator_holds_when_the_key_is_absent_and_a_positive_one_does_not():
    not_our_rule = _doc(_deny(Condition={"ArnNotEquals": {"aws:SourceArn": RULE}}))
    assert policy.evaluate(not_our_rule, root_of(HOME), "sqs:SendMessage", QUEUE) is Decision.DENY
    assert policy.evaluate(
        not_our_rule, eventbridge(), "sqs:SendMessage", QUEUE, {"aws:SourceArn": RULE}
    ) is (Decision.NO_MATCH)
    other_rule = {"aws:SourceArn": RULE + "-other"}
    assert policy.evaluate(not_our_rule, eventbridge(), "sqs:SendMessage", QUEUE, other_rule) is Decision.DENY
    only_with_source = _doc(_deny(Condition={"StringEquals": {"aws:SourceAccount": OTHER}}))
    assert policy.evaluate(only_with_source, root_of(HOME), "sqs:SendMessage", QUEUE) is Decision.NO_MATCH
    # ...IfExists: an absent key makes even a positive operator hold.
    if_exists = _doc(_deny(Condition={"StringEqualsIfExists": {"aws:SourceAccount": OTHER}}))
    assert policy.evaluate(if_exists, root_of(HOME), "sqs:SendMessage", QUEUE) is Decision.DENY
    assert policy.evaluate(
        if_exists, eventbridge(), "sqs:SendMessage", QUEUE, {"aws:SourceAccount": HOME}
    ) is (Decision.NO_MATCH)


def test_principal_arn_conditions_see_the_role_of_a_session_and_services_have_none():
    doc = _doc(_deny(Condition={"ArnNotLike": {"aws:PrincipalArn": [f"arn:aws:iam::{OTHER}:role/c*"]}}))
    assert policy.evaluate(doc, CI, "sqs:SendMessage", QUEUE) is Decision.NO_MATCH
    assert policy.evaluate(doc, LOCAL_CI, "sqs:SendMessage", QUEUE) is Decision.DENY
    assert policy.evaluate(doc, eventbridge(), "sqs:SendMessage", QUEUE) is Decision.DENY


def test_conditions_are_anded_across_keys_and_ored_across_values():
    doc = _doc(
        _deny(
            Action="events:PutEvents",
            Condition={
                "StringEquals": {"events:detail-type": "Promotion Requested", "events:source": ["a", "b"]},
                "StringNotEquals": {"aws:PrincipalAccount": [HOME]},
            },
        )
    )

    def decide(source: str, principal: Principal = CI) -> Decision:
        keys = {"events:detail-type": "Promotion Requested", "events:source": source}
        return policy.evaluate(doc, principal, "events:PutEvents", QUEUE, keys)

    assert decide("b") is Decision.DENY
    assert decide("c") is Decision.NO_MATCH
    assert decide("a", LOCAL_CI) is Decision.NO_MATCH


def test_string_like_and_set_qualifiers():
    like = _doc(_deny(Condition={"StringNotLike": {"aws:userid": ["AROA*:ci-*", "AIDA?"]}}))
    assert policy.evaluate(
        like, Principal(arn="x", account=HOME, user_id="AROA1:ci-7"), "sqs:SendMessage", QUEUE
    ) is (Decision.NO_MATCH)
    assert policy.evaluate(
        like, Principal(arn="x", account=HOME, user_id="AIDA12"), "sqs:SendMessage", QUEUE
    ) is (Decision.DENY)
    any_value = _doc(_deny(Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["secret"]}}))
    assert (
        policy.evaluate(any_value, CI, "sqs:SendMessage", QUEUE, {"aws:TagKeys": ["a", "secret"]})
        is Decision.DENY
    )
    assert policy.evaluate(any_value, CI, "sqs:SendMessage", QUEUE) is Decision.NO_MATCH
    all_values = _doc(_deny(Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}))
    assert (
        policy.evaluate(all_values, CI, "sqs:SendMessage", QUEUE, {"aws:TagKeys": ["a", "b"]})
        is Decision.NO_MATCH
    )
    assert policy.evaluate(all_values, CI, "sqs:SendMessage", QUEUE) is Decision.DENY  # vacuously true


def test_bool_and_null():
    tls = _doc(_deny(Action="sqs:*", Condition={"Bool": {"aws:SecureTransport": "false"}}))
    assert (
        policy.evaluate(tls, CI, "sqs:SendMessage", QUEUE, {"aws:SecureTransport": "false"}) is Decision.DENY
    )
    assert (
        policy.evaluate(tls, CI, "sqs:SendMessage", QUEUE, {"aws:SecureTransport": "true"})
        is Decision.NO_MATCH
    )
    no_source = _doc(_deny(Condition={"Null": {"aws:SourceArn": "true"}}))
    assert policy.evaluate(no_source, CI, "sqs:SendMessage", QUEUE) is Decision.DENY
    assert policy.evaluate(no_source, eventbridge(), "sqs:SendMessage", QUEUE, {"aws:SourceArn": RULE}) is (
        Decision.NO_MATCH
    )


def test_not_principal_and_not_action():
    doc = _doc(
        {
            "Effect": "Deny",
            "NotPrincipal": {"AWS": f"arn:aws:iam::{HOME}:role/ci"},
            "NotAction": "sqs:Receive*",
        }
    )
    assert policy.evaluate(doc, LOCAL_CI, "sqs:SendMessage", QUEUE) is Decision.NO_MATCH
    assert policy.evaluate(doc, CI, "sqs:SendMessage", QUEUE) is Decision.DENY
    assert policy.evaluate(doc, CI, "sqs:ReceiveMessage", QUEUE) is Decision.NO_MATCH


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        {"Statement": "x"},
        _doc(_deny(Condition={"NumericLessThan": {"aws:EpochTime": "1"}})),
        _doc(_deny(Condition={"ForSomeValues:StringEquals": {"k": "v"}})),
        _doc(_deny(Effect="Maybe")),
    ],
)
def test_a_policy_it_cannot_decide_is_an_error_never_a_silent_allow(document):
    with pytest.raises(PolicyError):
        policy.evaluate(document, CI, "sqs:SendMessage", QUEUE)


def test_credentials_are_deterministic_and_name_their_principal():
    first = credentials_for(f"arn:aws:iam::{OTHER}:role/ci")
    assert first == credentials_for(f"arn:aws:iam::{OTHER}:role/ci")
    assert principal_of_key(first.access_key_id) == first.principal == CI
    assert CI.account == OTHER and CI.user_id.startswith("AROA") and CI.user_id.endswith(":local")
    assert CI.session_arn == f"arn:aws:sts::{OTHER}:assumed-role/ci/local"
    user = parse_principal(f"arn:aws:iam::{OTHER}:user/alice")
    assert user.user_id.startswith("AIDA") and ":" not in user.user_id
    assert any(OTHER in line and "principal" in line for line in first.exports())


def test_unknown_credentials_are_the_account_administrator():
    assert principal_of("test", HOME) == root_of(HOME) == parse_principal(f"arn:aws:iam::{HOME}:root")
    assert principal_of(OTHER, HOME) == root_of(OTHER)
    assert root_of(HOME).user_id == HOME  # SQS's SenderId of the root is the account id


@pytest.mark.parametrize(
    "arn",
    [
        "",
        "ci",
        "arn:aws:iam::1234:role/ci",
        "arn:aws:sts::210987654321:assumed-role/ci/s",
        "arn:aws:iam::210987654321:group/g",
    ],
)
def test_a_bad_principal_arn_is_refused(arn):
    with pytest.raises(ValueError, match="not an IAM role, user or root ARN"):
        parse_principal(arn)
