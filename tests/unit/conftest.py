"""Fixtures for the unit tests: the real signature fixtures in tests/fixtures/signatures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import SIGNATURES_DIR


@pytest.fixture(scope="session")
def signature_fixtures() -> Path:
    """The folder of real cosign, Sigstore and Notation fixtures (see its README for their origin)."""
    return SIGNATURES_DIR
