"""No silent loss of trust material, no stale credentials (issue 21.7), on the local AWS: a referrer
listing that fails is the promotion's named failure (nothing promoted without its signatures and
SBOMs), and the registry token is fetched again before `expiresAt`."""

from __future__ import annotations

from typing import Any

import pytest

from local_aws import images as im
from promoter.aws.registry import AUTH_TOKEN_REFRESH_SECONDS, EcrRegistry, make_ecr_client
from promoter.model.outcomes import FAILED
from promoter.model.plan import Action, SourceImage
from promoter.workflows.promote import Promoter
from tests.integration.test_registry_referrers_fallback import ClientWithoutListImageReferrers

pytestmark = pytest.mark.integration


@pytest.fixture
def repos(ecr, unique_name) -> tuple[str, str]:
    source, target = unique_name("src"), unique_name("dst")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    return source, target


def _action(source: str, target: str, digest: str, tag: str = "v1") -> Action:
    return Action("release", SourceImage(source, tag, digest), target, tag)


def test_access_denied_on_list_image_referrers_is_a_named_failure_and_nothing_is_promoted(
    ecr, pusher, repos, aws_env
):
    source, target = repos
    image = im.image((256,))
    pusher.push(source, image, "v1")
    pusher.push(source, im.referrer(image))  # an SBOM the promoter must not leave behind
    aws_env.control.fail_next(
        "ListImageReferrers",
        "AccessDeniedException",
        count=5,
        message="not authorized: ecr:ListImageReferrers",
    )

    result = Promoter(EcrRegistry(make_ecr_client())).promote(_action(source, target, image.digest))

    assert result.outcome == FAILED
    assert "referrers of" in (result.reason or "") and "could not be listed" in (result.reason or "")
    assert "AccessDeniedException" in (result.reason or "")
    assert "not promoted without them" in (result.reason or "")
    assert ecr.describe_images(repositoryName=target)["imageDetails"] == []  # nothing written at all


class Clock:
    """Epoch seconds the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_registry_token_is_fetched_again_before_its_expires_at_and_not_before(ecr, pusher, repo, aws_env):
    image = im.image((256,))
    pusher.push(repo, image, "v1")
    sbom = im.referrer(image)
    pusher.push(repo, sbom)
    client: Any = ClientWithoutListImageReferrers(make_ecr_client())  # referrers through /v2: the token
    expires_at = ecr.get_authorization_token()["authorizationData"][0]["expiresAt"].timestamp()
    clock = Clock(expires_at - 12 * 3600)  # when the local AWS issued it
    registry = EcrRegistry(client, clock=clock)
    aws_env.control.reset_calls()

    assert registry.list_referrers(repo, image.digest) == (sbom.digest,)
    clock.now = expires_at - AUTH_TOKEN_REFRESH_SECONDS - 1  # still good: the cached one serves
    assert registry.list_referrers(repo, image.digest) == (sbom.digest,)
    assert aws_env.control.calls().get("GetAuthorizationToken") == 1

    clock.now = expires_at + 1  # a container that lived past the token's 12 hours
    assert registry.list_referrers(repo, image.digest) == (sbom.digest,)
    assert aws_env.control.calls().get("GetAuthorizationToken") == 2
