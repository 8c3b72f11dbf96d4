"""A clone stands on its own: no code in the repository reads a path outside it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.fixtures import EVENTS_DIR, FIXTURES, SIGNATURES_DIR

ROOT = FIXTURES.parents[1]
CODE_DIRS = ("tests", "src", "functions", "infra", "bench")
# A path that climbs out of the folder it starts in: '../x', Path(...) / "..", the team's reference
# folder by name (spelled in two pieces here so that this file does not match itself).
REFERENCE = "shared" + "/reference"
OUTSIDE = re.compile(r"""(["'])\.\.(["'/])|/\s*["']\.\.["']|""" + REFERENCE + r"""|["']shared["']\s*/""")


def _code_files() -> list[Path]:
    files = [p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py")]
    return [*files, ROOT / "dev", ROOT / ".ci" / "run"]


def test_no_code_reads_a_path_outside_the_repository() -> None:
    offenders = []
    for path in _code_files():
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            # Hostile-input tests send '../' on purpose; such a line says so with "# data, not a path".
            if OUTSIDE.search(line) and "# data, not a path" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_pattern_catches_the_forms_that_used_to_be_here() -> None:
    for line in (
        'EVENTS = REPO_ROOT / ".."' + ' / "shared" / "reference" / "events"',
        'ROOTS_DIR = "..' + "/" + REFERENCE + '/signatures/notation/aws-signer-roots"',
    ):
        assert OUTSIDE.search(line)
    assert not OUTSIDE.search('EVENTS = EVENTS_DIR / "ecr-push.json"')


def test_the_fixtures_are_in_the_repository_with_their_origin() -> None:
    for folder in (FIXTURES, EVENTS_DIR, SIGNATURES_DIR):
        assert (folder / "README.md").is_file(), folder
        assert folder.resolve().is_relative_to(ROOT)
    assert (EVENTS_DIR / "ecr-push.json").is_file()
    assert (SIGNATURES_DIR / "cosign-simple" / "key-p256" / "cosign.pub").is_file()
