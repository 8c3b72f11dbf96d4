"""Referrers on a botocore without ListImageReferrers (< 1.41.0, what Lambda runtimes may ship):
the ECR adapter reads the registry's OCI referrers API instead, pages included."""

from __future__ import annotations

from typing import Any

import pytest

from local_aws import images as im
from local_aws.proxy import REFERRERS_PAGE_SIZE
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model.outcomes import PROMOTED
from promoter.model.plan import Action, SourceImage
from promoter.workflows.promote import Promoter

pytestmark = pytest.mark.integration


class ClientWithoutListImageReferrers:
    """A real ECR client as botocore before 1.41.0 builds it: every operation but ListImageReferrers
    (there, `client.list_image_referrers` raises AttributeError)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        if name == "list_image_referrers":
            raise AttributeError(f"'ECR' object has no attribute {name!r}")
        return getattr(self._client, name)


@pytest.fixture
def old_client(aws_env) -> ClientWithoutListImageReferrers:
    return ClientWithoutListImageReferrers(make_ecr_client())


def test_referrers_without_list_image_referrers_come_from_the_registry_api_page_by_page(
    old_client, ecr, pusher, repo, aws_env
):
    subject = im.image((256,))
    pusher.push(repo, subject, "v1")
    pushed = []
    for _ in range(REFERRERS_PAGE_SIZE + 1):
        sbom = im.referrer(subject)
        pusher.push(repo, sbom)
        pushed.append(sbom.digest)
    aws_env.control.reset_calls()

    listed = EcrRegistry(old_client).list_referrers(repo, subject.digest)

    assert list(listed) == pushed  # both pages, in order
    assert "ListImageReferrers" not in aws_env.control.calls()
    assert list(EcrRegistry(make_ecr_client()).list_referrers(repo, subject.digest)) == pushed


def test_promotion_on_a_client_without_list_image_referrers_carries_the_referrers(
    old_client, ecr, pusher, unique_name
):
    source, target = unique_name("src"), unique_name("dst")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    image = im.image((1024,))
    pusher.push(source, image, "v1")
    sbom = im.referrer(image)
    pusher.push(source, sbom)

    result = Promoter(EcrRegistry(old_client)).promote(
        Action("rule-1", SourceImage(source, "v1", image.digest), target, "v1")
    )

    assert result.outcome == PROMOTED
    referrers = ecr.list_image_referrers(repositoryName=target, subjectId={"imageDigest": image.digest})
    assert [r["digest"] for r in referrers["referrers"]] == [sbom.digest]
