"""Smoke test of the bench: `python -m bench --quick` runs every figure end to end on a local AWS.

Only that the harness works (every figure produces its rows); the numbers of a quick run on a
shared machine prove nothing, so no goal is asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_quick_bench_produces_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    figures = {row["figure"].split()[0] for row in rows}
    assert figures == {"1", "2", "3", "4", "5", "6"}
    assert all(row["ours"] >= 0 and row["reference"] >= 0 for row in rows)
    assert "== all figures (quick" in proc.stdout
