"""Identities that mean what they say (issue 18.7): a Sigstore identity matching every subject or
issuer is refused, identity patterns run on the linear-time engine (at validation and when a real
certificate is matched), and the typed forms for GitHub Actions and GitLab CI build the exact
identity Fulcio writes, which a real GitHub Actions bundle then passes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from promoter.exceptions import ConfigError
from promoter.gates.signatures import Identity, SignatureRejected
from promoter.gates.signatures._x509 import load_pem_certificates, match_identity
from promoter.gates.signatures.sigstore_bundle import verify_bundle
from promoter.model.config import SigstoreIdentity, parse_config
from promoter.model.patterns import check_regex

REPO_ROOT = Path(__file__).parents[2]
ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
# The real GitHub Actions bundle of tests/fixtures/signatures/sigstore-bundle (see its README).
WHEEL_DIGEST = "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
WORKFLOW_SAN = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Verification is offline: any connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _config(identity: dict[str, Any]) -> dict[str, Any]:
    return {
        "rules": [
            {
                "name": "release",
                "source": {"repository": "app-staging", "tags": ["v*"]},
                "targets": [{"repository": "app-prod"}],
                "require": {"signature": {"sigstore": {"identities": [identity]}}},
            }
        ]
    }


def _identity(identity: dict[str, Any]) -> SigstoreIdentity:
    (rule,) = parse_config(_config(identity)).rules
    assert rule.signature_gate is not None
    (parsed,) = rule.signature_gate.sigstore_identities
    return parsed


def _refusal(identity: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(identity))
    return caught.value


FIELD = "require.signature.sigstore.identities[0]"
EXACT_SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1"


@pytest.mark.parametrize("pattern", ["re:.*", "re:.+", r"re:[\s\S]*", "re:(.|x)+", "re:[^@]*", "re:.*@.*"])
@pytest.mark.parametrize("key", ["subject", "issuer"])
def test_an_identity_matching_everyone_is_refused(pattern, key):
    identity = {"issuer": ACTIONS_ISSUER, "subject": EXACT_SUBJECT, key: pattern}
    error = _refusal(identity)
    assert error.field == f"{FIELD}.{key}"
    assert f"matches every {key}" in error.reason


@pytest.mark.parametrize(
    ("key", "pattern", "why"),
    [
        ("subject", "re:https://.*", "mallory-0/app"),
        ("subject", r"re:https://github\.com/.*", "mallory-0/app"),
        ("subject", r"re:https://gitlab\.com/.+", "mallory-0/app"),
        ("subject", r"re:.*@gmail\.com", "mallory-0@gmail.com"),
        ("issuer", "re:https://.*", "takes both"),
        ("issuer", r"re:https://(gitlab\.com|accounts\.google\.com)", "takes both"),
    ],
)
def test_an_identity_anyone_can_get_or_any_issuer_is_refused(key, pattern, why):
    identity = {"issuer": ACTIONS_ISSUER, "subject": EXACT_SUBJECT, key: pattern}
    error = _refusal(identity)
    assert error.field == f"{FIELD}.{key}"
    assert f"matches every {key}" in error.reason and why in error.reason


def test_an_anchored_escaped_identity_pattern_is_accepted():
    subject = r"re:https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v[0-9.]+"
    assert _identity({"issuer": ACTIONS_ISSUER, "subject": subject}).subject == subject
    assert _identity({"issuer": r"re:https://token\.actions\.githubusercontent\.com", "subject": subject})
    owner = r"re:https://github\.com/acme/[a-z-]+/\.github/workflows/release\.yml@refs/tags/v.*"
    assert _identity({"issuer": ACTIONS_ISSUER, "subject": owner}).subject == owner


@pytest.mark.parametrize("pattern", [r"re:(a)\1", "re:(?=x)x", "re:(?i)x", r"re:\bx"])
def test_identity_patterns_are_checked_by_the_linear_time_engine(pattern):
    error = _refusal({"issuer": ACTIONS_ISSUER, "subject": pattern})
    assert error.field == f"{FIELD}.subject" and "linear time" in error.reason


def test_a_real_certificate_is_matched_on_the_linear_time_engine(signature_fixtures):
    """Python's `re` would accept the lookahead and match; the linear-time engine cannot run it, so
    the identity is refused ("cannot be checked" at the gate), never matched by backtracking."""
    pem = (signature_fixtures / "cosign-simple" / "keyless-fulcio-rekor" / "certificate.pem").read_text()
    (leaf,) = load_pem_certificates(pem, "leaf")
    oauth = "https://github.com/login/oauth"
    assert match_identity(leaf, [Identity(oauth, r"re:mitr@redhat\.com")]) == f"mitr@redhat.com ({oauth})"
    with pytest.raises(SignatureRejected, match="matches no accepted identity"):
        match_identity(leaf, [Identity(oauth, r"re:mitr@redhat\.co")])
    with pytest.raises(ValueError, match="linear time"):
        match_identity(leaf, [Identity(oauth, r"re:(?=m)mitr@redhat\.com")])


def test_the_github_form_builds_the_exact_issuer_and_subject():
    identity = _identity(
        {
            "github": {
                "repository": "org/repo",
                "workflow": ".github/workflows/release.yml",
                "ref": "refs/heads/main",
            }
        }
    )
    assert identity == SigstoreIdentity(
        ACTIONS_ISSUER, "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main"
    )


def test_a_github_ref_pattern_varies_only_where_its_star_stands():
    identity = _identity(
        {
            "github": {
                "repository": "org/repo",
                "workflow": ".github/workflows/release.yml",
                "ref": "refs/tags/v*",
            }
        }
    )
    assert identity.issuer == ACTIONS_ISSUER
    regex = check_regex(identity.subject)
    assert regex.matches("https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1.2.3")
    for other in (
        "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/v1",  # a branch
        "https://github.com/org/repo2/.github/workflows/release.yml@refs/tags/v1",  # another repo
        "https://github.com/org/repo/.github/workflows/other.yml@refs/tags/v1",  # another workflow
        "https://githubXcom/org/repo/.github/workflows/release.yml@refs/tags/v1",  # dots are escaped
        "https://github.com/org/repo/.github/workflows/releaseXyml@refs/tags/v1",
    ):
        assert not regex.matches(other), other


def test_the_gitlab_form_builds_the_san_fulcio_writes_for_gitlab_ci():
    assert _identity({"gitlab": {"project": "group/sub/project", "ref": "refs/tags/v1"}}) == SigstoreIdentity(
        "https://gitlab.com", "https://gitlab.com/group/sub/project//.gitlab-ci.yml@refs/tags/v1"
    )
    self_managed = {
        "project": "team/app",
        "ref": "refs/heads/main",
        "ci_config": "ci/release.yml",
        "server": "https://gitlab.example.com",
    }
    assert _identity({"gitlab": self_managed}) == SigstoreIdentity(
        "https://gitlab.example.com", "https://gitlab.example.com/team/app//ci/release.yml@refs/heads/main"
    )


@pytest.mark.parametrize(
    ("identity", "field", "reason"),
    [
        (
            {
                "github": {
                    "repository": "org",
                    "workflow": ".github/workflows/r.yml",
                    "ref": "refs/heads/main",
                }
            },
            "github.repository",
            "'owner/repository'",
        ),
        (
            {"github": {"repository": "org/repo", "workflow": "release.yml", "ref": "refs/heads/main"}},
            "github.workflow",
            ".github/workflows/",
        ),
        (
            {"github": {"repository": "org/repo", "workflow": ".github/workflows/r.yml"}},
            "github.ref",
            "refs/heads/",
        ),
        (
            {"github": {"repository": "org/repo", "workflow": ".github/workflows/r.yml", "ref": "main"}},
            "github.ref",
            "refs/heads/",
        ),
        (
            {
                "github": {
                    "repository": "org/repo",
                    "workflow": ".github/workflows/r.yml",
                    "ref": "refs/heads/main",
                    "branch": "x",
                }
            },
            "github.branch",
            "unknown key",
        ),
        (
            {
                "gitlab": {
                    "project": "group/project",
                    "ref": "refs/heads/main",
                    "server": "http://gitlab.local",
                }
            },
            "gitlab.server",
            "https://",
        ),
    ],
)
def test_a_typed_form_with_a_bad_part_is_refused_naming_it(identity, field, reason):
    error = _refusal(identity)
    assert error.field == f"{FIELD}.{field}" and reason in error.reason


def test_a_typed_form_stands_alone():
    github = {"repository": "org/repo", "workflow": ".github/workflows/r.yml", "ref": "refs/heads/main"}
    error = _refusal({"github": github, "subject": EXACT_SUBJECT})
    assert error.field == FIELD and "give it alone" in error.reason


def test_the_typed_form_survives_staging_as_json():
    data = _config(
        {
            "github": {
                "repository": "org/repo",
                "workflow": ".github/workflows/release.yml",
                "ref": "refs/tags/v*",
            }
        }
    )
    config = parse_config(data)
    assert parse_config(config.to_dict()) == config


def test_a_real_github_actions_bundle_passes_the_typed_identity(signature_fixtures):
    bundle = (
        signature_fixtures
        / "sigstore-bundle"
        / "github-actions-digest-only"
        / "bundle_v3_github.whl.sigstore"
    ).read_bytes()
    typed = _identity(
        {
            "github": {
                "repository": "trailofbits/rfc8785.py",
                "workflow": ".github/workflows/release.yml",
                "ref": "refs/tags/v*",
            }
        }
    )
    verified = verify_bundle(bundle, WHEEL_DIGEST, [Identity(typed.issuer, typed.subject)])
    assert verified.identity == f"{WORKFLOW_SAN} ({ACTIONS_ISSUER})"
    other_repo = _identity(
        {
            "github": {
                "repository": "trailofbits/other",
                "workflow": ".github/workflows/release.yml",
                "ref": "refs/tags/v*",
            }
        }
    )
    with pytest.raises(SignatureRejected, match="matches no accepted identity"):
        verify_bundle(bundle, WHEEL_DIGEST, [Identity(other_repo.issuer, other_repo.subject)])


def test_validate_and_synth_refuse_an_identity_matching_everyone_with_file_and_line(tmp_path):
    config = tmp_path / "promotion.yaml"
    config.write_text(
        "rules:\n"
        "  - name: release\n"
        "    source: {repository: app-staging, tags: ['v*']}\n"
        "    targets: [{repository: app-prod}]\n"
        "    require:\n"
        "      signature:\n"
        "        sigstore:\n"
        "          identities:\n"
        "            - issuer: https://token.actions.githubusercontent.com\n"
        "              subject: 're:.*'\n"
    )
    run = {"cwd": REPO_ROOT, "capture_output": True, "text": True, "timeout": 120}
    validate = subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", "validate", "--config", str(config)], **run
    )
    synth = subprocess.run(
        [sys.executable, "app.py"],
        env={
            **os.environ,
            "CDK_OUTDIR": str(tmp_path / "out"),
            "CDK_CONTEXT_JSON": json.dumps({"config": str(config)}),
        },
        **run,
    )
    for result in (validate, synth):
        assert result.returncode == 2, result.stderr
        assert f"{config}:10" in result.stderr and "matches every subject" in result.stderr
        assert "Traceback" not in result.stderr
