"""The Lambda runtime the promoter is built for, written once (no CDK imports: the runtime harness
in tests/runtime, which `./dev setup` installs, reads it too).

- Python: the stack's `python3.13` on arm64.
- SDK: boto3 and botocore are the runtime's own, chosen by AWS per region and lagging PyPI. The
  promoter claims `SDK_FLOOR` and newer: botocore 1.40.0 is the first whose ECR model has
  `imageTagMutabilityExclusionFilters` (1.39.10 lacks it, and without it ECR's answers lose the
  exclusion filters that decide whether a tag can move). ListImageReferrers comes later (1.41.0):
  below it the adapter reads the registry's OCI referrers API instead (promoter.aws.registry).
  pyproject.toml's lower bounds for boto3/botocore say the same (tests/infra checks).
- Powertools: the layer the stack attaches and the version the tests run are one: `POWERTOOLS_VERSION`,
  pinned in pyproject.toml (tests/infra fails when they drift).
- The interpreter of that version on this machine (`find_python`): the harness runs the asset with
  it, and the asset's bytecode is compiled by it (infra.asset), since a .pyc is only read by the
  Python version that wrote it.
"""

from __future__ import annotations

import functools
import glob
import os
import subprocess
from pathlib import Path

PYTHON_VERSION = "3.13"
# An explicit interpreter of PYTHON_VERSION, if the search in `find_python` cannot find it.
PYTHON_ENV = "LAMBDA_PYTHON"
SDK_FLOOR = "1.40.0"
POWERTOOLS_VERSION = "3.37.0"
# The runtime interface client the harness (tests/runtime) runs the asset with: Lambda's own, on PyPI.
AWSLAMBDARIC_VERSION = "4.2.2"
# Powertools' public SSM parameter that names its layer's ARN in each region and partition where it
# is published (Powertools docs, "Lambda Layer": /aws/service/powertools/python/<arch>/<runtime>/<version>).
POWERTOOLS_LAYER_PARAMETER = (
    f"/aws/service/powertools/python/arm64/python{PYTHON_VERSION}/{POWERTOOLS_VERSION}"
)


def find_python() -> str | None:
    """A Python `PYTHON_VERSION` interpreter: $LAMBDA_PYTHON, `python3.13` on PATH (outside
    pyenv's shims, which may point at another version), then pyenv's and the usual install places;
    None when there is none."""
    return _find_python(
        os.environ.get(PYTHON_ENV, ""), os.environ.get("PATH", ""), os.environ.get("PYENV_ROOT")
    )


@functools.cache
def _find_python(explicit: str, path: str, pyenv_root: str | None) -> str | None:
    name = f"python{PYTHON_VERSION}"
    candidates = [explicit]
    candidates += [str(Path(d) / name) for d in path.split(os.pathsep) if d and "shims" not in d]
    root = pyenv_root or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{root}/versions/{PYTHON_VERSION}*/bin/{name}"), reverse=True)
    candidates += [f"/usr/local/bin/{name}", f"/usr/bin/{name}", f"/opt/python/{PYTHON_VERSION}/bin/{name}"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and _is_version(candidate):
            return candidate
    return None


def _is_version(python: str) -> bool:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == PYTHON_VERSION
