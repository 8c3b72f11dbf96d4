"""`./dev setup` installs the project without setuptools' package warnings: every folder that ships
files is a listed package (a data folder Python can import, such as the signature verifiers'
`roots/`, must be listed, or setuptools prints a "Package would be ignored" wall on every install).

Runs setuptools' own build_py (what `pip install` runs) on a copy of the packaging inputs, so nothing
is written into the checkout; it takes about a second."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).parents[2]
# What setuptools reads to build the packages: pyproject.toml, the readme it names, the package dirs.
PACKAGING_INPUTS = ("pyproject.toml", "README.md")
PACKAGE_DIRS = ("functions", "src", "infra")


def test_building_the_packages_prints_no_setuptools_package_warning_and_ships_the_trust_anchors(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in PACKAGING_INPUTS:
        shutil.copy(REPO_ROOT / name, project / name)
    for name in PACKAGE_DIRS:
        shutil.copytree(REPO_ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    build_lib = tmp_path / "build-lib"

    result = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
         "--build-lib", str(build_lib)],
        cwd=project, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "Package would be ignored" not in output, output
    assert "SetuptoolsDeprecationWarning" not in output, output
    roots = build_lib / "promoter" / "gates" / "signatures" / "roots"
    assert sorted(p.name for p in roots.glob("*.crt")) == sorted(
        p.name for p in (REPO_ROOT / "functions/promoter/gates/signatures/roots").glob("*.crt")
    )
