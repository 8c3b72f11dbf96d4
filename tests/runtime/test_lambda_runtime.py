"""The deployed functions as Lambda really runs them: the synthesized asset read-only, Python 3.13,
the floor botocore, the layer's Powertools, the template's handler strings and environment, the
real runtime interface client; promoting on the local AWS."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from harness import (
    REGION,
    START_GUARD_SECONDS,
    Deployment,
    interpreter,
    lambda_environment,
    make_sandbox,
)

from infra.lambda_runtime import POWERTOOLS_VERSION, SDK_FLOOR
from local_aws import images as im
from local_aws.images import EcrPusher
from promoter.model import attestation as vsa
from promoter.model.outcomes import PROMOTED
from tests.lambda_events import sqs_batch

pytestmark = pytest.mark.integration

PROMOTER_HANDLER = "promoter.handler.handle_queue"
RECONCILE_HANDLER = "promoter.reconcile_handler.handle"
# What the runtime process can import and write, printed as JSON by `python -S -c`.
PROBE = """
import json, os, sys
import boto3, botocore, aws_lambda_powertools
from aws_lambda_powertools.shared.version import VERSION
found = {
    "botocore": botocore.__version__,
    "boto3": boto3.__version__,
    "botocore_dir": os.path.dirname(os.path.dirname(botocore.__file__)),
    "powertools": VERSION,
    "powertools_dir": os.path.dirname(os.path.dirname(aws_lambda_powertools.__file__)),
    "list_image_referrers": hasattr(boto3.client("ecr"), "list_image_referrers"),
}
try:
    open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "promoter", "written-at-run-time"), "w")
    found["task_root_writable"] = True
except PermissionError:
    found["task_root_writable"] = False
with open(os.path.join(os.environ["TMPDIR"], "scratch"), "w") as tmp:
    found["tmp_writable"] = tmp.write("x") == 1
try:
    import yaml  # noqa: F401
    found["yaml"] = True
except ImportError:
    found["yaml"] = False
print(json.dumps(found))
"""


def push_event(repository: str, digest: str, tag: str) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": "000000000000",
        "time": "2026-12-01T00:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": "PUSH",
            "image-tag": tag,
            "manifest-media-type": im.OCI_INDEX,
        },
    }


def test_the_runtime_sees_only_the_floor_sdk_the_layers_powertools_and_a_read_only_task_root(
    deployment: Deployment, lambda_python, runtime_cache, local_aws, tmp_path
):
    function = deployment.functions[PROMOTER_HANDLER]
    sandbox = make_sandbox(function.asset_dir, tmp_path)
    env = lambda_environment(function, sandbox, runtime_cache, local_aws, "127.0.0.1:9")
    out = subprocess.run(
        [*sandbox.prefix, *interpreter(lambda_python), "-c", PROBE],
        cwd=sandbox.task_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_GUARD_SECONDS,
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert (found["botocore"], found["boto3"]) == (SDK_FLOOR, SDK_FLOOR)
    assert found["botocore_dir"] == str(runtime_cache / "runtime")
    assert found["powertools"] == POWERTOOLS_VERSION
    assert found["powertools_dir"] == str(runtime_cache / "layer" / "python")
    assert found["list_image_referrers"] is False  # the floor predates ListImageReferrers
    assert found["task_root_writable"] is False and found["tmp_writable"] is True
    assert found["yaml"] is False  # the asset runs without the CLI's YAML


# Imports a handler module as the runtime does at init and reports, as JSON, what came from where:
# every source file Python compiled (the `compile` audit event names it), and each loaded module
# of the asset with its bytecode file.
IMPORT_PROBE = """
import importlib, json, os, sys
compiled = []
sys.addaudithook(lambda event, args: compiled.append(args[1]) if event == "compile" else None)
importlib.import_module(sys.argv[1])
root = os.environ["LAMBDA_TASK_ROOT"]
modules = {name: getattr(module, "__cached__", None) for name, module in list(sys.modules.items())
           if (getattr(module, "__file__", None) or "").startswith(root)}
print(json.dumps({"compiled": [c for c in compiled if isinstance(c, str) and c.startswith(root)],
                  "modules": modules}))
"""


@pytest.mark.parametrize("handler", [PROMOTER_HANDLER, RECONCILE_HANDLER])
def test_the_handlers_import_the_assets_bytecode_and_compile_none_of_its_source(
    deployment: Deployment, lambda_python, runtime_cache, local_aws, tmp_path, handler
):
    """A cold start reads the shipped python3.13 .pycs: no module of the asset is compiled from
    source, and nothing is written beside them (the code directory is read-only)."""
    function = deployment.functions[handler]
    sandbox = make_sandbox(function.asset_dir, tmp_path)
    before = sorted(p for p in sandbox.task_root.rglob("*"))
    env = lambda_environment(function, sandbox, runtime_cache, local_aws, "127.0.0.1:9")
    out = subprocess.run(
        [*sandbox.prefix, *interpreter(lambda_python), "-c", IMPORT_PROBE, handler.rsplit(".", 1)[0]],
        cwd=sandbox.task_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_GUARD_SECONDS,
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)

    assert found["compiled"] == []
    assert len(found["modules"]) > 10
    for name, cached in found["modules"].items():
        assert cached and cached.endswith(".cpython-313.pyc"), name
        assert Path(cached).is_file(), name
    assert sorted(p for p in sandbox.task_root.rglob("*")) == before


def test_the_promoter_promotes_a_push_with_referrers_and_answers_a_partial_batch(
    deployment: Deployment, start_function, ecr, local_aws
):
    index = im.multi_arch()
    sbom = im.referrer(index)
    pusher = EcrPusher(ecr)
    pusher.push(deployment.source, index, "v1")
    pusher.push(deployment.source, sbom)
    function = start_function(PROMOTER_HANDLER)
    local_aws.control.reset_calls()

    answer = function.invoke(
        sqs_batch(json.dumps(push_event(deployment.source, index.digest, "v1")), "not an EventBridge event")
    )

    assert answer.kind == "response", function.output()
    assert answer.payload == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    calls = local_aws.control.calls()
    promoted = ecr.batch_get_image(
        repositoryName=deployment.target, imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[im.OCI_INDEX]
    )["images"][0]
    assert promoted["imageManifest"].encode() == index.raw  # byte for byte, digest kept
    referrers = ecr.list_image_referrers(
        repositoryName=deployment.target, subjectId={"imageDigest": index.digest}
    )["referrers"]
    # The SBOM, carried, and the promotion's attestation (issue 19), signed with the stack's key.
    attestation = {"artifactType": vsa.BUNDLE_MEDIA_TYPE}
    assert [r["digest"] for r in referrers if r.get("artifactType") != vsa.BUNDLE_MEDIA_TYPE] == [sbom.digest]
    assert [r["annotations"][vsa.ANNOTATION_RULE] for r in referrers if attestation.items() <= r.items()] == [
        "ship"
    ]
    # The floor botocore has no ListImageReferrers: the referrers came from the registry API.
    assert "ListImageReferrers" not in calls and calls["PutImage"] == 1 + len(index.children) + 1 + 1
    errors = [line for line in function.json_lines() if line.get("level") == "ERROR"]
    assert [e["message"] for e in errors] == ["not an EventBridge event: on to the DLQ"]


def test_the_reconcile_handler_runs_and_promotes_what_no_event_announced(
    deployment: Deployment, start_function, ecr
):
    image = im.image((512,))
    EcrPusher(ecr).push(deployment.source, image, "v2")  # its push event was lost
    function = start_function(RECONCILE_HANDLER)

    answer = function.invoke({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})

    assert answer.kind == "response", function.output()
    assert answer.payload["complete"] is True
    assert answer.payload["outcomes"].get(PROMOTED) == 1
    held = ecr.batch_get_image(repositoryName=deployment.target, imageIds=[{"imageTag": "v2"}])["images"]
    assert held[0]["imageId"]["imageDigest"] == image.digest


# Operations newer than the floor that the asset calls, each only behind a guard that falls back.
GUARDED_NEWER_OPERATIONS = {
    # promoter.aws.registry.EcrRegistry.list_referrers: hasattr(), else the registry's referrers API.
    ("ecr", "list_image_referrers"),
    # promoter.aws.registry.EcrRegistry.restore_image: getattr(), else the action fails saying so.
    ("ecr", "update_image_storage_class"),
}
FLOOR_OPERATIONS = """
import json, sys
import botocore.session
from botocore import xform_name
session = botocore.session.get_session()
print(json.dumps({s: [xform_name(o) for o in session.get_service_model(s).operation_names]
                  for s in sys.argv[1:]}))
"""


def test_no_operation_newer_than_the_floor_is_called_unguarded(
    deployment: Deployment, lambda_python, runtime_cache
):
    """Every client call in the asset, by name, against the floor botocore's service models: an
    operation the dev SDK has and the floor lacks must be one of the guarded ones."""
    import ast
    import re

    import botocore.session
    from botocore import xform_name

    asset = deployment.functions[PROMOTER_HANDLER].asset_dir
    sources = [p.read_text() for p in asset.rglob("*.py")]
    services = sorted(
        {s for text in sources for s in re.findall(r"""(?:client|resource)\(\s*["']([a-z0-9-]+)["']""", text)}
    )
    assert "ecr" in services and "dynamodb" in services
    called = {
        node.func.attr
        for text in sources
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    out = subprocess.run(
        [*interpreter(lambda_python), "-c", FLOOR_OPERATIONS, *services],
        env={"PYTHONPATH": str(runtime_cache / "runtime")},
        capture_output=True,
        text=True,
        timeout=START_GUARD_SECONDS,
    )
    assert out.returncode == 0, out.stderr
    floor = {service: set(ops) for service, ops in json.loads(out.stdout).items()}
    session = botocore.session.get_session()
    newer = {
        (service, xform_name(op))
        for service in services
        for op in session.get_service_model(service).operation_names
        if xform_name(op) not in floor[service]
    }
    assert ("ecr", "list_image_referrers") in newer  # the check sees what the floor lacks
    unguarded = {(service, op) for service, op in newer if op in called} - GUARDED_NEWER_OPERATIONS
    assert not unguarded, f"called but not in botocore {SDK_FLOOR}: {sorted(unguarded)}"
