"""A break-glass `promoter promote` against the local AWS with no ATTESTATION_KEY_ARN: attested with
the local stack's key (the one `promoter attestation key` reads there), not a note that promotions
are not attested. Real processes, the local AWS's KMS and ECR."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from local_aws import images as im
from promoter import settings

pytestmark = pytest.mark.integration

PROMOTER = [sys.executable, "-m", "promoter_cli.main"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != settings.ATTESTATION_KEY_ENV}
    return subprocess.run([*PROMOTER, *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_break_glass_promotion_on_the_local_aws_is_attested_with_the_local_stacks_key(
    aws_env, ecr, unique_name, pusher
):
    source, target = unique_name("dev"), unique_name("prod")
    for name in (source, target):
        ecr.create_repository(repositoryName=name)
    image = im.image((256,))
    pusher.push(source, image, "v1")

    promoted = run("promote", f"{source}:v1", "--to", f"{target}:v1", "--requested-by", "alice")

    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stderr == ""  # no "no attestation key configured" note
    verified = run("attestation", "verify", f"{target}:v1", "--json")  # the key: the local stack's
    assert verified.returncode == 0, (verified.stdout, verified.stderr)
    document = json.loads(verified.stdout)
    [attestation] = document["attestations"]
    assert document["key"] == settings.LOCAL_ATTESTATION_KEY_ALIAS
    assert attestation["subject"]["digest"] == image.digest
