"""Every piece of trust material goes along with a promoted image (issue 11, point 2): referrers
and cosign tags of the image, of each platform child, and of each referrer, at every page."""

from __future__ import annotations

import pytest

from local_aws import images as im
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model.outcomes import FAILED, PROMOTED
from promoter.model.plan import Action, SourceImage
from promoter.workflows import promote as promote_module
from promoter.workflows.promote import Promoter

pytestmark = pytest.mark.integration

# ListImageReferrers answers 50 referrers a page: one more needs a second page.
REFERRERS_PAGE = 50


@pytest.fixture
def two_repos(ecr, unique_name) -> tuple[str, str]:
    source, target = unique_name("src"), unique_name("dst")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    return source, target


def _action(source: str, digest: str, target: str, tag: str) -> Action:
    return Action("rule-1", SourceImage(source, tag, digest), target, tag)


def _digest_in(ecr, repository: str, reference: str) -> str | None:
    image_id = {"imageDigest": reference} if reference.startswith("sha256:") else {"imageTag": reference}
    images = ecr.batch_get_image(
        repositoryName=repository,
        imageIds=[image_id],
        acceptedMediaTypes=[im.DOCKER_MANIFEST, im.DOCKER_MANIFEST_LIST, im.OCI_MANIFEST, im.OCI_INDEX],
    )["images"]
    return images[0]["imageId"]["imageDigest"] if images else None


def test_signatures_and_sboms_of_platform_children_and_the_signature_of_an_sbom_arrive_in_the_target(
    ecr, pusher, two_repos, aws_env
):
    source, target = two_repos
    index = im.multi_arch(attestations=False)
    pusher.push(source, index, "v1")
    children = list(index.children)
    expected: dict[str, str] = {}  # reference in the target -> digest it must hold
    for child in children:
        signature, tag = im.cosign_signature(child)  # cosign sign --recursive
        pusher.push(source, signature, tag)
        expected[tag] = signature.digest
        sbom = im.referrer(child)  # a per-platform SBOM
        pusher.push(source, sbom)
        expected[sbom.digest] = sbom.digest
        sbom_signature, sbom_tag = im.cosign_signature(sbom)  # a signature on the SBOM (tag)
        pusher.push(source, sbom_signature, sbom_tag)
        expected[sbom_tag] = sbom_signature.digest
        sbom_referrer = im.referrer(sbom, "application/vnd.dev.sigstore.bundle.v0.3+json")  # and referrer
        pusher.push(source, sbom_referrer)
        expected[sbom_referrer.digest] = sbom_referrer.digest
    index_sbom = im.referrer(index)
    pusher.push(source, index_sbom)
    expected[index_sbom.digest] = index_sbom.digest

    result = Promoter(EcrRegistry(make_ecr_client())).promote(_action(source, index.digest, target, "v1"))

    assert result.outcome == PROMOTED
    assert {ref: _digest_in(ecr, target, ref) for ref in expected} == expected
    assert _digest_in(ecr, target, "v1") == index.digest


def test_referrers_past_the_first_page_arrive(ecr, pusher, two_repos, aws_env):
    source, target = two_repos
    image = im.image((256,))
    pusher.push(source, image, "v1")
    referrers = [im.referrer(image) for _ in range(REFERRERS_PAGE + 2)]
    for referrer in referrers:
        pusher.push(source, referrer)

    result = Promoter(EcrRegistry(make_ecr_client())).promote(_action(source, image.digest, target, "v1"))

    assert result.outcome == PROMOTED
    assert all(_digest_in(ecr, target, r.digest) == r.digest for r in referrers)


def test_trust_material_deeper_than_the_bound_fails_the_promotion_and_writes_nothing(
    ecr, pusher, two_repos, aws_env, monkeypatch
):
    source, target = two_repos
    image = im.image((256,))
    pusher.push(source, image, "v1")
    subject = image
    for _ in range(3):  # a signature on a signature on an SBOM: 3 levels
        subject = im.referrer(subject)
        pusher.push(source, subject)
    monkeypatch.setattr(promote_module, "TRUST_TREE_MAX_DEPTH", 2)

    result = Promoter(EcrRegistry(make_ecr_client())).promote(_action(source, image.digest, target, "v1"))

    assert result.outcome == FAILED
    assert "levels of children and referrers" in result.reason
    assert ecr.describe_images(repositoryName=target)["imageDetails"] == []
