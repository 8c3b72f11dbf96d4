"""Sigstore bundle verification on the real fixtures (sigstore-bundle/), offline."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from pathlib import Path

import pytest

from promoter.gates.signatures import Identity, SignatureRejected, VerifiedSignature
from promoter.gates.signatures.sigstore_bundle import default_trusted_root, verify_bundle

GITHUB_OAUTH = "https://github.com/login/oauth"
ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
ATTESTATION_DIGEST = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
WHEEL_DIGEST = "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
WORKFLOW = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Verification is offline: any connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def bundles(signature_fixtures) -> Path:
    return signature_fixtures / "sigstore-bundle"


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


class Case:
    """One fixture: the bundle, the digest it signs, the signer, and the trusted root it needs."""

    def __init__(self, bundles: Path, name: str) -> None:
        self.dir = bundles / name
        if name == "cosign-oci-attestation":
            self.bundle_name, self.digest = "oci-attestation.sigstore.json", ATTESTATION_DIGEST
            self.identity = Identity(GITHUB_OAUTH, "cody@soyland.com")
            self.root_name, self.signed_at = "trusted_root_pgi.json", "2025-02-28T19:18:11Z"
        elif name == "blob-staging":
            self.bundle_name, self.digest = "bundle_v3.txt.sigstore", _sha256(self.dir / "bundle_v3.txt")
            self.identity = Identity(GITHUB_OAUTH, "william@yossarian.net")
            self.root_name, self.signed_at = "trusted_root_staging.json", "2024-04-02T19:19:09Z"
        else:
            self.bundle_name, self.digest = "bundle_v3_github.whl.sigstore", WHEEL_DIGEST
            self.identity = Identity(ACTIONS_ISSUER, WORKFLOW)
            self.root_name, self.signed_at = "trusted_root_pgi.json", "2024-03-19T22:41:16Z"
        self.bundle = (self.dir / self.bundle_name).read_bytes()
        self.root = (self.dir / self.root_name).read_bytes()

    def verify(self, *, bundle=None, digest=None, identities=None, root=None):
        return verify_bundle(
            self.bundle if bundle is None else bundle,
            self.digest if digest is None else digest,
            [self.identity] if identities is None else identities,
            self.root if root is None else root,
        )


CASES = ["cosign-oci-attestation", "blob-staging", "github-actions-digest-only"]


@pytest.mark.parametrize("name", CASES)
def test_bundle_fixture_verifies_and_names_signer_and_log_time(bundles, name):
    case = Case(bundles, name)
    assert case.verify() == VerifiedSignature(
        "sigstore", f"{case.identity.subject} ({case.identity.issuer})", case.digest, case.signed_at
    )


@pytest.mark.parametrize("name", ["cosign-oci-attestation", "github-actions-digest-only"])
def test_public_good_bundles_verify_with_the_root_sigstore_ships(bundles, name):
    case = Case(bundles, name)
    verified = verify_bundle(case.bundle, case.digest, [case.identity])  # no root given
    assert verified.signed_digest == case.digest


def test_default_root_is_the_public_good_instance():
    root = json.loads(default_trusted_root())
    assert root["mediaType"] == "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    assert any(t["baseUrl"] == "https://rekor.sigstore.dev" for t in root["tlogs"])


def test_attestation_with_a_tampered_subject_digest_is_refused(bundles):
    case = Case(bundles, "cosign-oci-attestation")
    tampered = (case.dir / "tampered" / case.bundle_name).read_bytes()
    with pytest.raises(SignatureRejected, match="DSSE: invalid signature"):
        case.verify(bundle=tampered)


def test_message_signature_over_a_tampered_artifact_is_refused(bundles):
    case = Case(bundles, "blob-staging")
    with pytest.raises(SignatureRejected, match="message digest mismatch"):
        case.verify(digest=_sha256(case.dir / "tampered" / "bundle_v3.txt"))


def test_bundle_with_a_tampered_message_digest_is_refused(bundles):
    case = Case(bundles, "github-actions-digest-only")
    tampered = (case.dir / "tampered" / case.bundle_name).read_bytes()
    claimed = base64.b64decode(json.loads(tampered)["messageSignature"]["messageDigest"]["digest"])
    assert claimed.hex().startswith("04e9")
    with pytest.raises(SignatureRejected, match="Signature is invalid for input"):
        case.verify(bundle=tampered, digest="sha256:" + claimed.hex())
    with pytest.raises(SignatureRejected, match="message digest mismatch"):
        case.verify(bundle=tampered)


@pytest.mark.parametrize("name", CASES)
def test_bundle_is_refused_for_another_image_digest(bundles, name):
    case = Case(bundles, name)
    with pytest.raises(SignatureRejected):
        case.verify(digest="sha256:" + "0" * 64)


def test_attestation_names_the_subjects_it_covers_when_refusing_another_digest(bundles):
    case = Case(bundles, "cosign-oci-attestation")
    with pytest.raises(SignatureRejected, match=f"subjects \\({ATTESTATION_DIGEST}\\) do not include"):
        case.verify(digest="sha256:" + "0" * 64)


@pytest.mark.parametrize(
    "change",
    [
        lambda i: Identity(i.issuer, "someone@example.com"),
        lambda i: Identity("https://accounts.google.com", i.subject),
        lambda i: Identity(i.issuer, "re:.*@example\\.com"),
        lambda i: Identity("re:https://gitlab\\.com.*", i.subject),
        lambda i: Identity(i.issuer, "re:" + i.subject[:5]),  # patterns match the whole subject
    ],
    ids=["subject-exact", "issuer-exact", "subject-re", "issuer-re", "subject-re-prefix"],
)
@pytest.mark.parametrize("name", CASES)
def test_bundle_by_another_identity_is_refused(bundles, name, change):
    case = Case(bundles, name)
    with pytest.raises(SignatureRejected, match="matches no accepted identity"):
        case.verify(identities=[change(case.identity)])


def test_identity_patterns_accept_a_workflow_family(bundles):
    case = Case(bundles, "github-actions-digest-only")
    pattern = Identity(
        "re:https://token\\.actions\\.githubusercontent\\.com",
        "re:https://github\\.com/trailofbits/.+/\\.github/workflows/release\\.yml@refs/tags/v.*",
    )
    other = Identity(GITHUB_OAUTH, "cody@soyland.com")
    assert case.verify(identities=[other, pattern]).identity == f"{WORKFLOW} ({ACTIONS_ISSUER})"


def test_staging_bundle_is_refused_under_the_production_root(bundles):
    case = Case(bundles, "blob-staging")
    production = (bundles / "cosign-oci-attestation" / "trusted_root_pgi.json").read_bytes()
    with pytest.raises(SignatureRejected, match="does not verify"):
        case.verify(root=production)


def test_production_bundle_is_refused_under_the_staging_root(bundles):
    case = Case(bundles, "cosign-oci-attestation")
    with pytest.raises(SignatureRejected, match="does not verify"):
        case.verify(root=(bundles / "blob-staging" / "trusted_root_staging.json").read_bytes())


def test_unreadable_bundle_is_refused(bundles):
    case = Case(bundles, "blob-staging")
    with pytest.raises(SignatureRejected, match="not a Sigstore bundle"):
        case.verify(bundle=b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}')


def test_unusable_trusted_root_is_a_configuration_fault(bundles):
    case = Case(bundles, "blob-staging")
    with pytest.raises(ValueError, match="not a usable Sigstore trusted root"):
        case.verify(root=b'{"mediaType": "something else"}')


def test_no_configured_identity_refuses(bundles):
    with pytest.raises(SignatureRejected, match="no Sigstore identity"):
        Case(bundles, "blob-staging").verify(identities=[])
