"""Issue 20 on the local AWS, through the Lambda handler: a promotion held by a gate is counted under
the gate it waits on. A scan wait keeps the public name `PromotionsAwaitingScan`; a wait for people
counts as `PromotionsAwaitingApproval`, never as a scan wait."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from local_aws import images as im
from promoter import handler
from tests.integration.test_attestation_engine import request_event
from tests.integration.test_signature_gate import (  # noqa: F401 - lambda_with and repos are fixtures
    history_of,
    lambda_with,
    repos,
)
from tests.integration.test_unexpected_errors import log_lines, output  # noqa: F401 - log_lines: a fixture
from tests.lambda_events import FakeLambdaContext, sqs_batch

pytestmark = pytest.mark.integration

# The public names (metric names are a contract): spelled out, not imported.
GATE_PENDING_METRIC = "PromotionsAwaitingScan"
APPROVAL_PENDING_METRIC = "PromotionsAwaitingApproval"
APPROVER = "arn:aws:sts::123456789012:assumed-role/Release/alice"


def gated_rule(source: str, target: str, require: dict[str, Any]) -> dict[str, Any]:
    return {
        "rules": [
            {
                "name": f"waits-{uuid.uuid4().hex[:8]}",  # its own rule: no other test's waits
                "trigger": "request",
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": target, "tags": ["{tag}"]}],
                "require": require,
            }
        ]
    }


def requested(source: str, tag: str) -> dict:
    body = json.dumps(request_event(source, tag, requested_by="arn:aws:iam::123456789012:user/ci"))
    return handler.handle_queue(sqs_batch(body), FakeLambdaContext())


@pytest.mark.parametrize(
    ("require", "counted", "not_counted"),
    [
        ({"approval": {"approvers": [APPROVER]}}, APPROVAL_PENDING_METRIC, GATE_PENDING_METRIC),
        ({"scan": {"max_severity": "HIGH"}}, GATE_PENDING_METRIC, APPROVAL_PENDING_METRIC),
        # Both waiting: counted once, under the gate the result names (the scan, asked first).
        (
            {"scan": {"max_severity": "HIGH"}, "approval": {"approvers": [APPROVER]}},
            GATE_PENDING_METRIC,
            APPROVAL_PENDING_METRIC,
        ),
    ],
    ids=["approval", "scan", "scan-and-approval"],
)
def test_a_held_promotion_is_counted_under_the_gate_it_waits_on(
    aws_env,
    pusher,
    repos,  # noqa: F811
    lambda_with,  # noqa: F811
    log_lines,  # noqa: F811
    capsys,
    require,
    counted,
    not_counted,
):
    source, target = repos
    image = im.image((64,))
    pusher.push(source, image, "v1")  # no scan findings yet: a scan gate waits
    lambda_with(gated_rule(source, target, require))
    capsys.readouterr()

    assert requested(source, "v1") == {"batchItemFailures": []}

    (recorded,) = history_of(target, "v1")
    assert recorded["outcome"] == "gate-pending"
    _, emf = output(log_lines, capsys)
    assert emf[-1][counted] == [1.0]
    assert not_counted not in emf[-1]
