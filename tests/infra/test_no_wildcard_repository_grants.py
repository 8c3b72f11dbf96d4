"""No synthesized statement grants on `repository/*` (issue 18.6): every ECR repository resource
keeps the rule's literal parts (`svc/*-staging`), and a rule that would need more is refused by
`promoter validate` and by synth, with its file and line (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.stack import STACK_NAME
from promoter.model.config import parse_config
from tests.infra.conftest import REPO_ROOT, TEST_CONFIG

TARGET_ACCOUNT = "210987654321"
CAPTURE_CONFIG: dict[str, Any] = {
    "rules": [
        {
            "name": "services",
            "source": {"repository": "re:svc/(?P<team>[a-z0-9-]+)/(?P<name>[a-z0-9-]+)-dev", "tags": ["v*"]},
            "targets": [
                {"repository": "svc/{team}-{name}-staging"},
                {
                    "repository": "prod-{team}/{name}-api",
                    "account": TARGET_ACCOUNT,
                    "role": f"arn:aws:iam::{TARGET_ACCOUNT}:role/image-promoter-target",
                },
            ],
        },
        {
            "name": "team-release",
            "trigger": "request",
            "source": {"repository": "team/*", "tags": ["v*"]},
            "targets": [{"repository": "{repository}", "tags": ["stable"]}],
        },
    ]
}
SAMPLE_CONFIG = yaml.safe_load((REPO_ROOT / "promotion.yaml").read_text())


def _synth_all(data: dict[str, Any], outdir: Path) -> dict[str, dict[str, Any]]:
    """Every stack's template, synthesized as app.py does it (the target-account stacks too)."""
    import aws_cdk as cdk

    from infra.app import build_app

    app = cdk.App(
        outdir=str(outdir), context={"source_account": "111111111111", "source_region": "us-east-1"}
    )
    build_app(app, parse_config(data))
    app.synth()
    return {p.name: json.loads(p.read_text()) for p in outdir.glob("*.template.json")}


def _statements(node: Any) -> list[dict[str, Any]]:
    """Every policy statement anywhere in a template (IAM policies, roles, resource policies)."""
    if isinstance(node, list):
        return [s for item in node for s in _statements(item)]
    if not isinstance(node, dict):
        return []
    found = [node] if "Effect" in node and ("Resource" in node or "NotResource" in node) else []
    return found + [s for value in node.values() for s in _statements(value)]


def _text(value: Any) -> str:
    """A resource as text: Fn::Join parts joined, any other intrinsic as <...>."""
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_text(p) for p in parts)
    if isinstance(value, dict):
        return "<" + ",".join(value) + ">"
    return str(value)


def _repository_names(statement: dict[str, Any]) -> list[str]:
    """The repository names of a statement's ECR repository resources. The reconciliation's
    `ecr:DescribeRepositories` alone is left out: listing the repositories to resolve a glob source
    (no names given) is checked by IAM against `repository/*`, and returns metadata only."""
    if _actions(statement) == ["ecr:DescribeRepositories"]:
        return []
    resources = statement.get("Resource", statement.get("NotResource"))
    texts = [_text(r) for r in (resources if isinstance(resources, list) else [resources])]
    return [text.split(":repository/", 1)[1] for text in texts if ":repository/" in text]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return actions if isinstance(actions, list) else [actions]


def test_a_glob_without_a_literal_part_gets_no_repository_grant():
    import aws_cdk as cdk

    from infra.permissions import repository_arns

    stack = cdk.Stack(cdk.App(), "Guard")
    for glob in ("*", "*/*", "?*", "[ab]*"):
        with pytest.raises(ValueError, match="every repository"):
            repository_arns(stack, [glob])
    assert len(repository_arns(stack, ["svc/*-staging"])) == 1


@pytest.mark.parametrize(
    "data", [TEST_CONFIG, SAMPLE_CONFIG, CAPTURE_CONFIG], ids=["tests", "promotion.yaml", "captures"]
)
def test_no_statement_grants_on_every_repository(data, tmp_path):
    templates = _synth_all(data, tmp_path)
    assert f"{STACK_NAME}.template.json" in templates
    names = [
        (stack, name)
        for stack, template in templates.items()
        for statement in _statements(template)
        for name in _repository_names(statement)
    ]
    assert names, "expected repository-scoped statements"
    assert [(s, n) for s, n in names if not any(c.isalnum() for c in n)] == []


def test_captures_are_granted_only_with_the_rules_literal_parts(tmp_path):
    templates = _synth_all(CAPTURE_CONFIG, tmp_path)
    names = {
        name
        for template in templates.values()
        for s in _statements(template)
        for name in _repository_names(s)
    }
    assert {"svc/*-*-staging", "prod-*/*-api", "svc/*/*-dev", "team/*"} <= names


REFUSED = {
    "capture-names-the-repository": (
        "rules:\n  - name: open\n    source: {repository: 're:svc/(?P<name>[a-z]+)-staging'}\n"
        "    targets:\n      - repository: '{name}'\n",
        5,
        "{name} would form the whole target repository name",
    ),
    "capture-names-a-segment": (
        "rules:\n  - name: open\n    source: {repository: 're:svc/(?P<team>[a-z]+)/x-staging'}\n"
        "    targets:\n      - repository: 'svc/{team}/x'\n",
        5,
        "{team} would form the whole path segment '{team}'",
    ),
    "catch-all-source": (
        "rules:\n  - name: open\n    trigger: request\n    source:\n      repository: '*'\n"
        "    targets: [{repository: '{repository}', tags: [stable]}]\n",
        5,
        "has no literal part",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_validate_and_synth_refuse_with_file_and_line(tmp_path, case):
    text, line, reason = REFUSED[case]
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    env_run = {"cwd": REPO_ROOT, "capture_output": True, "text": True, "timeout": 120}
    validate = subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", "validate", "--config", str(config)], **env_run
    )
    synth = subprocess.run(
        [sys.executable, "app.py"],
        env={
            **_base_env(),
            "CDK_OUTDIR": str(tmp_path / "out"),
            "CDK_CONTEXT_JSON": json.dumps({"config": str(config)}),
        },
        **env_run,
    )
    for result in (validate, synth):
        assert result.returncode == 2, result.stderr
        assert f"{config}:{line}" in result.stderr and reason in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / f"{STACK_NAME}.template.json").exists()


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("JSII_SILENCE")} | {
        "CDK_DISABLE_CLI_TELEMETRY": "true"
    }
