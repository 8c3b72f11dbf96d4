"""The signature verifiers cost nothing until used: what each module loads when imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("cryptography", "sigstore", "sigstore_models", "pydantic", "cbor2", "rfc3161_client", "tuf")


def _loaded_after(module: str) -> set[str]:
    code = (
        f"import json, sys; import {module}; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_interface_module_imports_no_crypto_library():
    assert _loaded_after("promoter.gates.signatures") == set()


def test_gates_package_does_not_import_the_verifiers():
    code = "import sys, promoter.gates; print('promoter.gates.signatures' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize(
    "module", ["cosign", "notation", "sigstore_bundle"], ids=["cosign", "notation", "sigstore_bundle"]
)
def test_verifier_module_loads_cryptography_only(module):
    assert _loaded_after(f"promoter.gates.signatures.{module}") == {"cryptography"}
