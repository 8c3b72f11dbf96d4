"""The JSON Schema and the parser give the same answer on every configuration the repository holds.

The parser (`promoter.model.config`) is the authority. Where it accepts, the schema must accept (an
editor must never flag a configuration `promoter validate` takes); where it refuses, the schema must
refuse too, unless the refusal is one of `config_schema.VALIDATOR_ONLY_CHECKS`, which no JSON Schema
can make (each is recognised below by its field and reason, and each must be met at least once, so
the list cannot keep a check that no longer exists).

The configurations: the sample `promotion.yaml`; every YAML example in README.md and docs/*.md (a
list of rules is read as the `rules:` it belongs under); every configuration written as a literal in
the tests (YAML text or a dict); and every configuration the configuration tests hand to the parser
while they run (tests/unit/record_configs.py records them), the bad ones included.
"""

from __future__ import annotations

import ast
import copy
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from promoter.exceptions import ConfigError
from promoter.model.config import ENCRYPTION_TYPES, SEVERITIES, TAG_MUTABILITIES, TRIGGERS, parse_config
from promoter.model.config_file import read_config_data
from promoter_cli.config_schema import VALIDATOR_ONLY_CHECKS, build_schema
from tests.unit.record_configs import RECORD_ENV

REPO_ROOT = Path(__file__).parents[2]
SCHEMA = Draft7Validator(build_schema())
RECORDED_TESTS = sorted((REPO_ROOT / "tests" / "unit").glob("test_config*.py"))

# How each check of VALIDATOR_ONLY_CHECKS reads: (field, reason), each a regex (None: any field).
VALIDATOR_ONLY_REFUSALS: dict[str, tuple[str | None, str]] = {
    "file": (None, r"not valid YAML|duplicate key|bytes, over the|nested deeper|more than [\d,]+ values"),
    "duplicate-rule-names": (r"name", r"^duplicate rule name$"),
    "regex-safety": (
        r"source\.(repository|tags\[\d+\])|require\.signature\.sigstore\.identities\[\d+\]\.(issuer|subject)",
        r"^bad regex |^bad glob '[^']*': (?!character)|^named group '\w+' would shadow",
    ),
    "templates": (
        r"targets\[\d+\]\.(repository|tags\[\d+\])",
        r"uses unknown field|is malformed|takes no format spec|renders .* for a matching image|"
        r"comes from the pushed tag|can render a '/'|^\{digest\} renders|would form the whole",
    ),
    "semantic-versions": (
        r"source\.tags|targets\[\d+\]\.tags\[\d+\]",
        r"no source tag pattern can match a semantic version|^floating tag .* IMMUTABLE",
    ),
    "protected-templates": (r"targets\[\d+\]\.(protect|repository)", r"^a protected target.* needs an exact"),
    "source-literal-part": (r"source\.repository", r"^'re:.*' has no literal part"),
    "identity-names-everyone": (
        r"require\.signature\.sigstore\.identities\[\d+\]\.(issuer|subject)",
        r"^'re:.*' matches every (issuer|subject)",
    ),
    "role-account": (r"targets\[\d+\]\.role", r"^role \S+ is in account \d+, not"),
    "pem": (r"require\.signature\..+", r"^not a readable PEM"),
    "cycles": (r"targets", r"^targets feed back into the rule's own source chain"),
    "create-missing": (
        r"targets\[\d+\]\.create_missing(\.image_tag_mutability|\.encryption\.kms_key)?",
        r"^needs an exact repository name|^creates repositories in the promoter's own registry only|"
        r"say it once$|^a KMS key needs encryption type",
    ),
    "shared-target-tags": (r"targets\[\d+\]\.tags\[\d+\]", r"can write the same tag as rule"),
    "approval-quorum": (r"require\.approval\.min", r"^min \d+ can never be reached"),
}


@dataclass(frozen=True)
class Case:
    """One configuration: where it was found, the data a schema sees, and the parser's answer."""

    where: str
    data: Any
    refusal: ConfigError | None


def validator_only_check(refusal: ConfigError) -> str | None:
    """Which of VALIDATOR_ONLY_CHECKS a refusal is, or None when the schema should have made it."""
    for name, (field, reason) in VALIDATOR_ONLY_REFUSALS.items():
        if (field is None or re.fullmatch(field, refusal.field or "")) and re.search(reason, refusal.reason):
            return name
    return None


def disagreements(cases: list[Case], met: set[str] | None = None) -> list[str]:
    """Each case where the schema and the parser disagree, said in one line; adds to `met` the
    validator-only checks that explained a refusal the schema let through."""
    found = []
    for case in cases:
        errors = sorted(SCHEMA.iter_errors(case.data), key=lambda e: list(e.absolute_path))
        if case.refusal is None and errors:
            where = "/".join(map(str, errors[0].absolute_path))
            found.append(
                f"{case.where}: the parser accepts, the schema refuses at {where}: {errors[0].message}"
            )
        elif case.refusal is not None and not errors:
            check = validator_only_check(case.refusal)
            if check is None:
                found.append(
                    f"{case.where}: the parser refuses ({case.refusal.field}: {case.refusal.reason}), the "
                    "schema accepts: make the schema refuse it, or name the check in VALIDATOR_ONLY_CHECKS"
                )
            elif met is not None:
                met.add(check)
    return found


def text_case(where: str, text: str, tmp_path: Path) -> Case:
    """A configuration written as YAML: read as `promoter validate` reads a file (the file checks
    included), and as an editor sees it (the loaded data)."""
    path = tmp_path / "promotion.yaml"
    path.write_text(text)
    data = yaml.safe_load(text)
    try:
        parse_config(read_config_data(path))
    except ConfigError as exc:
        return Case(where, data, exc)
    return Case(where, data, None)


def data_case(where: str, data: Any) -> Case:
    try:
        parse_config(data)
    except ConfigError as exc:
        return Case(where, data, exc)
    return Case(where, data, None)


def yaml_blocks(markdown: str) -> Iterator[tuple[int, str]]:
    """Each ```yaml block of a Markdown page, with the line it starts on."""
    for match in re.finditer(r"^```yaml\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL):
        yield markdown.count("\n", 0, match.start()) + 2, match.group(1)


def documented_configurations() -> Iterator[tuple[str, str]]:
    """(where, YAML text) of the sample and of each example in README.md and docs/*.md that is a
    configuration, or a list of rules (then read under `rules:`)."""
    yield "promotion.yaml", (REPO_ROOT / "promotion.yaml").read_text()
    for page in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        for line, block in yaml_blocks(page.read_text()):
            try:
                data = yaml.safe_load(block)
            except yaml.YAMLError:
                continue  # not a configuration (a CI workflow fragment with template syntax, say)
            where = f"{page.relative_to(REPO_ROOT)}:{line}"
            if isinstance(data, dict) and "rules" in data:
                yield where, block
            elif isinstance(data, list) and data and all(isinstance(r, dict) and "source" in r for r in data):
                yield where, "rules:\n" + block


def literals_in_tests() -> Iterator[tuple[str, str | dict[str, Any]]]:
    """(where, YAML text or dict) of each configuration written as a literal in a test module."""
    for path in sorted((REPO_ROOT / "tests").rglob("*.py")):
        if path == Path(__file__):
            continue  # its known differences below disagree on purpose
        tree = ast.parse(path.read_text())
        in_f_strings = {
            id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values
        }
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO_ROOT)}:{getattr(node, 'lineno', '?')}"
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in in_f_strings
            ):
                if "rules" not in node.value or "\n" not in node.value:
                    continue
                try:
                    data = yaml.safe_load(node.value)
                except yaml.YAMLError:
                    continue  # broken on purpose: the file checks, which no schema sees
                if isinstance(data, dict) and "rules" in data:
                    yield where, node.value
            elif isinstance(node, ast.Dict) and any(
                isinstance(key, ast.Constant) and key.value == "rules" for key in node.keys
            ):
                try:
                    yield where, ast.literal_eval(node)
                except ValueError:
                    continue  # built from names the test computes: met by the recorded run instead


@pytest.fixture(scope="module")
def documented_cases(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    tmp_path = tmp_path_factory.mktemp("documented")
    return [text_case(where, text, tmp_path) for where, text in documented_configurations()]


@pytest.fixture(scope="module")
def literal_cases(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    tmp_path = tmp_path_factory.mktemp("literals")
    return [
        text_case(where, found, tmp_path) if isinstance(found, str) else data_case(where, found)
        for where, found in literals_in_tests()
    ]


@pytest.fixture(scope="module")
def recorded_cases(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    """Runs the configuration tests with the recorder; each distinct configuration they parsed."""
    out = tmp_path_factory.mktemp("recorded") / "configs.pickle"
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, RECORD_ENV: str(out), "PYTHONPATH": path}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.unit.record_configs",
            "-p",
            "no:cacheprovider",
            "--hypothesis-seed=0",  # the property tests' examples are the same on every run
            *map(str, RECORDED_TESTS),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode in (0, 1), run.stdout[-2000:] + run.stderr[-2000:]  # ran (a failure is theirs)
    cases, seen = [], set()
    for test, data in pickle.loads(out.read_bytes()):
        key = repr(data)
        if key not in seen:
            seen.add(key)
            cases.append(data_case(test, data))
    return cases


def test_the_sample_and_every_documented_example_get_the_same_answer(documented_cases):
    assert any(case.where == "promotion.yaml" and case.refusal is None for case in documented_cases)
    assert len(documented_cases) >= 5  # the sample, the annotated rule, named groups, requesters, gates
    assert disagreements(documented_cases) == []


def test_every_configuration_written_in_the_tests_gets_the_same_answer(literal_cases):
    assert len(literal_cases) >= 20
    assert disagreements(literal_cases) == []


def test_every_configuration_the_config_tests_parse_gets_the_same_answer(recorded_cases):
    accepted = [case for case in recorded_cases if case.refusal is None]
    refused = [case for case in recorded_cases if case.refusal is not None]
    assert len(accepted) >= 50 and len(refused) >= 200, (len(accepted), len(refused))
    assert disagreements(recorded_cases) == []


def test_each_validator_only_check_is_one_the_parser_makes(recorded_cases, documented_cases, literal_cases):
    """Every check the docs call validator-only is recognised here, and met: a refusal the parser
    really makes and the schema lets through. A check that stops being met is stale."""
    assert set(VALIDATOR_ONLY_REFUSALS) == {check.name for check in VALIDATOR_ONLY_CHECKS}
    met: set[str] = set()
    disagreements([*recorded_cases, *documented_cases, *literal_cases], met)
    assert met == set(VALIDATOR_ONLY_REFUSALS)


def test_a_structural_refusal_the_schema_missed_is_reported():
    """The check itself: a refusal with no validator-only reading is a disagreement, and so is an
    acceptance the schema refuses."""
    missed = Case("made-up", {"rules": [{"name": "r"}]}, ConfigError("must be a mapping", field="source"))
    assert disagreements([missed]) == []  # the schema refuses it too: no `source`
    lets_through = Case(
        "made-up",
        {"rules": [{"name": "r", "source": {"repository": "app"}, "targets": [{"repository": "b1"}]}]},
        ConfigError("must be a mapping", rule="r", field="source"),
    )
    assert len(disagreements([lets_through])) == 1
    refused_by_schema = Case("made-up", {"rules": []}, None)
    assert len(disagreements([refused_by_schema])) == 1


# Where the data models differ, not the checks: JSON has one number type (60.0 is an integer to a
# JSON Schema, a float to the parser), and Python's `\d` takes any Unicode digit where the schema
# (and AWS) mean 0-9. Each difference is shown here; the day one stops holding, this test says so.
@pytest.mark.parametrize(
    ("data", "schema_accepts"),
    [
        pytest.param(
            {
                "rules": [
                    {
                        "name": "r",
                        "source": {"repository": "app"},
                        "targets": [{"repository": "b1"}],
                        "require": {"scan": {"max_severity": "HIGH", "timeout_minutes": 60.0}},
                    }
                ]
            },
            True,
            id="a-whole-float-is-an-integer-to-json-schema-the-parser-wants-60-not-60.0",
        ),
        pytest.param(
            {
                "rules": [
                    {
                        "name": "r",
                        "source": {"repository": "app"},
                        "targets": [{"repository": "b1", "account": "\u0661" * 12}],
                    }
                ]
            },
            False,
            id="the-parser-takes-arabic-indic-digits-as-an-account-id-the-schema-only-0-9",
        ),
    ],
)
def test_known_differences_of_the_data_models(data, schema_accepts):
    case = data_case("known difference", data)
    assert (case.refusal is None) != schema_accepts
    assert SCHEMA.is_valid(data) == schema_accepts


def _enum_locations(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, list[Any]]]:
    """(path, values) of every `enum` in the schema; a path steps through lists as `[0]`."""
    if "enum" in schema:
        yield path, schema["enum"]
    for key, value in schema.get("properties", {}).items():
        yield from _enum_locations(value, f"{path}.{key}" if path else key)
    if "items" in schema:
        yield from _enum_locations(schema["items"], f"{path}[0]")


def _with_value(data: Any, path: str, value: Any) -> Any:
    node = data
    steps = re.findall(r"\[(\d+)\]|([^.\[\]]+)", path)
    for index, key in steps[:-1]:
        node = node[int(index)] if index else node[key]
    node[steps[-1][1]] = value
    return data


ENUM_BASE = {
    "rules": [
        {
            "name": "r",
            "source": {"repository": "app", "tags": ["sha-*"]},
            "targets": [{"repository": "b1", "create_missing": {"encryption": {}}}],
            "require": {"scan": {"max_severity": "HIGH"}},
        }
    ]
}


def test_every_enum_value_of_the_schema_is_one_the_parser_takes_and_no_other():
    """The enums (triggers, severities, tag mutabilities) are the parser's own: each value is taken
    by both where the schema offers it, and a value next to them is refused by both."""
    locations = list(_enum_locations(build_schema()))
    assert {path for path, _values in locations} == {
        "rules[0].trigger",
        "rules[0].targets[0].image_tag_mutability",
        "rules[0].targets[0].create_missing.image_tag_mutability",
        "rules[0].targets[0].create_missing.encryption.type",
        "rules[0].require.scan.max_severity",
    }
    # Candidates besides the schema's own: every value the parser names, so a value the schema
    # dropped is met as well.
    candidates = [*SEVERITIES, *TRIGGERS, *TAG_MUTABILITIES, *ENCRYPTION_TYPES, "OTHER"]
    cases = []
    for path, values in locations:
        for value in dict.fromkeys([*values, values[0].lower(), *candidates]):
            data = _with_value(copy.deepcopy(ENUM_BASE), path, value)
            case = data_case(f"{path}={value}", data)
            assert (case.refusal is None) == (value in values), (path, value, case.refusal)
            cases.append(case)
    assert disagreements(cases) == []
