"""An image promoted twice (dev -> staging -> prod) on the local AWS, through the Lambda handler:
prod holds its own attestation and, carried along with the image's referrers, staging's.
`promoter attestation verify` checks the ones whose target is the repository asked about and lists
the carried ones as such, by digest and by tag."""

from __future__ import annotations

import json

import pytest

from local_aws import images as im
from promoter_cli.main import main
from tests.integration.test_attestation_engine import (  # noqa: F401  (fixtures)
    _forged_attestation,
    _rule,
    deliver,
    deploy,
    host_of,
    key_arn,
    kms,
    ours,
)
from tests.integration.test_handler import push_event

pytestmark = pytest.mark.integration


@pytest.fixture
def two_hops(ecr, pusher, unique_name, deploy, key_arn):  # noqa: F811
    """(dev, staging, prod, image): `image` pushed to dev as v1, promoted to staging, then to prod."""
    dev, staging, prod = (unique_name(n) for n in ("dev", "staging", "prod"))
    for name in (dev, staging, prod):
        ecr.create_repository(repositoryName=name)
    deploy({"rules": [_rule(dev, staging, name="to-staging"), _rule(staging, prod, name="to-prod")]})
    image = im.image((64,))
    pusher.push(dev, image, "v1")
    deliver(push_event(dev, image.digest, "v1"))
    deliver(push_event(staging, image.digest, "v1"))
    return dev, staging, prod, image


def verify(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["attestation", "verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_image_promoted_twice_verifies_by_digest_and_lists_the_carried_attestation(
    capsys,
    ecr,
    two_hops,
    key_arn,  # noqa: F811
):
    _, staging, prod, image = two_hops
    host = host_of(ecr)
    [staged] = ours(ecr, prod, image.digest, "to-staging", f"{host}/{staging}:v1")  # carried to prod
    [attested] = ours(ecr, prod, image.digest, "to-prod", f"{host}/{prod}:v1")

    code, out, err = verify(capsys, f"{prod}@{image.digest}", "--key", key_arn, "--json")
    document = json.loads(out)
    assert (code, err, document["verified"]) == (0, "", True)
    assert [a["attestation"] for a in document["attestations"]] == [attested]
    assert document["carried"] == [
        {"attestation": staged, "carried_from": f"{host}/{staging}:v1", "rule": "to-staging"}
    ]

    code, out, err = verify(capsys, f"{prod}@{image.digest}", "--key", key_arn)
    assert (code, err) == (0, "")
    assert f"verified attestation {attested}" in out
    assert f"attestation {staged} of {prod}@" in out and f"carried from {host}/{staging}:v1" in out

    # By tag: as before, plus the carried one reported the same way.
    code, out, err = verify(capsys, f"{prod}:v1", "--key", key_arn, "--json")
    document = json.loads(out)
    assert (code, err) == (0, "")
    assert [a["attestation"] for a in document["attestations"]] == [attested]
    assert [c["attestation"] for c in document["carried"]] == [staged]
    code, out, _ = verify(capsys, f"{prod}:v1", "--key", key_arn)
    assert code == 0 and f"carried from {host}/{staging}:v1" in out

    # Staging itself carries nothing: its own attestation verifies.
    code, out, _ = verify(capsys, f"{staging}@{image.digest}", "--key", key_arn, "--json")
    assert code == 0 and json.loads(out)["carried"] == []


def test_by_digest_one_attestation_for_this_repository_that_fails_still_fails(
    capsys,
    ecr,
    pusher,
    two_hops,
    key_arn,  # noqa: F811
):
    _, _, prod, image = two_hops
    host = host_of(ecr)
    # A referrer claiming to be ours for prod under another tag (anyone who may push to prod can).
    forged = _forged_attestation(image, rule="to-prod", target=f"{host}/{prod}:v2")
    pusher.push(prod, forged)

    code, out, err = verify(capsys, f"{prod}@{image.digest}", "--key", key_arn, "--json")
    document = json.loads(out)
    assert code == 1 and "1 of 2 attestation(s)" in err
    assert {a["attestation"]: a["verified"] for a in document["attestations"]}[forged.digest] is False
    assert len(document["carried"]) == 1


def test_by_digest_only_carried_attestations_are_no_attestation_for_this_repository(
    capsys,
    ecr,
    pusher,
    unique_name,
    key_arn,  # noqa: F811
):
    host = host_of(ecr)
    repository = unique_name("copy")
    ecr.create_repository(repositoryName=repository)
    image = im.image((64,))
    pusher.push(repository, image, "v1")
    # Copied here by hand with its referrers: an attestation of another repository came along.
    carried = _forged_attestation(image, rule="to-staging", target=f"{host}/app-staging:v1")
    pusher.push(repository, carried)

    code, out, err = verify(capsys, f"{repository}@{image.digest}", "--key", key_arn, "--json")
    document = json.loads(out)
    assert code == 1 and "no attestation of the promoter" in err
    assert document["attestations"] == []
    assert [c["attestation"] for c in document["carried"]] == [carried.digest]
