"""Cold start with and without a signature gate: what the first event of a gated rule imports.

Fresh processes, interleaved, no AWS call: each builds the handler's runtime (`handler.runtime()`:
the staged configuration parsed, the clients made) from a configuration
- without any gate (what every stack pays today),
- with a cosign key gate (parsing the config reads the PEM with `cryptography`; the first gated event
  imports the gate and the cosign verifier),
- with a Sigstore keyless gate (as above, plus `sigstore`'s verifier, imported on the first bundle).

Run: `python -m bench.cold_signature [RUNS]` (default 9). Process wall time on this machine, as
figure 3, not Lambda's init phase; and the child's CPU time (user + system), which a loaded machine
inflates far less than wall time.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEFAULT_RUNS = 9
BUILD_RUNTIME = "from promoter import handler; handler.runtime()"
CASES = {
    "no gate": BUILD_RUNTIME,
    "cosign key gate": BUILD_RUNTIME + "; import promoter.gates.signature, promoter.gates.signatures.cosign",
    "sigstore gate": BUILD_RUNTIME
    + "; import promoter.gates.signature, promoter.gates.signatures.sigstore_bundle"
    + "; import sigstore.verify, sigstore.models",
}


def _configs(folder: Path) -> dict[str, Path]:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    rule = {
        "name": "release",
        "source": {"repository": "app-staging"},
        "targets": [{"repository": "app-prod"}],
    }
    identity = {
        "issuer": "https://token.actions.githubusercontent.com",
        "subject": "re:https://github.com/acme/.*",
    }
    requires = {
        "no gate": None,
        "cosign key gate": {"signature": {"cosign": {"keys": [pem]}}},
        "sigstore gate": {"signature": {"sigstore": {"identities": [identity]}}},
    }
    paths = {}
    for name, require in requires.items():
        path = folder / f"{name.replace(' ', '-')}.json"
        path.write_text(json.dumps({"rules": [{**rule, **({"require": require} if require else {})}]}))
        paths[name] = path
    return paths


def main(runs: int = DEFAULT_RUNS) -> dict[str, float]:
    from promoter import settings

    with tempfile.TemporaryDirectory() as folder:
        configs = _configs(Path(folder))
        base = {
            **os.environ,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        wall: dict[str, list[float]] = {name: [] for name in CASES}
        cpu: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(runs):
            for name, code in CASES.items():
                env = {**base, settings.CONFIG_PATH_ENV: str(configs[name])}
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
                wall[name].append(time.perf_counter() - started)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    medians = {name: statistics.median(values) for name, values in wall.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    for name in CASES:
        print(
            f"{name:16s} wall median {medians[name]:.3f} s ({medians[name] / medians['no gate']:.2f}x)  "
            f"cpu median {cpu_medians[name]:.3f} s ({cpu_medians[name] / cpu_medians['no gate']:.2f}x)"
        )
    return cpu_medians


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_RUNS)
