"""Stage the Lambda code: the `promoter` package plus the parsed configuration, nothing else.

The configuration travels inside the asset (not in an environment variable, which Lambda caps at
4 KB in total), and the package is copied without tests, caches or CLI-only code. Staging happens
at synth time in the app's output directory, so no Docker bundling is needed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from promoter import settings

PACKAGE_NAME = "promoter"
# The engine package the Lambda imports: functions/promoter in the repository.
PACKAGE_SOURCE_DIR = Path(settings.__file__).resolve().parent
# Never shipped: bytecode caches, tests, hidden files and a `python -m` entry point (the CLI itself
# lives in src/promoter_cli and is never copied).
EXCLUDED_PATTERNS = (
    "__pycache__",
    "*.pyc",
    "*.pyo",
    "tests",
    "test_*.py",
    "*_test.py",
    "conftest.py",
    "__main__.py",
    ".*",
)


def stage_function_code(config_json: str, staging_dir: Path, source_dir: Path = PACKAGE_SOURCE_DIR) -> Path:
    """Write `staging_dir/promoter/` (the package, filtered) with the config as JSON; return staging_dir.

    Raises ValueError if `config_json` is not a JSON object: a broken config must fail synth, not
    the first invocation.
    """
    try:
        parsed = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"staged configuration is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValueError("staged configuration must be a JSON object")
    if staging_dir.exists():
        shutil.rmtree(staging_dir)
    package_dir = staging_dir / PACKAGE_NAME
    shutil.copytree(source_dir, package_dir, ignore=shutil.ignore_patterns(*EXCLUDED_PATTERNS))
    (package_dir / settings.STAGED_CONFIG_FILE).write_text(config_json, encoding="utf-8")
    return staging_dir
