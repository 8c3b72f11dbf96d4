"""Cold import of the Lambda asset as the runtime reads it: with and without its bytecode.

Fresh `python3.13 -S` processes (the runtime's Python, found as tests/runtime finds it) whose path
holds only what Lambda's does: the staged asset, the Powertools layer and the runtime's floor SDK
(tests/runtime's cache, `.venv/lambda-runtime`), with the stack's environment and
PYTHONDONTWRITEBYTECODE (Lambda's code directory is read-only: nothing compiled is ever kept).
Interleaved, each run:

- `import boto3` (the reference of figure 3);
- `import promoter.handler` from the asset without bytecode (what the asset shipped before);
- `import promoter.handler` from the asset as `infra.asset.stage_function_code` stages it now
  (unchecked-hash `cpython-313` .pycs beside the sources).

Both assets are staged in this run from the same sources; the first is the second with its
`__pycache__` folders removed. Run: `python -m bench.cold_import [RUNS]` (default 21). Process wall
time on this machine (as figure 3), not Lambda's init phase; the child's CPU time too, which a
loaded machine inflates less.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import median
from infra.asset import PACKAGE_NAME, stage_function_code
from infra.lambda_runtime import PYTHON_VERSION, find_python
from promoter import settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = 21
IMPORT_BOTO3 = "import boto3"
IMPORT_HANDLER = "import promoter.handler"
# Counts the asset's source files Python compiled while importing the handler (the `compile` audit
# event names the file): what the bytecode is there to avoid.
COUNT_COMPILED = """
import os, sys
compiled = []
sys.addaudithook(lambda event, args: compiled.append(args[1]) if event == "compile" else None)
import promoter.handler
print(sum(1 for c in compiled if isinstance(c, str) and c.startswith(sys.argv[1])))
"""


def _runtime_path() -> list[str]:
    """The layer's and the runtime's folders of tests/runtime's cache (installed if missing)."""
    sys.path.insert(0, str(ROOT / "tests" / "runtime"))
    from lambda_python import ensure_installed

    python = find_python()
    assert python is not None
    cache = ensure_installed(python)
    return [str(cache / "layer" / "python"), str(cache / "runtime")]


def _stage(work: Path) -> dict[str, Path]:
    """The asset as staged now, and the same without its bytecode."""
    with_bytecode = stage_function_code('{"rules": []}', work / "with-bytecode")
    sources_only = work / "sources-only"
    shutil.copytree(with_bytecode, sources_only, ignore=shutil.ignore_patterns("__pycache__"))
    return {"sources only (before)": sources_only, "with bytecode (now)": with_bytecode}


def _env(asset: Path, runtime_path: list[str]) -> dict[str, str]:
    """The stack's environment for the function, and the path Lambda builds (task root first)."""
    config = asset / PACKAGE_NAME / settings.STAGED_CONFIG_FILE
    return {
        **settings.function_environment(config_path=str(config)),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": str(asset),
        "PYTHONPATH": os.pathsep.join([str(asset), *runtime_path]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _run(python: str, code: str, env: dict[str, str], *args: str) -> tuple[float, float, str]:
    """(wall seconds, child CPU seconds, stdout) of one fresh `python -S -c code`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [python, "-S", "-c", code, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{code!r} failed: {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else DEFAULT_RUNS
    python = find_python()
    if python is None:
        print(f"python{PYTHON_VERSION} not found (set LAMBDA_PYTHON): nothing to measure", file=sys.stderr)
        return 1
    runtime_path = _runtime_path()
    work = Path(tempfile.mkdtemp(prefix="cold-import-"))
    try:
        assets = _stage(work)
        envs = {name: _env(asset, runtime_path) for name, asset in assets.items()}
        compiled = {
            name: int(_run(python, COUNT_COMPILED, envs[name], str(asset))[2])
            for name, asset in assets.items()
        }
        commands = {"import boto3": (IMPORT_BOTO3, next(iter(envs.values())))}
        commands |= {f"import promoter.handler, {name}": (IMPORT_HANDLER, env) for name, env in envs.items()}
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for run in range(runs):
            order = list(commands)
            order = order[run % len(order) :] + order[: run % len(order)]
            for name in order:
                code, env = commands[name]
                seconds, cpu_seconds, _ = _run(python, code, env)
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    boto3_wall, boto3_cpu = median(wall["import boto3"]), median(cpu["import boto3"])
    print(f"{python} -S, {runs} runs each, interleaved; load average {os.getloadavg()[0]:.1f}")
    print(f"{'command':<58} {'wall median':>12} {'ratio':>7} {'CPU median':>11} {'ratio':>7}  compiled")
    results = {}
    for name in commands:
        w, c = median(wall[name]), median(cpu[name])
        source = next((count for variant, count in compiled.items() if name.endswith(variant)), None)
        print(
            f"{name:<58} {w:>10.3f} s {w / boto3_wall:>6.2f}x {c:>9.3f} s {c / boto3_cpu:>6.2f}x"
            f"  {'-' if source is None else f'{source} source files'}"
        )
        results[name] = {"wall": wall[name], "cpu": cpu[name], "compiled_sources": source}
    print(json.dumps({"python": python, "runs": runs, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
