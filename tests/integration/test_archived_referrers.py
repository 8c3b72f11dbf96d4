"""Archived referrers (issue 21.2) on the local AWS: ListImageReferrers lists only ACTIVE referrers
unless asked for ANY, so a signature or SBOM a lifecycle rule archived used to vanish from a
promotion unannounced. Now the promotion names it, or restores it when the rule's source allows
restores (`source: {restore_archived: true}`) and carries it once it is ACTIVE again."""

from __future__ import annotations

import pytest

from local_aws import images as im
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model.outcomes import FAILED, PROMOTED, SKIPPED
from promoter.model.plan import Action, SourceImage
from promoter.workflows.promote import Promoter

pytestmark = pytest.mark.integration


@pytest.fixture
def repos(ecr, unique_name) -> tuple[str, str]:
    source, target = unique_name("src"), unique_name("dst")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    return source, target


def _archived_sbom(ecr, pusher, source: str) -> tuple[im.Manifest, im.Manifest]:
    image = im.image((256,))
    pusher.push(source, image, "v1")
    sbom = im.referrer(image)
    pusher.push(source, sbom)
    ecr.update_image_storage_class(
        repositoryName=source, imageId={"imageDigest": sbom.digest}, targetStorageClass="ARCHIVE"
    )
    return image, sbom


def _digests(ecr, repository: str) -> set[str]:
    return {d["imageDigest"] for d in ecr.describe_images(repositoryName=repository)["imageDetails"]}


def test_an_archived_sbom_is_named_and_the_image_is_not_promoted_without_it(ecr, pusher, repos):
    source, target = repos
    image, sbom = _archived_sbom(ecr, pusher, source)

    result = Promoter(EcrRegistry(make_ecr_client())).promote(
        Action("release", SourceImage(source, "v1", image.digest), target, "v1")
    )

    assert result.outcome == FAILED
    assert f"{sbom.digest} (ARCHIVED)" in (result.reason or "")
    assert "trust material" in (result.reason or "") and "restore_archived" in (result.reason or "")
    assert _digests(ecr, target) == set()


def test_a_rule_that_restores_archives_restores_the_sbom_and_carries_it_once_active(
    ecr, pusher, repos, aws_env
):
    source, target = repos
    aws_env.control.set_restore_seconds(600)  # a restore takes time: the first run only asks for it
    image, sbom = _archived_sbom(ecr, pusher, source)
    action = Action("release", SourceImage(source, "v1", image.digest), target, "v1", restore_archived=True)
    promoter = Promoter(EcrRegistry(make_ecr_client()))

    first = promoter.promote(action)

    assert first.outcome == SKIPPED
    assert sbom.digest in (first.reason or "") and "restore requested" in (first.reason or "")
    status = ecr.describe_images(repositoryName=source, imageIds=[{"imageDigest": sbom.digest}])
    assert status["imageDetails"][0]["imageStatus"] == "ACTIVATING"
    assert _digests(ecr, target) == set()

    aws_env.control.finish_restores()
    second = promoter.promote(action)  # what the reconciliation sweep does once it is ACTIVE

    assert second.outcome == PROMOTED
    assert {image.digest, sbom.digest} <= _digests(ecr, target)
