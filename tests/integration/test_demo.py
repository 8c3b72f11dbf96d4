"""`promoter demo`, the README's first command, runs the whole flow and says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")


def test_demo_promotes_each_push_once_and_exits_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", "demo", "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=240, env=env, check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "dev-to-staging: app-dev:sha-1a2b3c4 -> app-staging:sha-1a2b3c4 promoted" in out
    assert "release-to-prod: app-dev:v1.4.0 -> app-prod:v1.4.0 promoted" in out
    assert "ECR write calls during the replay: 0" in out
    assert "actions answered from the idempotency record: 2 of 2" in out
    assert "messages in the DLQ: 0" in out
    # Subscribers saw one result per promotion, and the history shows both, newest first.
    assert out.count("event 'Image Promoted'") == 2
    assert "result events announced for the replay: 0" in out
    history = out[out.index("promoter history:"):]
    assert history.index("app-prod:v1.4.0") < history.index("app-staging:sha-1a2b3c4")
    # The Lambda's own logs and metrics went to the log file, as to CloudWatch Logs.
    log = (tmp_path / "lambda.log").read_text()
    assert '"event handled"' in log and '"ImagesPromoted"' in log
