"""Issue 19, crashes around the attestation: the runtime dies (a) after the image's children and
trust material are in the target but before its attestation is put, and (b) after the attestation
is put but before the tag. Nothing of the function's own cleanup runs; the batch comes back after
the visibility timeout and the redelivery finishes the job: each image ends with exactly one
attestation, and its tag appears only after it (never a tag on an unattested image, never a second
attestation for the same digest, target and rule)."""

from __future__ import annotations

import json

import boto3
import pytest

from local_aws import images as im
from local_aws.stack_route import attestation_key
from promoter import handler, settings
from promoter.model import attestation as vsa

pytestmark = pytest.mark.integration


class RuntimeCrashed(BaseException):
    """The Lambda runtime dies mid-invocation (out of memory, killed): no except clause sees it."""


def _bundle_referrers(ecr, repository: str, digest: str) -> list[str]:
    listed = ecr.list_image_referrers(
        repositoryName=repository,
        subjectId={"imageDigest": digest},
        filter={"artifactTypes": [vsa.BUNDLE_MEDIA_TYPE], "artifactStatus": "ANY"},
    )["referrers"]
    return [r["digest"] for r in listed]


def _tags(ecr, repository: str) -> set[str]:
    return {
        i["imageTag"] for i in ecr.list_images(repositoryName=repository)["imageIds"] if i.get("imageTag")
    }


def test_a_crash_around_the_attestation_ends_with_one_attestation_and_the_tag_after_it(
    pipeline, repos, aws_env, monkeypatch
):
    kms = boto3.client("kms", endpoint_url=aws_env.endpoint, region_name=aws_env.region)
    monkeypatch.setenv(settings.ATTESTATION_KEY_ENV, attestation_key(kms))
    source, target = repos("dev"), repos("prod")
    flow = pipeline(
        {
            "rules": [
                {
                    "name": "dev-to-prod",
                    "source": {"repository": source, "tags": ["v*"]},
                    "targets": [{"repository": target, "tags": ["{tag}"]}],
                }
            ]
        }
    )
    unattested, untagged = (im.multi_arch(layer_size=128, attestations=False) for _ in range(2))
    flow.pusher.push(source, unattested, "v1")
    flow.pusher.push(source, untagged, "v2")
    seen: dict[str, dict] = {}

    def crash(params, **_kwargs):
        body = params.get("imageManifest") or ""
        if vsa.BUNDLE_MEDIA_TYPE in body and unattested.digest in body and "v1" not in seen:
            # (a) children and referrers are in, the attestation is about to be put
            seen["v1"] = {
                "tags": _tags(flow.ecr, target),
                "attested": _bundle_referrers(flow.ecr, target, unattested.digest),
            }
            raise RuntimeCrashed("the runtime died before the attestation's PutImage")
        if params.get("imageTag") == "v2" and "v2" not in seen:
            # (b) the attestation is in, the tag is about to be put
            seen["v2"] = {
                "tags": _tags(flow.ecr, target),
                "attested": _bundle_referrers(flow.ecr, target, untagged.digest),
            }
            raise RuntimeCrashed("the runtime died before the tag's PutImage")

    handler.runtime().ecr.meta.events.register("before-parameter-build.ecr.PutImage", crash)

    flow.run()

    ends = flow.assert_every_event_accounted()
    assert set(ends.values()) == {"handled"} and len(ends) == 2
    assert [d.status for d in flow.ledger.deliveries].count("crash") >= 1
    assert seen["v1"] == {"tags": set(), "attested": []}  # nothing attested, no tag
    assert "v2" not in seen["v2"]["tags"] and len(seen["v2"]["attested"]) == 1  # attested, untagged
    ecr = flow.ecr
    for tag, image in (("v1", unattested), ("v2", untagged)):
        found = ecr.batch_get_image(repositoryName=target, imageIds=[{"imageTag": tag}])["images"]
        assert found and found[0]["imageId"]["imageDigest"] == image.digest
        assert len(_bundle_referrers(ecr, target, image.digest)) == 1, tag
    # The attestation found after the crash is the one the promotion reports and the history links.
    [attested_v2] = _bundle_referrers(ecr, target, untagged.digest)
    assert seen["v2"]["attested"] == [attested_v2]
    [promoted_v2] = flow.ledger.promoted(target, "v2")
    assert promoted_v2["attestation"] == attested_v2
    assert json.dumps(promoted_v2)  # a plain record: what the idempotency store keeps
