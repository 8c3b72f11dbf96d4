"""The Lambda code asset: the engine package, its bytecode and the staged configuration, nothing else."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra import asset
from infra.asset import PACKAGE_SOURCE_DIR, NoLambdaBytecodeWarning, stage_function_code
from infra.lambda_runtime import find_python
from promoter import settings
from promoter.model.config import parse_config

# What the Lambda runtime (boto3, botocore) and the Powertools layer provide; the rest must be
# the standard library or the package itself, because nothing is bundled.
PROVIDED_AT_RUN_TIME = {"boto3", "botocore", "aws_lambda_powertools", "promoter"}
# The runtime's bytecode: its cache tag names the Python version (python3.13) that alone reads it.
CACHE_TAG = "cpython-313"
# PEP 552's flags word: bit 0 hash-based, bit 1 check_source. Unchecked: the source is never read.
UNCHECKED_HASH_FLAGS = 0b01
# Run by python3.13: its magic number, and each module's source hash as import would compute it.
_PYC_FACTS = r"""
import importlib.util, json, sys
print(json.dumps({"magic": importlib.util.MAGIC_NUMBER.hex(), "hashes": {
    path: importlib.util.source_hash(open(path, "rb").read()).hex() for path in sys.argv[1:]}}))
"""


@pytest.fixture(scope="module")
def asset_dir(synthesized) -> Path:
    """The asset directory the function's S3 key names, inside the cloud assembly."""
    code = synthesized.of_promoter("AWS::Lambda::Function")["Properties"]["Code"]
    asset_hash = code["S3Key"].removesuffix(".zip")
    path = synthesized.outdir / f"asset.{asset_hash}"
    assert path.is_dir()
    return path


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_asset_holds_only_the_promoter_package(asset_dir):
    assert [p.name for p in asset_dir.iterdir()] == ["promoter"]


def test_asset_carries_the_parsed_configuration_as_json(asset_dir, test_config):
    staged = asset_dir / "promoter" / settings.STAGED_CONFIG_FILE
    assert staged.read_text() == test_config.to_json()
    assert parse_config(json.loads(staged.read_text())) == test_config


def _bytecode_of(module: str) -> str:
    """`promoter/x/y.py` -> `promoter/x/__pycache__/y.cpython-313.pyc`."""
    path = Path(module)
    return str(path.parent / "__pycache__" / f"{path.stem}.{CACHE_TAG}.pyc")


def test_asset_has_every_engine_module_its_bytecode_and_no_test_or_cli_code(asset_dir):
    files = _files(asset_dir)
    # Modules, and the trust anchors the signature verifiers ship as package data.
    sources = [*PACKAGE_SOURCE_DIR.rglob("*.py"), *PACKAGE_SOURCE_DIR.glob("gates/signatures/roots/*.crt")]
    expected = {
        f"promoter/{p.relative_to(PACKAGE_SOURCE_DIR)}"
        for p in sources
        if not p.name.startswith("test_") and "__pycache__" not in p.parts
    }
    bytecode = {_bytecode_of(name) for name in expected if name.endswith(".py")} if find_python() else set()
    assert expected <= files
    assert files - expected == {f"promoter/{settings.STAGED_CONFIG_FILE}", *bytecode}
    for name in files:
        assert not name.endswith(".pyc") or name in bytecode  # no other version's, nothing stale
        # A test module's name: test_*.py or *_test.py (attest.py and attestation.py are engine code).
        assert not Path(name).name.startswith(("test_", "conftest")) and "_test." not in Path(name).name
        assert "promoter_cli" not in name and "local_aws" not in name


def test_handler_module_is_in_the_asset(asset_dir, synthesized):
    handler = synthesized.of_promoter("AWS::Lambda::Function")["Properties"]["Handler"]
    module, function = handler.rsplit(".", 1)
    source = asset_dir / (module.replace(".", "/") + ".py")
    tree = ast.parse(source.read_text())
    assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def _module_level_imports(source: str) -> set[str]:
    """Top-level package names imported when the module loads (not inside functions)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_asset_imports_only_what_lambda_and_the_powertools_layer_provide(asset_dir):
    for path in (asset_dir / "promoter").glob("*.py"):
        imported = _module_level_imports(path.read_text())
        foreign = imported - PROVIDED_AT_RUN_TIME - set(sys.stdlib_module_names)
        assert not foreign, f"{path.name} imports {sorted(foreign)}, which the Lambda would not have"


def test_staging_excludes_tests_and_caches_from_a_package(tmp_path):
    source = tmp_path / "src"
    (source / "tests").mkdir(parents=True)
    (source / "__pycache__").mkdir()
    (source / "engine.py").write_text("X = 1\n")
    (source / "test_engine.py").write_text("")
    (source / "tests" / "test_more.py").write_text("")
    (source / "__pycache__" / "engine.cpython-312.pyc").write_bytes(b"")
    (source / "__pycache__" / "engine.cpython-313.pyc").write_bytes(b"stale")
    (source / "__main__.py").write_text("")
    out = stage_function_code('{"rules": []}', tmp_path / "out", source_dir=source)
    shipped = {name for name in _files(out) if not name.endswith(".pyc")}
    assert shipped == {"promoter/engine.py", f"promoter/{settings.STAGED_CONFIG_FILE}"}
    for name in _files(out) - shipped:  # compiled from the staged source, never the source's cache
        assert name == "promoter/__pycache__/engine.cpython-313.pyc"
        assert (out / name).read_bytes() != b"stale"


def test_asset_ships_unchecked_hash_bytecode_of_python_3_13_for_every_module(asset_dir):
    """Each module's .pyc is python3.13's (its magic number), hash-based and unchecked (so Lambda's
    1980 zip mtimes cannot invalidate it), and made from the very source shipped beside it."""
    python = find_python()
    if python is None:
        pytest.skip("python3.13 not found: the asset ships no bytecode (the next test)")
    modules = sorted(asset_dir.rglob("*.py"))
    facts = subprocess.run(
        [python, "-I", "-c", _PYC_FACTS, *map(str, modules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected = json.loads(facts.stdout)
    assert len(modules) > 30
    for module in modules:
        pyc = asset_dir / _bytecode_of(str(module.relative_to(asset_dir)))
        header = pyc.read_bytes()[:16]
        assert header[:4].hex() == expected["magic"], pyc
        assert int.from_bytes(header[4:8], "little") == UNCHECKED_HASH_FLAGS, pyc
        assert header[8:16].hex() == expected["hashes"][str(module)], pyc


def test_without_python_3_13_the_asset_ships_no_bytecode_and_synthesis_warns(tmp_path, monkeypatch):
    """Never another version's bytecode: none at all, and a warning that says why."""
    monkeypatch.setattr(asset, "find_python", lambda: None)  # this machine, without python3.13
    with pytest.warns(NoLambdaBytecodeWarning, match="python3.13 not found"):
        out = stage_function_code("{}", tmp_path / "out")
    files = _files(out)
    assert "promoter/handler.py" in files
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]


def test_staged_bytecode_does_not_depend_on_where_it_was_staged(tmp_path):
    """The asset's hash is its content's: bytecode names its files relative to the asset."""
    first = stage_function_code("{}", tmp_path / "one")
    second = stage_function_code("{}", tmp_path / "elsewhere" / "two")
    assert _files(first) == _files(second)
    for name in _files(first):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_staging_replaces_what_a_previous_synth_left(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "engine.py").write_text("")
    out = tmp_path / "out"
    (out / "promoter").mkdir(parents=True)
    (out / "promoter" / "removed_module.py").write_text("")
    stage_function_code("{}", out, source_dir=source)
    assert "promoter/removed_module.py" not in _files(out)


@pytest.mark.parametrize("bad", ["not json", "[1, 2]"])
def test_staging_refuses_a_configuration_that_is_not_a_json_object(tmp_path, bad):
    with pytest.raises(ValueError, match="JSON"):
        stage_function_code(bad, tmp_path / "out")


_SMOKE = r"""
import json, sys
asset, event = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, asset)
import promoter.handler as handler

class Context:
    function_name = "promoter"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:promoter"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self):
        return 300_000

record = {
    "messageId": "m-1", "receiptHandle": "r", "body": json.dumps(event), "attributes": {},
    "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue", "awsRegion": "us-east-1",
}
response = handler.handle_queue({"Records": [record]}, Context())
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"yaml", "promoter_cli", "local_aws", "infra"})
print(json.dumps({"response": response, "handler": handler.__file__, "config": str(handler.config_path()),
                  "rules": [r.name for r in handler.runtime().config.rules], "foreign": loaded}))
"""


def test_staged_asset_runs_a_batch_with_the_template_environment(
    asset_dir, synthesized, load_event, tmp_path
):
    """The asset alone (plus what Lambda and the layer provide) imports, reads its staged config
    and answers an SQS batch: a push whose tag no rule takes is handled without any AWS call."""
    variables = synthesized.of_promoter("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    env = {k: v if isinstance(v, str) else f"resolved-{k.lower()}" for k, v in variables.items()}
    staged = asset_dir / "promoter" / settings.STAGED_CONFIG_FILE
    assert env[settings.CONFIG_PATH_ENV] == f"/var/task/promoter/{settings.STAGED_CONFIG_FILE}"
    env[settings.CONFIG_PATH_ENV] = str(staged)  # /var/task here
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # nothing listens: any AWS call would fail the batch
        AWS_EC2_METADATA_DISABLED="true",
        PATH=os.environ.get("PATH", ""),
    )
    event = load_event("ecr-push-oci-fields.json")
    event["detail"]["image-tag"] = "latest"  # team/service is a source, but team-releases takes v* only
    result = subprocess.run(
        # -B: this interpreter is not the runtime's; it must not leave its bytecode in the asset.
        [sys.executable, "-I", "-B", "-c", _SMOKE, str(asset_dir), json.dumps(event)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["handler"].startswith(str(asset_dir))
    assert report["config"] == str(staged)
    assert report["rules"] == ["sample-push", "team-releases", "svc-mirror", "staging-to-prod"]
    assert report["response"] == {"batchItemFailures": []}
    assert report["foreign"] == []  # no PyYAML, no CLI, no local AWS, no CDK in the Lambda
