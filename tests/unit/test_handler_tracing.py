"""Tracing costs cold-start time only where the stack turns it on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = (
    "import sys, promoter.handler as h; "
    "print(__import__('json').dumps({'xray': 'aws_xray_sdk.core' in sys.modules, "
    "'wrapped': hasattr(h.handle_queue, '__wrapped__')}))"
)


def _import_handler(trace_disabled: str) -> dict[str, bool]:
    env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": trace_disabled, "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def test_with_tracing_disabled_the_handler_does_not_load_the_xray_sdk():
    assert _import_handler("true")["xray"] is False


def test_with_tracing_enabled_the_handler_is_traced_by_powertools():
    assert _import_handler("false")["xray"] is True
