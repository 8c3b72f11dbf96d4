"""Approval gates, the pure part (issue 20): who is a person, who matches an approver entry, who
may decide a wait and why not (403 or 409), and when the quorum is there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from promoter.model.approvals import (
    CONFLICT,
    FORBIDDEN,
    REJECT,
    ApprovalGate,
    format_duration,
    may_decide,
    most_approvers,
    parse_duration,
    person_of,
    principal_matches,
    quorum_reached,
    refusal,
    rejection_of,
    requester_from,
    tally,
)

ACCOUNT = "111122223333"
SSO = f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Release_0123abcd/"
ALICE, BOB, CAROL = SSO + "alice@example.com", SSO + "bob@example.com", SSO + "carol@example.com"
NOW = 1_800_000_000.0


@dataclass(frozen=True)
class Wait:
    """Just what the checks read of a wait: its deadline and its record's approval attributes."""

    deadline: float = NOW + 3600
    data: dict[str, Any] = field(default_factory=dict)


def approved(*principals: str, **extra: Any) -> Wait:
    approvals = {p: {"at": f"2026-12-06T18:0{i}:00Z", "reason": f"ok {i}"} for i, p in enumerate(principals)}
    return Wait(data={"approvals": approvals, **extra})


SSO_GATE = ApprovalGate(approvers=(f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Release_*/*",), min=2)


@pytest.mark.parametrize(
    ("pattern", "arn", "matches"),
    [
        (SSO_GATE.approvers[0], ALICE, True),
        (SSO_GATE.approvers[0], ALICE.replace(ACCOUNT, "444455556666"), False),  # another account
        (SSO_GATE.approvers[0], ALICE.replace("Release", "release"), False),  # case-sensitive, as IAM
        (f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws:iam::{ACCOUNT}:user/alice", True),
        (f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws:iam::{ACCOUNT}:user/alice2", False),
        (f"arn:aws:iam::{ACCOUNT}:user/al?ce", f"arn:aws:iam::{ACCOUNT}:user/alace", True),
        (f"arn:aws:iam::{ACCOUNT}:user/al?ce", f"arn:aws:iam::{ACCOUNT}:user/alaace", False),
        # A role entry stands for every session of that role (its path is not in a session's ARN).
        (
            f"arn:aws:iam::{ACCOUNT}:role/ops/Release",
            f"arn:aws:sts::{ACCOUNT}:assumed-role/Release/dan",
            True,
        ),
        (f"arn:aws:iam::{ACCOUNT}:role/Release", f"arn:aws:sts::{ACCOUNT}:assumed-role/Releases/dan", False),
        # IAM's ArnLike: a `*` does not reach across the colon-separated parts.
        (f"arn:aws:iam::{ACCOUNT}:user/*", f"arn:aws:iam::{ACCOUNT}:user/a:b", True),
        ("arn:aws:iam::*:user/alice", f"arn:aws:sts::{ACCOUNT}:user/alice", False),
    ],
)
def test_principal_matches_like_iam_arnlike_and_a_role_stands_for_its_sessions(pattern, arn, matches):
    assert principal_matches(pattern, arn) is matches


def test_a_person_is_a_caller_arn_and_a_role_is_not_one():
    assert person_of(ALICE) == ALICE
    assert person_of(f"arn:aws:iam::{ACCOUNT}:user/alice") == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert person_of(f"arn:aws:iam::{ACCOUNT}:role/Release") is None
    assert person_of("alice@example.com") is None
    # A request names its requester as free text unless it names an ARN: unknown, never compared.
    assert requester_from("ci@build-host") == ""
    assert requester_from(ALICE) == ALICE


def test_only_exact_caller_arns_bound_how_many_people_can_approve():
    users = (f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws:iam::{ACCOUNT}:user/bob")
    assert most_approvers(users) == 2
    assert most_approvers((*users, f"arn:aws:iam::{ACCOUNT}:role/Release")) is None
    assert most_approvers((*users, f"arn:aws:iam::{ACCOUNT}:user/c*")) is None


def test_durations_read_and_write_back():
    assert [parse_duration(t) for t in ("30m", "24h", "7d", "0h", "1w", "24", " 1h")] == [
        1800,
        86400,
        604800,
        None,
        None,
        None,
        None,
    ]
    assert [format_duration(s) for s in (1800, 86400, 7200)] == ["30m", "1d", "2h"]


def test_two_distinct_people_reach_min_2_and_one_person_twice_counts_once():
    assert not quorum_reached(SSO_GATE, approved(ALICE))
    assert quorum_reached(SSO_GATE, approved(ALICE, BOB))
    # The record is a map keyed on the person: approving twice cannot add a second entry, and a
    # second decision by the same person is refused as a conflict.
    refused = refusal(SSO_GATE, approved(ALICE), ALICE, NOW)
    assert refused is not None and refused.code == CONFLICT and "already approved" in refused.reason


def test_tally_lists_who_when_and_why_and_skips_who_no_longer_counts():
    wait = approved(BOB, f"arn:aws:iam::{ACCOUNT}:user/mallory", ALICE, requester=ALICE)
    counted = tally(SSO_GATE, wait)
    # mallory is not an approver (the rule may have changed); alice is the requester.
    assert [(a.principal, a.at, a.reason) for a in counted] == [(BOB, "2026-12-06T18:00:00Z", "ok 0")]


def test_epoch_seconds_in_a_record_read_as_iso_time():
    from decimal import Decimal

    wait = Wait(data={"approvals": {ALICE: {"at": Decimal("1800000000"), "reason": ""}}})
    assert tally(SSO_GATE, wait)[0].at == "2027-01-15T08:00:00Z"


def test_who_may_not_decide_is_forbidden_403():
    gate = SSO_GATE
    stranger = f"arn:aws:sts::{ACCOUNT}:assumed-role/Developer/eve@example.com"
    cases = {
        stranger: "not an approver",
        f"arn:aws:iam::{ACCOUNT}:role/AWSReservedSSO_Release_0123abcd": "only people approve",
        ALICE: "requested this promotion",
    }
    for principal, said in cases.items():
        refused = refusal(gate, Wait(data={"requester": ALICE}), principal, NOW)
        assert refused is not None and refused.code == FORBIDDEN, principal
        assert said in refused.reason


def test_the_requester_may_approve_when_the_rule_allows_and_may_always_reject():
    wait = Wait(data={"requester": ALICE})
    assert may_decide(ApprovalGate(SSO_GATE.approvers, requester_may_approve=True), wait, ALICE, NOW) is None
    assert may_decide(SSO_GATE, wait, ALICE, NOW, REJECT) is None
    # Counted too, once the rule allows it.
    allowing = ApprovalGate(SSO_GATE.approvers, min=1, requester_may_approve=True)
    assert quorum_reached(allowing, approved(ALICE, requester=ALICE))
    assert not quorum_reached(ApprovalGate(SSO_GATE.approvers, min=1), approved(ALICE, requester=ALICE))


def test_a_wait_past_deciding_is_a_conflict_409():
    rejected = Wait(data={"rejection": {"by": BOB, "at": "2026-12-06T18:00:00Z", "reason": "no"}})
    cases = [
        (Wait(data={"superseded_by": "req-2"}), "superseded by request req-2"),
        (rejected, "already rejected by " + BOB),
        (approved(ALICE, BOB), "already approved"),
        (Wait(deadline=NOW), "expired at 2027-01-15T08:00:00Z"),
    ]
    for wait, said in cases:
        refused = refusal(SSO_GATE, wait, CAROL, NOW)
        assert refused is not None and refused.code == CONFLICT and said in refused.reason
        assert may_decide(SSO_GATE, wait, CAROL, NOW) == refused.reason
    assert rejection_of(rejected).principal == BOB
    assert may_decide(SSO_GATE, Wait(deadline=NOW + 1), CAROL, NOW) is None


def test_the_requester_is_read_from_the_waiting_request_when_the_record_names_none():
    from promoter.model.events import PromotionRequested

    @dataclass(frozen=True)
    class RequestWait(Wait):
        event: PromotionRequested | None = None

    asked = PromotionRequested("req-1", "app", "v1", requested_by=ALICE)
    refused = refusal(SSO_GATE, RequestWait(event=asked), ALICE, NOW)
    assert refused is not None and refused.code == FORBIDDEN and "requested this promotion" in refused.reason
    # Free text names nobody: the requester is unknown, and an approver is not taken for them.
    unknown = RequestWait(event=PromotionRequested("req-2", "app", "v1", requested_by="alice@laptop"))
    assert may_decide(SSO_GATE, unknown, ALICE, NOW) is None
    # The record's word wins over the request's (what was recorded when the wait was announced).
    assert may_decide(SSO_GATE, RequestWait(data={"requester": ""}, event=asked), ALICE, NOW) is None
