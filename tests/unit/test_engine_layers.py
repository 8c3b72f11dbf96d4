"""The engine's layers (house rule, design of issues 19/20): `promoter.aws` (the AWS adapters) never
imports `promoter.gates`; what both need lives in `promoter.model`. Read from the source with `ast`,
so an import inside a function counts as much as one at the top, and so does a relative one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import promoter.aws

AWS_PACKAGE = "promoter.aws"
FORBIDDEN = "promoter.gates"
AWS_DIR = Path(promoter.aws.__file__).parent


def _modules() -> list[Path]:
    return sorted(AWS_DIR.rglob("*.py"))


def _package_of(path: Path) -> str:
    """The package a module's relative imports are resolved in (its own for `__init__.py`)."""
    return ".".join([AWS_PACKAGE, *path.relative_to(AWS_DIR).parent.parts])


def imported_modules(source: str, package: str) -> set[str]:
    """Every module `source` imports (a module of `package`): `import a.b`, `from a import b` (both
    `a` and `a.b`, as b may be a module), relative imports resolved, and importlib.import_module /
    __import__ of a constant name; at any depth."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def _forbidden(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == FORBIDDEN or m.startswith(FORBIDDEN + "."))


def test_the_aws_package_is_read_whole() -> None:
    names = {p.name for p in _modules()}
    assert {"__init__.py", "registry.py", "signer.py", "kms.py", "notify.py"} <= names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_no_aws_module_imports_the_gates(path: Path) -> None:
    imports = imported_modules(path.read_text(encoding="utf-8"), _package_of(path))
    assert _forbidden(imports) == [], f"{path.name} imports {_forbidden(imports)}: move it to promoter.model"


@pytest.mark.parametrize(
    "source",
    [
        "from promoter.gates.signatures import SignatureRejected",
        "import promoter.gates.scan",
        "from promoter import gates",
        "from ..gates import base",
        "def f():\n    from promoter.gates.base import GateDeps\n",
        "import importlib\nimportlib.import_module('promoter.gates.signature')",
    ],
)
def test_every_spelling_of_such_an_import_is_seen(source: str) -> None:
    assert _forbidden(imported_modules(source, AWS_PACKAGE)), source


def test_model_and_exception_imports_are_allowed() -> None:
    source = "from promoter.model.signatures import SignatureRejected\nfrom .. import exceptions\n"
    assert _forbidden(imported_modules(source, AWS_PACKAGE)) == []
