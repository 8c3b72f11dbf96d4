"""Static checks on the synthesized stack: cdk-nag's AwsSolutions pack and cfn-lint."""

from __future__ import annotations

import json

import botocore.session
from cfnlint.api import lint

from infra.stack import STACK_NAME

# cfn-lint's IAM action list predates ECR's ListImageReferrers (OCI 1.1 referrers); botocore's
# service model has it, which the test below checks before excusing the warning.
NEWER_THAN_CFN_LINT = {"listimagereferrers"}


def test_synth_passes_the_aws_solutions_pack(synthesized):
    assert synthesized.error is None, synthesized.error
    report = json.loads((synthesized.outdir / "validation-report.json").read_text())
    (plugin,) = report["pluginReports"]
    assert plugin["pluginName"] == "AwsSolutions"
    assert plugin["conclusion"] == "success", json.dumps(plugin["violations"], indent=1)[:4000]
    assert plugin["violations"] == []


def _acknowledged(synthesized) -> dict[str, str]:
    """Finding id -> reason, as recorded in the assembly for every acknowledged cdk-nag finding."""
    metadata = json.loads((synthesized.outdir / f"{STACK_NAME}.metadata.json").read_text())
    found: dict[str, str] = {}
    for entries in metadata.values():
        for entry in entries:
            if entry["type"] == "aws:cdk:acknowledged-rules":
                found.update(entry["data"])
    return found


def test_only_by_design_findings_are_acknowledged_each_with_a_reason(synthesized):
    acknowledged = _acknowledged(synthesized)
    repo = "Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>:repository/"
    assert set(acknowledged) == {
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
        f"AwsSolutions::AwsSolutions-IAM5[{repo}team/*]",
        f"AwsSolutions::AwsSolutions-IAM5[{repo}release/team/*]",
        "AwsSolutions::AwsSolutions-L1",
        "AwsSolutions::AwsSolutions-SQS3",
    }
    for finding, reason in acknowledged.items():
        assert len(reason.split()) >= 8, f"{finding}: reason too thin: {reason!r}"


def test_template_is_cfn_lint_clean(synthesized):
    template = (synthesized.outdir / f"{STACK_NAME}.template.json").read_text()
    matches = lint(template)  # errors and warnings, as the cfn-lint CLI reports by default
    real = [
        m
        for m in matches
        if not (m.rule.id == "W3037" and any(action in m.message for action in NEWER_THAN_CFN_LINT))
    ]
    assert real == [], "\n".join(f"{m.rule.id} {m.message} at {m.path}" for m in real)


def test_actions_excused_from_cfn_lint_exist_in_the_ecr_service_model():
    model = botocore.session.get_session().get_service_model("ecr")
    operations = {name.lower() for name in model.operation_names}
    assert operations >= NEWER_THAN_CFN_LINT
