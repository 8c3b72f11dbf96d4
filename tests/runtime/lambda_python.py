"""The runtime harness's Python: a `python3.13` and, beside it, what Lambda puts on its path.

    <cache>/runtime/        the runtime's own SDK at the floor (boto3, botocore) and awslambdaric
    <cache>/layer/python/   the Powertools layer's package (POWERTOOLS_VERSION, without the SDK)

Versions come from infra/lambda_runtime.py; the cache is `.venv/lambda-runtime` (beside the
project's venv) and is rebuilt when they change. `./dev setup` runs this file to install it on a
fresh machine; the harness's fixtures call `ensure_installed` too. Not a test file.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from infra.lambda_runtime import (  # noqa: E402  (run as a script by ./dev)
    AWSLAMBDARIC_VERSION,
    POWERTOOLS_VERSION,
    PYTHON_ENV,
    PYTHON_VERSION,
    SDK_FLOOR,
    find_python,
)

CACHE_DIR = REPO_ROOT / ".venv" / "lambda-runtime"
PIP_TIMEOUT_SECONDS = 600


def runtime_requirements() -> list[str]:
    return [f"botocore=={SDK_FLOOR}", f"boto3=={SDK_FLOOR}", f"awslambdaric=={AWSLAMBDARIC_VERSION}"]


def layer_requirements() -> list[str]:
    return [f"aws-lambda-powertools=={POWERTOOLS_VERSION}"]


def ensure_installed(python: str, cache: Path = CACHE_DIR) -> Path:
    """Installs the floor SDK, awslambdaric and the layer's Powertools for `python` into `cache`
    (once per set of versions; a lock keeps concurrent installs apart). Raises RuntimeError when
    pip fails, with its output."""
    stamp = "\n".join([python, *runtime_requirements(), *layer_requirements()]) + "\n"
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / f".{cache.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = cache / "requirements.txt"
        if marker.exists() and marker.read_text() == stamp:
            return cache
        building = cache.with_name(cache.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        _pip(python, building / "runtime", runtime_requirements())
        _pip(python, building / "layer" / "python", layer_requirements())
        (building / "requirements.txt").write_text(stamp)
        shutil.rmtree(cache, ignore_errors=True)
        building.rename(cache)
    return cache


def _pip(python: str, target: Path, requirements: list[str]) -> None:
    out = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
         "--target", str(target), *requirements],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_SECONDS,
    )
    if out.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(requirements)} failed:\n{out.stdout}\n{out.stderr}")


def main() -> int:
    python = find_python()
    if python is None:
        print(f"== python{PYTHON_VERSION} not found: the Lambda runtime harness (tests/runtime) will be "
              f"skipped (install Python {PYTHON_VERSION}, or set {PYTHON_ENV})")
        return 0
    cache = ensure_installed(python)
    print(f"== Lambda runtime harness: {python}, {' '.join(runtime_requirements() + layer_requirements())} "
          f"in {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
