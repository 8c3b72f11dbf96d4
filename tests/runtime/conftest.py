"""The runtime harness: the functions as Lambda runs them, on the local AWS.

The stack is synthesized (as `cdk synth` builds it) for a configuration naming this session's
repositories; each function's asset directory, handler string and environment come from that
template. A function runs as a `python3.13` process through the real runtime interface client
(`awslambdaric`) against `RuntimeApiStandIn`, with only the floor SDK (runtime dir) and the layer's
Powertools (layer dir) on its path, its code in a read-only copy, and /tmp its only writable place.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import (
    REGION,
    START_GUARD_SECONDS,
    Deployment,
    LambdaProcess,
    SynthesizedFunction,
    interpreter,
    lambda_environment,
    make_sandbox,
)
from lambda_python import ensure_installed, find_python
from runtime_api import RuntimeApiStandIn

from local_aws import LocalAws


@pytest.fixture(scope="session")
def lambda_python() -> str:
    python = find_python()
    if python is None:
        pytest.skip("Python 3.13 not found (set LAMBDA_PYTHON): the Lambda runtime harness cannot run")
    return python


@pytest.fixture(scope="session")
def runtime_cache(lambda_python: str) -> Path:
    return ensure_installed(lambda_python)


@pytest.fixture(scope="session")
def deployment(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """Synthesizes the stack for one rule between two fresh repositories of the local AWS, and
    reads its functions (the stack as `cdk synth` builds it, without the cdk-nag pass, which
    tests/infra runs and which changes nothing in the template)."""
    import aws_cdk as cdk
    import boto3

    from infra.app import build_target_stacks
    from infra.stack import STACK_NAME, PromoterStack
    from local_aws.stack_route import attestation_key
    from promoter.model.config import parse_config

    suffix = uuid.uuid4().hex[:8]
    source, target = f"runtime/dev-{suffix}", f"runtime/prod-{suffix}"
    ecr = boto3.client(
        "ecr",
        endpoint_url=local_aws.endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    for name in (source, target):
        ecr.create_repository(repositoryName=name)
    # The stack's attestation key, as `promoter local` creates it (LOCAL_VALUES names its alias).
    kms = boto3.client(
        "kms",
        endpoint_url=local_aws.endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    attestation_key(kms)
    config = parse_config(
        {
            "rules": [
                {
                    "name": "ship",
                    "source": {"repository": source, "tags": ["v*"]},
                    "targets": [{"repository": target, "tags": ["{tag}"]}],
                }
            ]
        }
    )
    outdir = tmp_path_factory.mktemp("cdk.out")
    # The CLI turns asset metadata on: it names each function's staged asset directory.
    app = cdk.App(outdir=str(outdir), context={"aws:cdk:enable-asset-metadata": True})
    PromoterStack(app, STACK_NAME, config=config)
    build_target_stacks(app, config)
    app.synth()
    template = json.loads((outdir / f"{STACK_NAME}.template.json").read_text())
    functions = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        props = resource["Properties"]
        functions[props["Handler"]] = SynthesizedFunction(
            handler=props["Handler"],
            environment=props["Environment"]["Variables"],
            asset_dir=outdir / resource["Metadata"]["aws:asset:path"],
            timeout_seconds=int(props["Timeout"]),
        )
    return Deployment(source, target, functions)


@pytest.fixture
def start_function(
    deployment: Deployment, lambda_python: str, runtime_cache: Path, local_aws: LocalAws, tmp_path: Path
) -> Iterator[Any]:
    """Starts a function by its handler string; stops every started one afterwards."""
    started: list[LambdaProcess] = []

    def start(handler: str) -> LambdaProcess:
        function = deployment.functions[handler]
        sandbox = make_sandbox(function.asset_dir, tmp_path / f"fn-{len(started)}")
        api = RuntimeApiStandIn(f"arn:aws:lambda:{REGION}:000000000000:function:harness").start()
        log = tmp_path / f"fn-{len(started)}.log"
        env = lambda_environment(function, sandbox, runtime_cache, local_aws, api.address)
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [*sandbox.prefix, *interpreter(lambda_python), "-m", "awslambdaric", handler],
                cwd=sandbox.task_root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(LambdaProcess(api, process, log, function.timeout_seconds))
        return started[-1]

    yield start
    for function in started:
        function.process.kill()
        function.process.wait(START_GUARD_SECONDS)
        function.api.stop()
