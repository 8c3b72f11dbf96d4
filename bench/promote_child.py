"""Child process: one promotion with the engine, as a warm Lambda runs it; prints one JSON line.

    python -m bench.promote_child SOURCE DIGEST TARGET TAG   (env ATTESTATION_KEY_ARN: attested)

Reports the outcome and copy stats, the time of the promotion itself (imports excluded), and the
process's peak RSS (VmHWM: getrusage's ru_maxrss would keep the parent's peak across fork+exec),
once after the imports and once after the copy, so the copy's own share can be told apart.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model.plan import Action, SourceImage
from promoter.workflows.promote import Promoter


def peak_rss_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match, "no VmHWM in /proc/self/status"
    return int(match.group(1)) * 1024


def attestor() -> Any:
    """With ATTESTATION_KEY_ARN set (figure 6), the Attestor the handler would use, its KMS client
    made now, as a warm Lambda holds it before an event arrives; None (no attestation) without."""
    from promoter import settings

    if not settings.attestation_key_arn():
        return None
    from promoter.aws.attestations import KmsAttestationSigner
    from promoter.aws.kms import kms_client
    from promoter.workflows.attest import attestor_from_environment

    kms = kms_client()
    return attestor_from_environment(None, signer_factory=lambda key: KmsAttestationSigner(key, kms))


def main(argv: list[str]) -> int:
    source, digest, target, tag = argv
    action = Action("bench", SourceImage(source, "bench", digest), target, tag)
    promoter = Promoter(EcrRegistry(make_ecr_client()), attestor=attestor())
    after_imports = peak_rss_bytes()
    started = time.perf_counter()
    result = promoter.promote(action)
    seconds = time.perf_counter() - started
    out = {
        "outcome": result.outcome,
        "reason": result.reason,
        "stats": result.to_dict()["stats"],
        "attestation": result.attestation,
        "seconds": seconds,
        "peak_rss_after_imports": after_imports,
        "peak_rss": peak_rss_bytes(),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
