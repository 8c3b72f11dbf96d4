"""Stage the Lambda code: the `promoter` package plus the parsed configuration, and, only when a
rule has a signature gate, the verifiers' dependencies.

The configuration travels inside the asset (not in an environment variable, which Lambda caps at
4 KB in total), and the package is copied without tests, caches or CLI-only code. Staging happens
at synth time in the app's output directory, so no Docker bundling is needed.

The signature verifiers need `cryptography`, `sigstore` and `cbor2` (pyproject's `signatures`
extra), which the Lambda runtime does not have. They are fetched as wheels built for the function's
platform (`pip download --platform ... --only-binary=:all:`: no compiler, no Docker) into a cache
once, and unpacked beside the package only for a configuration with `require.signature`; a stack
without one ships exactly what it shipped before and keeps its cold start.

Everything staged ships with its bytecode, compiled by the runtime's Python (`python3.13`, found as
the runtime harness finds it: infra.lambda_runtime.find_python), so a cold start reads .pyc files
instead of compiling ~6,300 lines of source (BENCHMARKS.md, figure 3). The .pyc files are
*unchecked-hash* (PEP 552): Python loads them without looking at the source at all. A timestamp
.pyc is trusted only while the source's mtime and size match the ones recorded in it, and a Lambda
zip's mtimes are not the staged files': the CDK CLI zips every file of an asset with the DOS time
1980-01-01 00:00 (aws-cdk 2.1148's `writeZipFile`, "reset dates to get the same hash"), so
timestamp .pycs would never match and every cold start would compile the source again, in memory
(the code directory is read-only). Bytecode is only read by the Python version that wrote it (its
cache tag, `cpython-313`, is in the file name): without a python3.13 here the asset ships none, and
synthesis warns.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

from infra.lambda_runtime import PYTHON_ENV, PYTHON_VERSION, find_python
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


def stage_function_code(
    config_json: str,
    staging_dir: Path,
    source_dir: Path = PACKAGE_SOURCE_DIR,
    *,
    verifier_wheels: Path | None = None,
) -> Path:
    """Write `staging_dir/promoter/` (the package, filtered) with the config as JSON; return staging_dir.
    With `verifier_wheels` (a folder of wheels, `fetch_verifier_wheels`), unpack them beside it.

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
    if verifier_wheels is not None:
        unpack_wheels(verifier_wheels, staging_dir)
    compile_bytecode(staging_dir)
    return staging_dir


# The bytecode the asset ships: `python -m compileall`'s invalidation mode (see the module's doc).
BYTECODE_INVALIDATION_MODE = "unchecked-hash"
COMPILE_TIMEOUT_SECONDS = 600


class NoLambdaBytecodeWarning(UserWarning):
    """The asset ships without bytecode: no interpreter of the runtime's Python version was found."""


def compile_bytecode(staging_dir: Path) -> str | None:
    """Compiles every module under `staging_dir` into `__pycache__/*.cpython-313.pyc` with the
    runtime's Python; returns that interpreter, or None (and warns) when there is none here.
    File names in the bytecode are relative to `staging_dir`, so the asset (and its hash) does not
    depend on where it was staged. Raises RuntimeError when a module does not compile."""
    python = find_python()
    if python is None:
        warnings.warn(
            f"python{PYTHON_VERSION} not found (set {PYTHON_ENV}): the Lambda asset ships without "
            f"bytecode, so every cold start compiles the package's source",
            NoLambdaBytecodeWarning,
            stacklevel=2,
        )
        return None
    command = [
        python, "-I", "-m", "compileall", "-q", "--invalidation-mode", BYTECODE_INVALIDATION_MODE,
        "-s", str(staging_dir), str(staging_dir),
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the Lambda asset's bytecode could not be compiled: {done.stdout[-2000:]}")
    return python


# The function's platform (infra.construct: python3.13 on arm64; Amazon Linux 2023, glibc 2.34, so
# manylinux_2_28 wheels load) as pip names it.
LAMBDA_WHEEL_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
LAMBDA_PYTHON_VERSION = "3.13"
LAMBDA_IMPLEMENTATION = "cp"
# What the runtime provides already (and the Powertools layer leaves out for that reason): the
# runtime's own copies stay in charge, so botocore keeps the urllib3 it was released with.
RUNTIME_PROVIDED_DISTRIBUTIONS = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python_dateutil", "six", "urllib3"}
)
SIGNATURES_EXTRA = "signatures"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# Where downloaded wheels are kept between syntheses (one folder per requirements and platform).
WHEEL_CACHE_ENV = "PROMOTER_WHEEL_CACHE"
DEFAULT_WHEEL_CACHE = Path.home() / ".cache" / "ecr-image-promoter" / "lambda-wheels"
_COMPLETE_MARKER = ".complete"
PIP_DOWNLOAD_TIMEOUT_SECONDS = 600


def verifier_requirements(pyproject: Path = PYPROJECT) -> tuple[str, ...]:
    """The `signatures` extra of pyproject.toml: the one place the verifiers' dependencies are named."""
    with pyproject.open("rb") as handle:
        extras = tomllib.load(handle)["project"]["optional-dependencies"]
    return tuple(extras[SIGNATURES_EXTRA])


def fetch_verifier_wheels(requirements: Sequence[str] | None = None, cache_dir: Path | None = None) -> Path:
    """The folder of wheels for `requirements` (default: the `signatures` extra) on the Lambda's
    platform, downloaded once into the cache. Raises RuntimeError when pip cannot fetch them."""
    wanted = tuple(requirements if requirements is not None else verifier_requirements())
    root = cache_dir or Path(os.environ.get(WHEEL_CACHE_ENV) or DEFAULT_WHEEL_CACHE)
    key = hashlib.sha256(
        json.dumps([wanted, LAMBDA_WHEEL_PLATFORMS, LAMBDA_PYTHON_VERSION]).encode()
    ).hexdigest()[:16]
    folder = root / key
    if (folder / _COMPLETE_MARKER).exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=root))
    platforms = [arg for platform in LAMBDA_WHEEL_PLATFORMS for arg in ("--platform", platform)]
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        *platforms, "--python-version", LAMBDA_PYTHON_VERSION,
        "--implementation", LAMBDA_IMPLEMENTATION, "--only-binary=:all:", "--dest", str(partial), *wanted,
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=PIP_DOWNLOAD_TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"the signature verifiers' wheels could not be fetched: {done.stderr[-2000:]}")
    (partial / _COMPLETE_MARKER).write_text("\n".join(wanted) + "\n")
    try:
        partial.rename(folder)
    except OSError:  # another synthesis filled it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def unpack_wheels(wheel_dir: Path, staging_dir: Path) -> list[str]:
    """Unpacks every wheel of `wheel_dir` (but the runtime's own) into `staging_dir`, as pip would
    install them there (a `.data/purelib|platlib` folder lands at the top); returns the
    distributions unpacked. Raises ValueError for a wheel that would write outside `staging_dir`."""
    unpacked = []
    for wheel in sorted(wheel_dir.glob("*.whl")):
        distribution = wheel.name.split("-", 1)[0].lower()
        if distribution in RUNTIME_PROVIDED_DISTRIBUTIONS:
            continue
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                target = (staging_dir / name).resolve()
                if not target.is_relative_to(staging_dir.resolve()):
                    raise ValueError(f"{wheel.name} holds {name!r}, outside the asset")
            archive.extractall(staging_dir)
        for data in staging_dir.glob("*.data"):
            for kind in ("purelib", "platlib"):
                if (data / kind).is_dir():
                    shutil.copytree(data / kind, staging_dir, dirs_exist_ok=True)
            shutil.rmtree(data)
        unpacked.append(distribution)
    return unpacked
