"""`./dev setup` tells a new user what it installs and that the first run takes minutes, on stderr,
and `./dev promoter ARGS` runs the virtual environment's promoter with stdout left to it.

Run on a copy of `./dev` in a scratch directory whose `.venv` holds stand-ins for python, pip and
promoter, so nothing is installed (apt's two packages are what `./dev test` installs first)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).parents[2]


def stub(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if (
        shutil.which("dpkg") is None
        or subprocess.run(["dpkg", "-s", "skopeo"], capture_output=True).returncode
    ):
        pytest.skip("needs Debian's skopeo and docker-registry installed (./dev setup does that)")
    shutil.copy(REPO_ROOT / "dev", tmp_path / "dev")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    stub(bin_dir / "python", "exit 0")
    stub(bin_dir / "pip", 'echo "pip $*"')  # pip's own output is progress: it must reach stderr
    stub(bin_dir / "promoter", 'echo "promoter-ran $*"; echo "in $PWD" >&2')
    return tmp_path


def dev(checkout: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(checkout / "dev"), *args],
        cwd=cwd or checkout,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_first_set_up_says_it_takes_minutes_and_numbers_its_steps_on_stderr(checkout: Path):
    result = dev(checkout, "setup")

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert "The first run takes a few minutes" in lines[0]
    assert any(line.startswith("== [1] pip install -e '.[dev]'") for line in lines)
    assert "pip install --progress-bar off -e .[dev]" in result.stderr  # pip's progress is shown
    assert "./dev promoter --help" in lines[-2]
    assert (checkout / ".venv" / ".installed").exists()


def test_dev_promoter_runs_the_venv_promoter_and_keeps_stdout_for_it(checkout: Path):
    first = dev(checkout, "promoter", "event", "push", "app-dev:sha-1")
    again = dev(checkout, "promoter", "status", "--json")

    assert first.returncode == 0, first.stderr
    assert first.stdout == "promoter-ran event push app-dev:sha-1\n"  # set-up's messages: stderr only
    assert "first run" in first.stderr
    assert again.stdout == "promoter-ran status --json\n"
    assert again.stderr == f"in {checkout}\n"  # nothing left to install: set-up says nothing


def test_dev_promoter_runs_in_the_callers_directory_so_relative_paths_are_the_callers(
    checkout: Path, tmp_path: Path
):
    """`./dev promoter validate --config promotion.yaml` in another folder reads that folder's file."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dev(checkout, "setup")

    result = dev(checkout, "promoter", "validate", "--config", "promotion.yaml", cwd=elsewhere)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "promoter-ran validate --config promotion.yaml\n"
    assert result.stderr == f"in {elsewhere}\n"
