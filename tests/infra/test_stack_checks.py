"""Static checks on the synthesized stack: cdk-nag's AwsSolutions pack and cfn-lint."""

from __future__ import annotations

import json

import botocore.session
from cfnlint.api import lint

from infra.stack import STACK_NAME


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
        # The reconciliation lists every repository's metadata to resolve the glob sources.
        f"AwsSolutions::AwsSolutions-IAM5[{repo}*]",
        "AwsSolutions::AwsSolutions-L1",
        "AwsSolutions::AwsSolutions-SQS3",
    }
    for finding, reason in acknowledged.items():
        assert len(reason.split()) >= 8, f"{finding}: reason too thin: {reason!r}"


def test_template_is_cfn_lint_clean(synthesized):
    template = (synthesized.outdir / f"{STACK_NAME}.template.json").read_text()
    matches = lint(template)  # errors and warnings, as the cfn-lint CLI reports by default
    assert matches == [], "\n".join(f"{m.rule.id} {m.message} at {m.path}" for m in matches)


def test_cfn_lint_exemptions_are_the_two_explained_ones(synthesized):
    exempted = {
        logical_id: resource["Metadata"]["cfn-lint"]["config"]["ignore_checks"]
        for logical_id, resource in synthesized.template_dict["Resources"].items()
        if "cfn-lint" in resource.get("Metadata", {})
    }
    # Each once for the promoter and once for its reconciliation (same function shape, same policy).
    assert sorted(exempted.values()) == [["W3005"], ["W3005"], ["W3037"], ["W3037"]]


def test_every_granted_action_exists_in_botocores_service_models(synthesized):
    """Stands in for cfn-lint's W3037 (its action list lags ECR): a typo in an action fails here."""
    session = botocore.session.get_session()
    operations: dict[str, set[str]] = {}
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                service, operation = action.split(":")
                if service not in operations:
                    operations[service] = set(session.get_service_model(service).operation_names)
                assert operation in operations[service], f"{action} is not a {service} operation"
    assert set(operations) == {"ecr", "dynamodb", "sqs", "logs", "events", "kms"}  # kms: attestations
