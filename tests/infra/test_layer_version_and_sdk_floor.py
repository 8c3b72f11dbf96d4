"""One Powertools version for the layer and the tests, one SDK floor, and a layer found per partition."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from infra.lambda_runtime import POWERTOOLS_LAYER_PARAMETER, POWERTOOLS_VERSION, SDK_FLOOR

REPO_ROOT = Path(__file__).parents[2]


def _dependencies() -> dict[str, str]:
    """pyproject.toml's runtime dependencies: name (without extras) -> version specifier."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(.*)", requirement)
        assert match, requirement
        found[match[1].lower()] = match[2].strip()
    return found


def test_powertools_dev_dependency_is_pinned_to_the_layer_version_and_installed():
    assert _dependencies()["aws-lambda-powertools"] == f"=={POWERTOOLS_VERSION}"
    # The tests run what the layer holds: a stale venv (or a loosened pin) fails here.
    assert version("aws-lambda-powertools") == POWERTOOLS_VERSION


def test_sdk_floor_is_the_lower_bound_pyproject_declares():
    dependencies = _dependencies()
    assert dependencies["boto3"] == f">={SDK_FLOOR}"
    assert dependencies["botocore"] == f">={SDK_FLOOR}"


def test_both_functions_take_the_layer_from_powertools_ssm_parameter_of_the_pinned_version(synthesized):
    template = synthesized.template.to_json()
    parameters = {
        name: parameter
        for name, parameter in template["Parameters"].items()
        if parameter.get("Default") == POWERTOOLS_LAYER_PARAMETER
    }
    assert POWERTOOLS_LAYER_PARAMETER.endswith(f"/arm64/python3.13/{POWERTOOLS_VERSION}")
    assert [p["Type"] for p in parameters.values()] == ["AWS::SSM::Parameter::Value<String>"]
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) >= 2  # the promoter and the reconciliation
    for function in functions:
        assert function["Properties"]["Layers"] == [{"Ref": next(iter(parameters))}]
    # No partition, account or layer number is written into the template.
    assert "017000801446" not in str(template) and "arn:aws:lambda" not in str(template)
