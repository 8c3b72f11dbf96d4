"""Issue 20 item 0 on the local AWS, through the Lambda handler: a gate's errors are classified at
its edge. A scan gate refused DescribeImageScanFindings (the promoter's role lacks the grant), and a
signature gate whose awskms:/// key is disabled or that may not list the image's signatures, end the
action as a named `failed`: logged at ERROR, counted as GateFailures (an alarm watches it) besides
PromotionFailures, recorded in the history; never handed back for five more tries, never
`unverified`, and no wait is left behind."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from local_aws import images as im
from promoter import settings
from promoter.metrics import FAILED_METRIC, GATE_FAILURES_METRIC, UNEXPECTED_ERROR_METRIC
from promoter.model.outcomes import FAILED
from tests.integration.test_signature_gate import (  # noqa: F401 - lambda_with and repos are fixtures
    KeyPair,
    digest_at,
    history_of,
    lambda_with,
    push_tag_signature,
    repos,
    rule_config,
)
from tests.integration.test_unexpected_errors import log_lines, output  # noqa: F401 - log_lines: a fixture

pytestmark = pytest.mark.integration


def scan_gated(source: str, target: str) -> dict[str, Any]:
    return {
        "rules": [
            {
                "name": "release",
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": target}],
                "require": {"scan": {"max_severity": "HIGH"}},
            }
        ]
    }


def waits_on(source: str, digest: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(settings.gates_table_name())
    return table.query(KeyConditionExpression=Key("pk").eq(f"{source}@{digest}"))["Items"]


def assert_a_named_gate_failure(response, target, tag, log_lines, capsys, *named: str) -> None:  # noqa: F811
    assert response == {"batchItemFailures": []}  # final: not handed back to be tried again
    (recorded,) = history_of(target, tag)
    assert recorded["outcome"] == FAILED
    assert all(name in recorded["reason"] for name in named), recorded["reason"]
    logs, emf = output(log_lines, capsys)
    errors = [x for x in logs if x["level"] == "ERROR"]
    assert [e for e in errors if all(name in e["message"] for name in named)], errors
    assert emf[-1][GATE_FAILURES_METRIC] == [1.0] and emf[-1][FAILED_METRIC] == [1.0]
    assert UNEXPECTED_ERROR_METRIC not in emf[-1]


def test_a_missing_scan_findings_grant_is_a_named_gate_failure_that_alarms(
    aws_env,
    ecr,
    pusher,
    repos,  # noqa: F811
    lambda_with,  # noqa: F811
    log_lines,  # noqa: F811
    capsys,
):
    source, target = repos
    image = im.image((64,))
    pusher.push(source, image, "v1")
    promote = lambda_with(scan_gated(source, target))
    denied = (
        "User: arn:aws:sts::123456789012:assumed-role/image-promoter/promoter is not authorized to perform: "
        f"ecr:DescribeImageScanFindings on resource: arn:aws:ecr:us-east-1:123456789012:repository/{source}"
    )
    # Once: a second DescribeImageScanFindings (a retry) would be answered, and the image would wait.
    aws_env.control.fail_next("DescribeImageScanFindings", "AccessDeniedException", count=1, message=denied)

    response = promote(source, image.digest, "v1")

    assert_a_named_gate_failure(
        response, target, "v1", log_lines, capsys, "scan gate", "ecr:DescribeImageScanFindings"
    )
    assert digest_at(ecr, target, "v1") is None
    assert waits_on(source, image.digest) == []  # nothing waits on a gate that failed


def test_a_disabled_kms_key_is_a_named_gate_failure_not_an_unverified_image(
    aws_env,
    ecr,
    pusher,
    repos,  # noqa: F811
    lambda_with,  # noqa: F811
    log_lines,  # noqa: F811
    capsys,
):
    source, target = repos
    kms = boto3.client("kms", endpoint_url=aws_env.endpoint, region_name="us-east-1")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    image = im.image((256,))
    pusher.push(source, image, "v1")
    push_tag_signature(
        pusher,
        source,
        image,
        lambda p: kms.sign(KeyId=key["Arn"], Message=p, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")[
            "Signature"
        ],
    )
    kms.disable_key(KeyId=key["KeyId"])  # after signing: the signature is good, the key cannot check it
    promote = lambda_with(rule_config(source, target, [f"awskms:///{key['Arn']}"]))

    response = promote(source, image.digest, "v1")

    assert_a_named_gate_failure(
        response,
        target,
        "v1",
        log_lines,
        capsys,
        "signature gate",
        key["Arn"],
        "DisabledException",
        "disabled",
    )
    assert digest_at(ecr, target, "v1") is None


def test_signatures_the_promoter_may_not_list_are_a_named_gate_failure_not_an_unverified_image(
    aws_env,
    ecr,
    pusher,
    repos,  # noqa: F811
    lambda_with,  # noqa: F811
    log_lines,  # noqa: F811
    capsys,
):
    source, target = repos
    key = KeyPair()
    image = im.image((256,))
    pusher.push(source, image, "v1")
    push_tag_signature(pusher, source, image, key.sign)
    promote = lambda_with(rule_config(source, target, [key.public_pem]))
    aws_env.control.fail_next(
        "ListImageReferrers",
        "AccessDeniedException",
        count=1,
        message="not authorized: ecr:ListImageReferrers",
    )

    response = promote(source, image.digest, "v1")

    assert_a_named_gate_failure(
        response, target, "v1", log_lines, capsys, "signature gate", "ListImageReferrers", "access denied"
    )
    assert digest_at(ecr, target, "v1") is None
