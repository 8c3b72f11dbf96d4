"""`promoter schema`: the committed schema and reference page are its output, its keys are the
parser's, its defaults the ones the parser applies, and its patterns work in the editor's engine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

import promoter.model.config as config_module
from promoter.model.config import (
    ACCOUNT_ID_PATTERN,
    REGION_PATTERN,
    REQUESTER_ARN_PATTERN,
    ROLE_ARN_PATTERN,
    RULE_NAME_PATTERN,
    SIGNING_PROFILE_ARN_PATTERN,
    parse_config,
)
from promoter_cli.config_reference import render_markdown
from promoter_cli.config_schema import (
    DRAFT_07,
    REFERENCE_PAGE,
    SCHEMA_FILE,
    VALIDATOR_ONLY_CHECKS,
    build_schema,
    char_class,
    ecma_pattern,
    iter_objects,
)

REPO_ROOT = Path(__file__).parents[2]
MODELINE = f"# yaml-language-server: $schema=./{SCHEMA_FILE}"
# Each mapping of the schema and the parser's set of the keys it takes there.
PARSER_KEYS = {
    "": "_TOP_KEYS",
    "defaults": "_DEFAULTS_KEYS",
    "rules[]": "_RULE_KEYS",
    "rules[].source": "_SOURCE_KEYS",
    "rules[].targets[]": ("_TARGET_KEYS", "_REGISTRY_KEYS"),
    "rules[].targets[].create_missing": "_CREATE_MISSING_KEYS",
    "rules[].targets[].create_missing.encryption": "_ENCRYPTION_KEYS",
    "rules[].require": "_REQUIRE_KEYS",
    "rules[].require.scan": "_SCAN_KEYS",
    "rules[].require.signature": "_SIGNATURE_KEYS",
    "rules[].require.signature.cosign": "_COSIGN_KEYS",
    "rules[].require.signature.sigstore": "_SIGSTORE_KEYS",
    "rules[].require.signature.sigstore.identities[]": ("_IDENTITY_KEYS", "_TYPED_IDENTITY_KEYS"),
    "rules[].require.signature.sigstore.identities[].github": "_GITHUB_KEYS",
    "rules[].require.signature.sigstore.identities[].gitlab": "_GITLAB_KEYS",
    "rules[].require.signature.notation": "_NOTATION_KEYS",
    "rules[].require.approval": "_APPROVAL_KEYS",
}


def promoter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_committed_schema_is_what_promoter_schema_prints():
    result = promoter("schema")
    assert result.returncode == 0, result.stderr
    committed = (REPO_ROOT / SCHEMA_FILE).read_text()
    assert result.stdout == committed, f"regenerate: promoter schema > {SCHEMA_FILE}"
    assert json.loads(committed)["$schema"] == DRAFT_07


def test_the_committed_reference_page_is_what_promoter_schema_markdown_prints():
    result = promoter("schema", "--markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (REPO_ROOT / REFERENCE_PAGE).read_text(), (
        f"regenerate: promoter schema --markdown > {REFERENCE_PAGE}"
    )


def test_the_sample_configuration_names_the_schema_on_its_first_line():
    sample = REPO_ROOT / "promotion.yaml"
    assert sample.read_text().splitlines()[0] == MODELINE
    assert (sample.parent / SCHEMA_FILE).is_file()


def test_the_schema_is_a_valid_draft_07_schema():
    Draft7Validator.check_schema(build_schema())


def test_every_mapping_the_parser_reads_has_exactly_its_keys_and_refuses_others():
    objects = dict(iter_objects(build_schema()))
    assert set(objects) == set(PARSER_KEYS)
    for path, names in PARSER_KEYS.items():
        keys = frozenset().union(
            *(getattr(config_module, n) for n in ([names] if isinstance(names, str) else names))
        )
        assert set(objects[path]["properties"]) == keys, path
        assert objects[path]["additionalProperties"] is False, path
        assert all(value.get("description") for value in objects[path]["properties"].values()), path
    # A key set the parser adds (a new mapping) must be given its place in the schema.
    parser_sets = {name for name in vars(config_module) if re.fullmatch(r"_[A-Z_]+_KEYS", name)}
    named = {n for names in PARSER_KEYS.values() for n in ([names] if isinstance(names, str) else names)}
    assert parser_sets == named


def _default(schema: dict[str, Any], path: str) -> Any:
    node = schema
    for step in path.split("."):
        node = node["items"] if step == "[]" else node["properties"][step]
    return node["default"]


def test_the_defaults_the_schema_names_are_the_ones_the_parser_applies():
    schema = build_schema()
    config = parse_config(
        {
            "rules": [
                {
                    "name": "r",
                    "source": {"repository": "app"},
                    "targets": [{"repository": "b1"}],
                    "require": {"scan": {"max_severity": "HIGH"}},
                }
            ]
        }
    )
    rule = config.rules[0]
    assert rule.trigger == _default(schema, "rules.[].trigger")
    assert list(rule.source.tags) == _default(schema, "rules.[].source.tags")
    assert rule.source.restore_archived == _default(schema, "rules.[].source.restore_archived")
    assert list(rule.targets[0].tags) == _default(schema, "rules.[].targets.[].tags")
    assert rule.targets[0].image_tag_mutability == _default(
        schema, "rules.[].targets.[].image_tag_mutability"
    )
    assert rule.scan_gate.timeout_minutes == _default(schema, "rules.[].require.scan.timeout_minutes")
    assert rule.targets[0].protect == _default(schema, "defaults.protect")


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        (ACCOUNT_ID_PATTERN, ["210987654321"], ["21098765432", "2109876543210", "21098765432a"]),
        (
            REGION_PATTERN,
            ["eu-west-1", "us-gov-west-1", "cn-north-1"],
            ["eu-west", "EU-west-1", "eu-west-1a"],
        ),
        (
            ROLE_ARN_PATTERN,
            ["arn:aws:iam::210987654321:role/a", "arn:aws-cn:iam::210987654321:role/path/ci+x=y,z.w@v-u_t"],
            [
                "arn:aws:iam::210987654321:user/a",
                "arn:aws:iam::21098765432:role/a",
                "arn:aws:iam::210987654321:role/",
            ],
        ),
        (
            REQUESTER_ARN_PATTERN,
            ["arn:aws:iam::210987654321:root", "arn:aws:iam::210987654321:role/ci-*"],
            ["arn:aws:iam::*:root", "arn:aws:iam::210987654321:group/x"],
        ),
        (RULE_NAME_PATTERN, ["a", "dev-to-staging", "x" * 64], ["", "-a", "A", "x" * 65, "a_b"]),
        (
            SIGNING_PROFILE_ARN_PATTERN,
            ["arn:aws:signer:us-east-1:123456789012:/signing-profiles/release"],
            ["arn:aws:signer:us-east-1:123456789012:/signing-profiles/r"],
        ),
    ],
)
def test_a_parser_pattern_as_a_schema_pattern_matches_what_the_parser_matches(
    pattern, matching, not_matching
):
    """With `search`, as JSON Schema applies a pattern: anchored, it takes what `fullmatch` takes."""
    converted = re.compile(ecma_pattern(pattern))
    assert (
        "(?P<" not in converted.pattern and "\\d" not in converted.pattern and "\\w" not in converted.pattern
    )
    for text in matching:
        assert pattern.fullmatch(text) and converted.search(text), text
    for text in not_matching:
        assert not pattern.fullmatch(text) and not converted.search(text), text


def test_a_character_class_spells_letter_and_digit_runs_as_ranges_and_dash_last():
    assert char_class(frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-/")) == "[./0-9_a-z-]"
    assert char_class(frozenset("ab]")) == "[\\]ab]"


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from _patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _patterns(value)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


@pytest.mark.skipif(shutil.which("node") is None, reason="node (which the CDK CLI needs) is not installed")
def test_every_pattern_means_the_same_in_the_editors_regex_engine_as_in_python():
    """The YAML language server compiles patterns as ECMA-262 regexes with the `u` flag: each must
    compile there and take the same strings as Python's `re` (which the tests validate with)."""
    schema = build_schema()
    patterns = sorted(set(_patterns(schema)))
    samples = sorted({*_strings(schema), "210987654321", "eu-west-1", "app-dev", "Team", "x\ny", ""})
    script = (
        "const [patterns, samples] = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(patterns.map(p => { const r = new RegExp(p, 'u');"
        " return samples.map(s => r.test(s)); })));"
    )
    result = subprocess.run(
        ["node", "-e", script],
        input=json.dumps([patterns, samples]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    in_node = json.loads(result.stdout)
    for pattern, answers in zip(patterns, in_node, strict=True):
        in_python = [re.search(pattern, sample) is not None for sample in samples]
        assert answers == in_python, pattern
    assert any(any(answers) for answers in in_node)  # the samples do match something


def test_the_reference_page_names_every_key_and_every_validator_only_check():
    page = render_markdown(build_schema())
    for path, obj in iter_objects(build_schema()):
        section = page.split(f"### `{path}`" if path else "### The top level", 1)[1].split("\n### ", 1)[0]
        for key in obj["properties"]:
            assert f"- **`{key}`**" in section, (path, key)
    for check in VALIDATOR_ONLY_CHECKS:
        assert f"- **{check.name}**: {check.what}" in page
