"""A source that was itself promoted (staging -> prod) holds the promoter's own attestation, a
Sigstore bundle referrer of the digest: the signature gate passes it over by the annotations the
referrers listing gives (`promoter.model.attestation.is_our_attestation`), reads no blob of it and
spends none of its candidates on it, and still verifies the image's real signature.

On the local AWS with real parts: the attestation is the one the promoter writes when it promotes
dev -> staging (signed by the local stack's KMS key); the signature is notaryproject/notation's own
e2e JWS signature of its e2e image (tests/fixtures/signatures/notation/jws-oci-layout); the rule
of staging -> prod also accepts a keyless Sigstore identity, as a release rule may, so a bundle
referrer is a candidate it would read. Blob reads are counted where they happen: ECR's
GetDownloadUrlForLayer calls and the GETs the blob host (the local S3) serves."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from local_aws.stack_route import attestation_key
from promoter import settings
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.gates.base import GateDeps, GateImage, gates_of
from promoter.model import attestation as vsa
from promoter.model.config import parse_config
from promoter.model.verdicts import PASSED, UNVERIFIED
from tests.integration.test_registry_referrers_fallback import ClientWithoutListImageReferrers
from tests.integration.test_signature_candidates import LAYOUT, _signed_image
from tests.integration.test_signature_gate import digest_at, lambda_with  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration

REGION = "us-east-1"
GITHUB_RELEASE = {
    "issuer": "https://token.actions.githubusercontent.com",
    "subject": "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
}
NOTATION_SIGNER = "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"


@pytest.fixture
def key_arn(aws_env, monkeypatch) -> str:
    """The local stack's attestation key, given to the handler as the stack gives it."""
    kms = boto3.client("kms", endpoint_url=aws_env.endpoint, region_name=REGION)
    arn = attestation_key(kms)
    monkeypatch.setenv(settings.ATTESTATION_KEY_ENV, arn)
    return arn


def _to_staging(dev: str, staging: str) -> dict[str, Any]:
    return {
        "rules": [
            {
                "name": "to-staging",
                "source": {"repository": dev, "tags": ["v*"]},
                "targets": [{"repository": staging}],
            }
        ]
    }


def _to_prod_gate(staging: str, prod: str, client: Any) -> Any:
    """The signature gate of a staging -> prod rule that takes a Notation signature by the e2e
    certificate or a keyless Sigstore signature of a GitHub release workflow (ECR through `client`)."""
    config = parse_config(
        {
            "rules": [
                {
                    "name": "to-prod",
                    "trigger": "request",
                    "source": {"repository": staging, "tags": ["v*"]},
                    "targets": [{"repository": prod}],
                    "require": {
                        "signature": {
                            "sigstore": {"identities": [GITHUB_RELEASE]},
                            "notation": {"trust_roots": [(LAYOUT / "trust" / "e2e.crt").read_text()]},
                        }
                    },
                }
            ]
        }
    )
    (gate,) = gates_of(config.rules[0], GateDeps(registry=EcrRegistry(client)))
    return gate


def _our_attestation(ecr, repository: str, digest: str) -> tuple[str, str]:
    """(manifest digest, bundle blob digest) of the one attestation of ours among the referrers."""
    listed = ecr.list_image_referrers(
        repositoryName=repository,
        subjectId={"imageDigest": digest},
        filter={"artifactTypes": [vsa.BUNDLE_MEDIA_TYPE], "artifactStatus": "ANY"},
    )["referrers"]
    (ours,) = [r for r in listed if vsa.is_our_attestation(r.get("annotations"))]
    manifest = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageDigest": ours["digest"]}])
    (layer,) = json.loads(manifest["images"][0]["imageManifest"])["layers"]
    return ours["digest"], layer["digest"]


def _reads(aws_env) -> tuple[int, list[str]]:
    """GetDownloadUrlForLayer calls and the paths of the blob GETs since the last reset."""
    calls = aws_env.control.calls().get("GetDownloadUrlForLayer", 0)
    paths = [r["path"] for r in aws_env.control.blob_host_requests() if r["method"] == "GET"]
    return calls, paths


def _reset(aws_env) -> None:
    aws_env.control.reset_calls()
    aws_env.control.reset_blob_host_requests()


@pytest.mark.parametrize(
    "listing",
    ["ListImageReferrers", "registry referrers API"],  # the second as a Lambda runtime's older botocore
)
def test_the_promoters_own_attestation_on_a_promoted_source_is_never_read_as_a_signature(
    listing,
    aws_env,
    ecr,
    pusher,
    unique_name,
    key_arn,
    lambda_with,  # noqa: F811
):
    dev, staging, prod = unique_name("dev"), unique_name("staging"), unique_name("prod")
    for name in (dev, staging, prod):
        ecr.create_repository(repositoryName=name)
    image, notation_signature = _signed_image()
    pusher.push(dev, image, "v1")
    assert lambda_with(_to_staging(dev, staging))(dev, image.digest, "v1") == {"batchItemFailures": []}
    assert digest_at(ecr, staging, "v1") == image.digest
    attestation, bundle_blob = _our_attestation(ecr, staging, image.digest)
    client = make_ecr_client()
    gate = _to_prod_gate(
        staging, prod, client if listing == "ListImageReferrers" else ClientWithoutListImageReferrers(client)
    )
    source = GateImage(staging, image.digest)

    # Only our attestation beside the image: no signature, and nothing read to find that out.
    _reset(aws_env)
    unsigned = gate.decide(source)
    assert unsigned.state == UNVERIFIED
    assert attestation not in unsigned.reason, unsigned.reason  # not a refused candidate
    assert "1 attestation(s) of the promoter's own" in unsigned.reason
    assert _reads(aws_env) == (0, [])
    assert ("ListImageReferrers" in aws_env.control.calls()) == (listing == "ListImageReferrers")

    # The real Notation signature arrives: it verifies, and only its envelope is read.
    pusher.push(staging, notation_signature)
    _reset(aws_env)
    signed = gate.decide(source)
    assert signed.state == PASSED, signed.reason
    assert signed.evidence is not None and signed.evidence.details["identity"] == NOTATION_SIGNER
    (envelope,) = json.loads(notation_signature.raw)["layers"]
    calls, paths = _reads(aws_env)
    assert calls == 1 and len(paths) == 1, paths
    assert envelope["digest"].removeprefix("sha256:") in paths[0]
    assert bundle_blob.removeprefix("sha256:") not in paths[0]
