"""`promoter attestation policy`: the admission policies it writes are what their CRDs' published
schemas admit (tests/fixtures/crds, checked as `kubectl apply` checks by default: a field the schema
does not name is an error), name our predicate type, carry exactly the key they were given, cover
exactly the configuration's target repositories, narrow to a rule or a level, and bad input is
refused with exit 2 before anything is written. Nothing here runs an admission controller."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cel
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from promoter.model.attestation import VERIFIER_ID, VSA_PREDICATE_TYPE, build_statement, rule_level
from promoter.model.config import parse_config
from promoter_cli import attestation_policy as ap
from promoter_cli.main import main
from promoter_cli.resources import NO_REGION_MESSAGE
from tests.crd_schemas import SCHEMAS, schema_errors

KINDS = list(SCHEMAS)
ACCOUNT = "111122223333"
REGION = "eu-west-1"
OWN = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
CONFIG = {
    "rules": [
        {
            "name": "to-staging",
            "source": {"repository": "app-dev", "tags": ["sha-*"]},
            "trigger": "push",
            "targets": [{"repository": "app-staging", "tags": ["{tag}"]}],
        },
        {
            "name": "to-prod",
            "source": {"repository": "app-staging", "tags": ["v*"]},
            "trigger": "request",
            "targets": [
                {"repository": "app-prod", "tags": ["{tag}"]},
                {
                    "repository": "app-prod",
                    "tags": ["{tag}"],
                    "account": "210987654321",
                    "region": "us-west-2",
                },
            ],
        },
        {
            "name": "team-releases",
            "source": {"repository": "team/*", "tags": ["v*"]},
            "trigger": "push",
            "targets": [{"repository": "release/{repository}", "tags": ["{tag}"]}],
        },
    ]
}
ALL_REPOSITORIES = (
    f"{OWN}/app-prod",
    f"{OWN}/app-staging",
    f"{OWN}/release/team/*",
    "210987654321.dkr.ecr.us-west-2.amazonaws.com/app-prod",
)


def new_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def pem() -> str:
    return new_pem()


def request_for(pem: str, rule: str | None = None, level: str | None = None) -> ap.PolicyRequest:
    config = parse_config(CONFIG)
    return ap.PolicyRequest(
        repositories=ap.target_repositories(config, ACCOUNT, REGION, rule),
        public_key_pem=ap.public_key_pem_checked(pem),
        levels=ap.required_levels(config, rule, level),
        name=ap.policy_name(rule, level),
        rule=rule,
    )


def written(kind: tuple[str, str], request: ap.PolicyRequest) -> dict[str, Any]:
    """The policy as the command prints it, read back as a cluster reads the YAML."""
    controller, api = kind
    text = ap.render_policy(ap.build_policy(controller, request, api), ["a comment"])
    assert text.startswith("# a comment\n---\n")
    return yaml.safe_load(text)


def key_data(kind: tuple[str, str], document: dict[str, Any]) -> list[str]:
    spec = document["spec"]
    if kind == (ap.KYVERNO, ap.IMAGE_VALIDATING_POLICY):
        return [a["cosign"]["key"]["data"] for a in spec["attestors"]]
    if kind == (ap.KYVERNO, ap.CLUSTER_POLICY):
        return [
            entry["keys"]["publicKeys"]
            for verify in spec["rules"][0]["verifyImages"]
            for attestation in verify["attestations"]
            for attestor in attestation["attestors"]
            for entry in attestor["entries"]
        ]
    return [a["key"]["data"] for a in spec["authorities"]]


def predicate_types(kind: tuple[str, str], document: dict[str, Any]) -> list[str]:
    spec = document["spec"]
    if kind == (ap.KYVERNO, ap.IMAGE_VALIDATING_POLICY):
        return [a["intoto"]["type"] for a in spec["attestations"]]
    if kind == (ap.KYVERNO, ap.CLUSTER_POLICY):
        return [a["type"] for v in spec["rules"][0]["verifyImages"] for a in v["attestations"]]
    return [a["predicateType"] for auth in spec["authorities"] for a in auth["attestations"]]


def image_patterns(kind: tuple[str, str], document: dict[str, Any]) -> list[str]:
    spec = document["spec"]
    if kind == (ap.KYVERNO, ap.IMAGE_VALIDATING_POLICY):
        return [m["glob"] for m in spec["matchImageReferences"]]
    if kind == (ap.KYVERNO, ap.CLUSTER_POLICY):
        return [r for v in spec["rules"][0]["verifyImages"] for r in v["imageReferences"]]
    return [i["glob"] for i in spec["images"]]


def level_checks(kind: tuple[str, str], document: dict[str, Any]) -> str:
    """Where the policy says which verifiedLevels it requires, as text."""
    spec = document["spec"]
    if kind == (ap.KYVERNO, ap.IMAGE_VALIDATING_POLICY):
        return "\n".join(v["expression"] for v in spec["validations"] if "verifiedLevels" in v["expression"])
    if kind == (ap.KYVERNO, ap.CLUSTER_POLICY):
        conditions = spec["rules"][0]["verifyImages"][0]["attestations"][0]["conditions"][0]["all"]
        return json.dumps([c["value"] for c in conditions if c["key"] == "{{ verifiedLevels }}"])
    data = spec["authorities"][0]["attestations"][0]["policy"]["data"]
    return "\n".join(line for line in data.splitlines() if "list.Contains" in line)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k[0]}-{k[1]}")
@pytest.mark.parametrize(
    ("rule", "level"), [(None, None), ("to-prod", None), (None, "ECR_PROMOTER_GATE_SCAN")]
)
def test_generated_policy_is_valid_against_the_published_crd_schema(
    kind: tuple[str, str], rule: str | None, level: str | None, pem: str
) -> None:
    document = written(kind, request_for(pem, rule, level))
    assert schema_errors(kind, document) == []
    _, api_version, crd_kind = SCHEMAS[kind]
    assert (document["apiVersion"], document["kind"]) == (api_version, crd_kind)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_the_strict_schema_check_refuses_a_misspelt_field_and_a_wrong_type(
    kind: tuple[str, str], pem: str
) -> None:
    """The check above can fail: a field the CRD does not have, or a value of the wrong type, is an error."""
    document = written(kind, request_for(pem))
    document["spec"]["imageReferencez"] = ["x"]
    assert any("imageReferencez" in error for error in schema_errors(kind, document))
    document = written(kind, request_for(pem))
    spec = document["spec"]
    if kind == (ap.KYVERNO, ap.IMAGE_VALIDATING_POLICY):
        spec["attestors"][0]["cosign"]["ctlog"]["insecureIgnoreTlog"] = "yes"
    elif kind == (ap.KYVERNO, ap.CLUSTER_POLICY):
        spec["rules"][0]["verifyImages"][0]["type"] = "Cosign2"
    else:
        spec["images"] = "not a list"
    assert schema_errors(kind, document) != []


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_policy_names_our_predicate_type_and_verifier_and_requires_passed(
    kind: tuple[str, str], pem: str
) -> None:
    document = written(kind, request_for(pem))
    assert predicate_types(kind, document) == [VSA_PREDICATE_TYPE]
    text = json.dumps(document["spec"])
    assert VERIFIER_ID in text
    assert "PASSED" in text


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_policy_carries_exactly_the_key_it_was_given(kind: tuple[str, str], pem: str) -> None:
    document = written(kind, request_for(pem))
    keys = key_data(kind, document)
    assert len(keys) == 1
    given = load_pem_public_key(pem.encode()).public_numbers()
    assert load_pem_public_key(keys[0].encode()).public_numbers() == given
    other = written(kind, request_for(new_pem()))
    assert key_data(kind, other) != keys


def test_kyverno_policies_skip_the_transparency_log_the_promoter_never_writes_to(pem: str) -> None:
    ivp = written((ap.KYVERNO, ap.IMAGE_VALIDATING_POLICY), request_for(pem))
    assert ivp["spec"]["attestors"][0]["cosign"]["ctlog"] == {
        "insecureIgnoreTlog": True,
        "insecureIgnoreSCT": True,
    }
    cpol = written((ap.KYVERNO, ap.CLUSTER_POLICY), request_for(pem))
    verify = cpol["spec"]["rules"][0]["verifyImages"][0]
    keys = verify["attestations"][0]["attestors"][0]["entries"][0]["keys"]
    assert (keys["rekor"], keys["ctlog"]) == ({"ignoreTlog": True}, {"ignoreSCT": True})
    # kyverno#17173: a cache hit skips the attestation conditions; the ClusterPolicy turns it off.
    assert (verify["type"], verify["useCache"]) == ("SigstoreBundle", False)
    cip = written((ap.POLICY_CONTROLLER, ap.IMAGE_VALIDATING_POLICY), request_for(pem))
    authority = cip["spec"]["authorities"][0]
    assert "ctlog" not in authority and authority["signatureFormat"] == "bundle"


def test_target_repositories_are_the_configurations_in_their_own_registries() -> None:
    config = parse_config(CONFIG)
    assert ap.target_repositories(config, ACCOUNT, REGION) == ALL_REPOSITORIES
    assert ap.target_repositories(config, ACCOUNT, REGION, "to-prod") == (
        f"{OWN}/app-prod",
        "210987654321.dkr.ecr.us-west-2.amazonaws.com/app-prod",
    )


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_policy_covers_every_reference_to_the_target_repositories_and_nothing_else(
    kind: tuple[str, str], pem: str
) -> None:
    document = written(kind, request_for(pem))
    patterns = image_patterns(kind, document)
    if kind[0] == ap.KYVERNO:
        expected = [p for repo in ALL_REPOSITORIES for p in (repo, f"{repo}:*", f"{repo}@*")]
    else:
        # policy-controller: `*` stays within a segment, so a repository pattern's `*` becomes `**`.
        expected = [
            p
            for repo in ALL_REPOSITORIES
            for p in (f"{repo.replace('*', '**')}:*", f"{repo.replace('*', '**')}@*")
        ]
    assert patterns == expected
    assert not any("app-dev" in p for p in patterns)  # a source only, never a target


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_rule_filter_narrows_to_its_targets_and_requires_its_level(kind: tuple[str, str], pem: str) -> None:
    document = written(kind, request_for(pem, rule="to-prod"))
    assert {p.split(":")[0].split("@")[0] for p in image_patterns(kind, document)} == {
        "210987654321.dkr.ecr.us-west-2.amazonaws.com/app-prod",
        f"{OWN}/app-prod",
    }
    checks = level_checks(kind, document)
    assert rule_level("to-prod") in checks
    assert rule_level("to-staging") not in checks
    assert document["metadata"]["name"] == "ecr-image-promoter-attestation-to-prod"
    assert level_checks(kind, written(kind, request_for(pem))) in ("", "[]")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_level_filter_requires_the_level_on_every_repository(kind: tuple[str, str], pem: str) -> None:
    document = written(kind, request_for(pem, level="ECR_PROMOTER_GATE_SCAN"))
    assert "ECR_PROMOTER_GATE_SCAN" in level_checks(kind, document)
    assert len(image_patterns(kind, document)) == len(image_patterns(kind, written(kind, request_for(pem))))
    assert document["metadata"]["name"] == "ecr-image-promoter-attestation-gate-scan"
    assert (
        ap.policy_name("To_Prod", "ECR_PROMOTER_GATE_SCAN")
        == "ecr-image-promoter-attestation-to-prod-gate-scan"
    )
    assert len(ap.policy_name("r" * 80, None)) == 63


def test_required_levels_refuse_what_the_promoter_never_writes() -> None:
    config = parse_config(CONFIG)
    assert ap.required_levels(config, "to-prod", rule_level("to-prod")) == (rule_level("to-prod"),)
    for level in ("SLSA_BUILD_LEVEL_3", "ECR_PROMOTER_", rule_level("no-such-rule"), "gate_scan"):
        with pytest.raises(ap.PolicyInputError):
            ap.required_levels(config, None, level)
    with pytest.raises(ap.PolicyInputError, match="to-staging, to-prod, team-releases"):
        ap.required_levels(config, "no-such-rule", None)


# --- the Kyverno policy's CEL, evaluated against the statement the promoter writes -----------------


def promoter_statement(rule: str = "to-prod", gates: tuple[str, ...] = ("scan",)) -> dict[str, Any]:
    """The in-toto Statement the promoter signs for a promotion (promoter.model.attestation)."""
    statement = build_statement(
        subject_digest="sha256:" + "ab" * 32,
        target_registry=OWN,
        target_repository="app-prod",
        target_tag="v1.4.0",
        rule=rule,
        config_digest="cd" * 32,
        config_name="promotion.yaml",
        source=f"{OWN}/app-staging:v1.4.0",
        source_digest="sha256:" + "ab" * 32,
        requested_by="arn:aws:sts::111122223333:assumed-role/Release/alice",
        trigger="request",
        evidence=[{"gate": g, "summary": "passed", "inputs": (), "details": {}} for g in gates],
        time_verified=datetime(2026, 12, 6, tzinfo=UTC),
        version="1.0.0",
    )
    return json.loads(statement)


def ivp_admits(
    document: dict[str, Any], images: list[str], verified: int, statement: dict[str, Any]
) -> list[str]:
    """The messages of the ImageValidatingPolicy's validations that fail for a pod running `images`,
    every one of which Kyverno found `verified` attestors for and extracted `statement` from (its
    verifyAttestationSignatures and extractPayload, stood in for: what is tested is our CEL)."""
    spec = document["spec"]
    context = cel.Context()
    context.add_variable(
        "images", {"containers": images[:1], "initContainers": images[1:], "ephemeralContainers": []}
    )
    context.add_variable("attestations", {a["name"]: a for a in spec["attestations"]})
    context.add_variable("attestors", {a["name"]: a for a in spec["attestors"]})
    context.add_function("verifyAttestationSignatures", lambda image, attestation, attestors: verified)
    context.add_function("extractPayload", lambda image, attestation: statement)
    return [v["message"] for v in spec["validations"] if cel.evaluate(v["expression"], context) is not True]


def test_image_validating_policy_admits_the_promoters_statement_and_nothing_less(pem: str) -> None:
    images = [f"{OWN}/app-prod:v1.4.0", f"{OWN}/app-prod@sha256:{'ab' * 32}"]
    plain = written((ap.KYVERNO, ap.IMAGE_VALIDATING_POLICY), request_for(pem))
    narrowed = written(
        (ap.KYVERNO, ap.IMAGE_VALIDATING_POLICY), request_for(pem, "to-prod", "ECR_PROMOTER_GATE_SCAN")
    )
    ours = promoter_statement()
    assert ivp_admits(plain, images, 1, ours) == []
    assert ivp_admits(narrowed, images, 1, ours) == []
    assert ivp_admits(plain, images, 0, ours) == [plain["spec"]["validations"][0]["message"]]
    failed = promoter_statement()
    failed["predicate"]["verificationResult"] = "FAILED"
    assert "verificationResult is not PASSED" in " ".join(ivp_admits(plain, images, 1, failed))
    other_verifier = promoter_statement()
    other_verifier["predicate"]["verifier"]["id"] = "https://example.com/verifier"
    assert "verifier is not" in " ".join(ivp_admits(plain, images, 1, other_verifier))
    other_rule = promoter_statement(rule="to-staging", gates=())
    assert ivp_admits(plain, images, 1, other_rule) == []
    refused = ivp_admits(narrowed, images, 1, other_rule)
    assert [m.rsplit(" ", 1)[-1] for m in refused] == [rule_level("to-prod"), "ECR_PROMOTER_GATE_SCAN"]


# --- the command: bad input, exit 2, nothing written ------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "promotion.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture
def pem_file(tmp_path: Path, pem: str) -> Path:
    path = tmp_path / "key.pem"
    path.write_text(pem)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rule", "no-such-rule"], "no rule named 'no-such-rule'"),
        (["--level", "SLSA_BUILD_LEVEL_2"], "writes only its own levels"),
        (["--level", "ECR_PROMOTER_RULE_gone"], "names no rule of the configuration"),
        (
            ["--kyverno-api", "clusterpolicy", "--for", "policy-controller"],
            "--kyverno-api is for --for kyverno",
        ),
    ],
)
def test_bad_filter_is_refused_with_exit_2_and_nothing_written(
    extra: list[str], message: str, config_file: Path, pem_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["attestation", "policy", "--for", "kyverno", "--config", str(config_file), "--key", str(pem_file)]
    assert main([*argv, *extra]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err and err.count("\n") == 1


def test_a_key_that_is_not_a_p256_public_key_is_refused_with_exit_2(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rsa_like = tmp_path / "not-a-key.pem"
    rsa_like.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    argv = ["attestation", "policy", "--for", "kyverno", "--config", str(config_file), "--key", str(rsa_like)]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "not a PEM public key" in err


def test_an_unreadable_configuration_is_refused_with_exit_2(
    tmp_path: Path, pem_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "attestation",
        "policy",
        "--for",
        "kyverno",
        "--config",
        str(tmp_path / "missing.yaml"),
        "--key",
        str(pem_file),
    ]
    assert main(argv) == 2
    assert "invalid configuration" in capsys.readouterr().err


def test_an_unknown_controller_is_refused_by_argparse_with_exit_2(config_file: Path, pem_file: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "attestation",
                "policy",
                "--for",
                "gatekeeper",
                "--config",
                str(config_file),
                "--key",
                str(pem_file),
            ]
        )
    assert exit_info.value.code == 2


def test_no_region_is_the_one_line_every_command_gives_exit_2(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The key from KMS without a region: main's message (exit 2), not a KMS refusal (exit 1)."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    key = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000"
    argv = ["attestation", "policy", "--for", "kyverno", "--config", str(config_file), "--key-arn", key]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [f"promoter: {NO_REGION_MESSAGE}"]
