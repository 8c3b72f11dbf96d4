"""What the CLI says when the environment is not set up (issue 17, item 3), with no AWS at all: no
region, a local AWS not started yet, a flag the command does not take, and `validate`'s gates. The
CLI runs in-process (`promoter_cli.main.main`)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from promoter_cli import main as cli
from promoter_cli.resources import NO_REGION_MESSAGE

DIGEST = "sha256:" + "a" * 64
EVENT = {
    "version": "0",
    "id": "1",
    "detail-type": "ECR Image Action",
    "source": "aws.ecr",
    "account": "123456789012",
    "time": "2026-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {
        "result": "SUCCESS",
        "repository-name": "app-dev",
        "image-digest": DIGEST,
        "action-type": "PUSH",
        "image-tag": "sha-1",
    },
}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "promotion.yaml"
    config.write_text(
        "rules:\n  - name: to-stage\n    source: {repository: app-dev, tags: ['sha-*']}\n"
        "    targets: [{repository: app-stage}]\n"
    )
    event = tmp_path / "push.json"
    event.write_text(json.dumps(EVENT))
    return {"config": str(config), "event": str(event)}


def aws_commands(files: dict[str, str]) -> list[list[str]]:
    """One call of every command that talks to AWS, valid but for the environment."""
    config, event = files["config"], files["event"]
    return [
        ["plan", event, "--config", config],
        ["handle", event, "--config", config],
        ["promote", "app-dev:sha-1", "--to", "app-stage"],
        ["request", "--repository", "app-dev", "--tag", "sha-1", "--bus", "image-promoter"],
        ["history"],
        ["reconcile", "--config", config],
        ["rollback", "--repository", "app-stage", "--tag", "sha-1"],
        ["redrive"],
        ["status", "--config", config],
        ["status", "--config", config, "--stack", "ImagePromoter"],
        ["event", "push", "app-dev:sha-1"],
        ["approvals", "--config", config],
        ["approve", "0123456789ab", "--reason", "looked at it"],
        ["reject", "0123456789ab", "--reason", "not yet"],
    ]


COMMAND_COUNT = 14


@pytest.fixture
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keys but no region, endpoint, profile or config file: only what the test sets."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("PROMOTER_") or name == "PROMOTION_EVENT_BUS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_the_list_covers_every_command_that_talks_to_aws(files):
    called = {args[0] for args in aws_commands(files)}
    assert called >= {*cli.AWS_COMMANDS, "event"}


@pytest.mark.parametrize("index", range(COMMAND_COUNT))
def test_a_missing_region_is_one_message_naming_the_variables_and_exit_2(
    index, files, no_aws_environment, capsys
):
    args = aws_commands(files)[index]

    code = cli.main(args)

    out, err = capsys.readouterr()
    assert code == 2, (args, out, err)
    assert err.splitlines() == [f"promoter: {NO_REGION_MESSAGE}"], args
    assert "AWS_REGION" in err and "AWS_DEFAULT_REGION" in err


def test_a_profile_that_does_not_exist_is_one_line_and_exit_2(files, no_aws_environment, monkeypatch, capsys):
    monkeypatch.setenv("AWS_PROFILE", "nowhere")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    code = cli.main(["history"])

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "promoter: The config profile (nowhere) could not be found: AWS_PROFILE must name a profile of the "
        "AWS config file (or be unset)"
    ]


def free_port() -> int:
    """A port on this machine where nothing listens (bound, then closed, by this process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("index", range(COMMAND_COUNT))
def test_a_command_run_before_the_local_aws_is_up_says_so_in_one_line_and_exit_2(
    index, files, no_aws_environment, monkeypatch, capsys
):
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    args = aws_commands(files)[index]

    code = cli.main(args)

    out, err = capsys.readouterr()
    assert code == 2, (args, out, err)
    assert err.splitlines() == [
        f"promoter: nothing answers at {endpoint} (AWS_ENDPOINT_URL): start the local AWS first with "
        "`promoter local` in another shell, or unset AWS_ENDPOINT_URL to use AWS"
    ]


def test_history_with_config_is_refused_by_history_saying_which_commands_take_it(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["history", "--config", "promotion.yaml"])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: promoter history ")
    assert (
        "promoter history: error: unrecognized arguments: --config promotion.yaml (history does not read "
        "the rules; --config is for: approvals, graph, handle, local, plan, reconcile, status, validate)"
    ) in " ".join(err.split())


def test_validate_lists_each_rules_gates_with_their_settings(tmp_path, capsys):
    config = tmp_path / "promotion.yaml"
    config.write_text(
        "rules:\n  - name: to-prod\n    trigger: request\n    source: {repository: app-stage, tags: ['v*']}\n"
        "    require:\n      scan: {max_severity: HIGH, timeout_minutes: 30}\n"
        "      signature:\n"
        "        cosign: {keys: ['awskms:///arn:aws:kms:us-east-1:123456789012:key/k1']}\n"
        "        sigstore: {identities: [{issuer: 'https://token.actions.githubusercontent.com',"
        " subject: 're:^https://github.com/org/'}]}\n"
        "    targets: [{repository: app-prod}]\n"
        "  - name: open\n    source: {repository: app-dev, tags: ['sha-*']}\n"
        "    targets: [{repository: app-stage}]\n"
    )

    code = cli.main(["validate", "--config", str(config)])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    gates = [line.strip() for line in lines if line.strip().startswith("gate:")]
    assert gates == [
        "gate: scan: max_severity HIGH, timeout_minutes 30",
        "gate: signature: cosign keys awskms:///arn:aws:kms:us-east-1:123456789012:key/k1; or sigstore "
        "https://token.actions.githubusercontent.com re:^https://github.com/org/",
    ]
    assert lines.index("  open [push] app-dev:sha-*") > lines.index("    " + gates[-1])  # only to-prod's


def test_validate_lists_an_approval_gate_with_its_approvers_quorum_expiry_and_notify(tmp_path, capsys):
    alice, release = "arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:role/release"
    topic = "arn:aws:sns:us-east-1:123456789012:releases"
    config = tmp_path / "promotion.yaml"
    config.write_text(
        "rules:\n  - name: to-prod\n    trigger: request\n    source: {repository: app-stage, tags: ['v*']}\n"
        "    require:\n      scan: {max_severity: HIGH, timeout_minutes: 30}\n"
        f"      approval: {{approvers: ['{alice}', '{release}'], min: 2, requester_may_approve: true,"
        f" expires_after: 90m, notify: '{topic}'}}\n"
        "    targets: [{repository: app-prod}]\n"
        "  - name: to-stage\n    trigger: request\n    source: {repository: app-dev, tags: ['v*']}\n"
        f"    require: {{approval: {{approvers: ['{alice}']}}}}\n"
        "    targets: [{repository: app-stage}]\n"
    )

    code = cli.main(["validate", "--config", str(config)])

    assert code == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    gates = [line for line in lines if line.startswith("gate:")]
    assert gates == [
        "gate: scan: max_severity HIGH, timeout_minutes 30",
        f"gate: approval: min 2 of {alice}, {release}; requester may approve; expires_after 90m; "
        f"notify {topic}",
        f"gate: approval: min 1 of {alice}; requester may not approve; expires_after 1d; notify nobody",
    ]
