"""The people's side of the approval gate, as processes on the local AWS: `promoter approvals` lists
what waits, two people approve with their own credentials (`promoter local credentials
--principal`), `status`, `history` and `graph` show it; an unknown id, a second approval and the
requester's own approval are refused, and a refusal changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

PROMOTER = [sys.executable, "-m", "promoter_cli.main"]
ACCOUNT = "123456789012"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
CAROL = f"arn:aws:iam::{ACCOUNT}:user/carol"


def run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args],
        env=env or dict(os.environ),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_config(path, stage: str, prod: str, approvers: tuple[str, ...] = (ALICE, BOB)) -> str:
    entries = ", ".join(f"'{a}'" for a in approvers)
    path.write_text(
        "rules:\n"
        "  - name: to-prod\n    trigger: request\n"
        f"    source: {{repository: {stage}, tags: ['v*']}}\n"
        "    require:\n"
        "      scan: {max_severity: HIGH}\n"
        f"      approval: {{approvers: [{entries}], min: 2, expires_after: 24h}}\n"
        f"    targets: [{{repository: {prod}, tags: ['{{tag}}', current]}}]\n"
    )
    return str(path)


def test_graph_draws_the_approval_gate_between_the_machine_checks_and_the_targets(tmp_path):
    config = write_config(tmp_path / "promotion.yaml", "stage", "prod")

    result = run("graph", "--config", config)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    [hexagon] = [line for line in lines if "{{" in line]
    gate = hexagon.split("{{", 1)[0].strip()
    assert hexagon.endswith('{{"approval: 2 of user/alice, user/bob within 1d"}}')
    [into] = [line for line in lines if line.endswith(f" {gate}")]
    assert '|"to-prod<br/>request<br/>scan up to HIGH"|' in into
    [out] = [line for line in lines if line.strip().startswith(f"{gate} ")]
    assert out.strip().endswith("n1_prod") and "current" in out
