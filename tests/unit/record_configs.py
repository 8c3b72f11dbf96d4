"""A pytest plugin (`-p tests.unit.record_configs`) that records every configuration handed to the
parser while the tests run, for tests/unit/test_schema_agreement.py: the schema is then held to the
parser's answer on each configuration the configuration tests use, without a copy of any of them.

Configured before the test modules are imported, it wraps `promoter.model.config.parse_config` (which
`load_config` calls too); the tests' outcomes are unchanged. At the end of the session the recorded
(test id, configuration) pairs are pickled to the file named by $RECORD_CONFIGS_TO.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Mapping
from typing import Any

import promoter.model.config as config_module

RECORD_ENV = "RECORD_CONFIGS_TO"
_parse_config = config_module.parse_config
_recorded: list[tuple[str, Any]] = []


def _plain(data: object) -> object:
    """A copy made of dicts and lists only (the test may change its data after the call)."""
    if isinstance(data, Mapping):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_plain(item) for item in data]
    return data


def _recording_parse_config(data: object) -> config_module.PromotionConfig:
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    # Nested past Python's stack: not recorded (the parser answers it as it is; no schema to hold).
    with contextlib.suppress(RecursionError):
        _recorded.append((test, _plain(data)))
    return _parse_config(data)


def pytest_configure(config: Any) -> None:
    """Before any test module is collected (and imports `parse_config`); never on a plain import."""
    config_module.parse_config = _recording_parse_config


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    with open(os.environ[RECORD_ENV], "wb") as out:
        pickle.dump(_recorded, out)
