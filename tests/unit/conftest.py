"""Fixtures for the unit tests: the real signature fixtures in the shared reference folder."""

from __future__ import annotations

from pathlib import Path

import pytest

# The shared folder sits beside the repository's clone (…/clone/../shared), as in CI.
SIGNATURE_FIXTURES_DIR = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "signatures"
).resolve()


@pytest.fixture(scope="session")
def signature_fixtures() -> Path:
    """The folder of real cosign, Sigstore and Notation fixtures; fails loudly when it is missing."""
    if not (SIGNATURE_FIXTURES_DIR / "README.md").is_file():
        pytest.fail(
            f"signature fixtures not found at {SIGNATURE_FIXTURES_DIR}: the 'shared' folder must sit "
            "beside the repository's clone"
        )
    return SIGNATURE_FIXTURES_DIR
