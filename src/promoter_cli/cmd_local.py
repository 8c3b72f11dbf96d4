"""Placeholder until this module's sub-commands land; replaced by its owner."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Adds nothing yet."""
