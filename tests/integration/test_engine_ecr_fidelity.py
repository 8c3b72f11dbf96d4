"""The engine on the local ECR where it behaves as ECR does at scale and at its edges: listings that
end in pages (more than 100 images, more than 50 referrers), blobs downloaded from another host
through a pre-signed URL that must never see the registry's credentials, and sources in the archive
storage class (reported by name, or restored when the rule says so; rollback refuses them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from local_aws import images as im
from promoter.aws.history import DynamoDbHistory
from promoter.aws.idempotency import idempotent_runner, make_persistence
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model.config import parse_config
from promoter.model.events import ImagePushed
from promoter.model.outcomes import FAILED, PROMOTED, SKIPPED
from promoter.model.plan import Action, SourceImage
from promoter.workflows.promote import Promoter
from promoter.workflows.service import handle_event

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).parents[2]
PROMOTER = [sys.executable, "-m", "promoter_cli.main"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args], cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def promoter(aws_env) -> Promoter:
    return Promoter(EcrRegistry(make_ecr_client()))


@pytest.fixture
def two_repos(ecr, unique_name) -> tuple[str, str]:
    source, target = unique_name("src"), unique_name("dst")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    return source, target


def tagged(ecr, repository: str) -> dict[str, str]:
    """Every tag of a repository and its digest, through every page."""
    out: dict[str, str] = {}
    for page in ecr.get_paginator("list_images").paginate(
        repositoryName=repository, filter={"tagStatus": "TAGGED"}
    ):
        out.update({i["imageTag"]: i["imageDigest"] for i in page["imageIds"]})
    return out


# ---------------------------------------------------------------------------- pages
def test_reconcile_promotes_every_image_of_a_source_holding_more_than_100(
    aws_env, ecr, two_repos, pusher, tmp_path, local_aws
):
    source, target = two_repos
    base = im.image((64,))
    pusher.push(source, base)
    wanted = {}
    for i, manifest in enumerate(im.variants(base, 105)):
        ecr.put_image(
            repositoryName=source,
            imageManifest=manifest.text,
            imageManifestMediaType=manifest.media_type,
            imageTag=f"v{i:03d}",
        )
        wanted[f"v{i:03d}"] = manifest.digest
    config = tmp_path / "promotion.yaml"
    config.write_text(
        f"rules:\n  - name: ship\n    source: {{repository: {source}, tags: ['v*']}}\n"
        f"    targets:\n      - repository: {target}\n        tags: ['{{tag}}']\n"
    )

    first = cli("reconcile", "--json", "--config", str(config))

    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["images"] == 105 and report["outcomes"] == {PROMOTED: 105}
    assert tagged(ecr, target) == wanted
    local_aws.control.reset_calls()
    again = json.loads(cli("reconcile", "--json", "--config", str(config)).stdout)
    assert again["in_sync"] == 105
    assert local_aws.control.calls()["DescribeImages"] == 2  # a page of 100, then the last 5


def test_promotion_carries_all_55_referrers_of_an_image(ecr, two_repos, pusher, promoter, local_aws):
    source, target = two_repos
    image = im.image((64,))
    pusher.push(source, image, "v1")
    first = im.referrer(image)
    pusher.push(source, first)
    referrers = [first, *im.variants(first, 54)]
    for manifest in referrers[1:]:
        ecr.put_image(
            repositoryName=source, imageManifest=manifest.text, imageManifestMediaType=im.OCI_MANIFEST
        )
    local_aws.control.reset_calls()

    result = promoter.promote(Action("rule-1", SourceImage(source, "v1", image.digest), target, "v1"))

    assert result.outcome == PROMOTED, result.reason
    local_aws.control.reset_calls()
    listed = EcrRegistry(make_ecr_client()).list_referrers(source, image.digest)
    assert sorted(listed) == sorted(m.digest for m in referrers)
    # Asked 50 at a time (the most ECR gives; 20 without maxResults): one full page, then the rest.
    assert local_aws.control.calls()["ListImageReferrers"] == 2
    held, kwargs = (
        set(),
        {"repositoryName": target, "subjectId": {"imageDigest": image.digest}, "maxResults": 50},
    )
    while True:  # botocore has no paginator for ListImageReferrers
        page = ecr.list_image_referrers(**kwargs)
        held.update(r["digest"] for r in page["referrers"])
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    assert held == {m.digest for m in referrers}


# ---------------------------------------------------------------------------- the redirect
def test_blob_copy_downloads_from_the_presigned_url_with_no_registry_credential(
    ecr, two_repos, pusher, promoter, local_aws
):
    source, target = two_repos
    image = im.image((3000, 5000))
    pusher.push(source, image, "v1")
    local_aws.control.reset_blob_host_requests()

    result = promoter.promote(Action("rule-1", SourceImage(source, "v1", image.digest), target, "v1"))

    assert result.outcome == PROMOTED, result.reason
    assert result.stats.blobs_copied == len(image.blobs)
    received = local_aws.control.blob_host_requests()
    assert sorted(r["path"].rsplit("/", 1)[1] for r in received) == sorted(b.digest for b in image.blobs)
    assert all(r["method"] == "GET" and r["status"] == 200 for r in received)
    assert not [r for r in received if "authorization" in r["headers"]]


# ---------------------------------------------------------------------------- the archive
def archive(ecr, repository: str, digest: str) -> None:
    moved = ecr.update_image_storage_class(
        repositoryName=repository, imageId={"imageDigest": digest}, targetStorageClass="ARCHIVE"
    )
    assert moved["imageStatus"] == "ARCHIVED"


def test_an_archived_source_fails_with_a_reason_naming_the_archive(ecr, two_repos, pusher, promoter):
    source, target = two_repos
    image = im.image((64,))
    pusher.push(source, image, "v1")
    archive(ecr, source, image.digest)

    result = promoter.promote(Action("rule-1", SourceImage(source, "v1", image.digest), target, "v1"))

    assert result.outcome == FAILED
    assert "is archived (ECR archive storage class)" in result.reason
    assert "restored" in result.reason
    assert ecr.list_images(repositoryName=target)["imageIds"] == []


def test_an_archived_source_of_a_rule_that_restores_is_restored_then_promoted(
    ecr, two_repos, pusher, promoter, local_aws
):
    source, target = two_repos
    image = im.image((64,))
    pusher.push(source, image, "v1")
    archive(ecr, source, image.digest)
    local_aws.control.set_restore_seconds(3600)
    action = Action("rule-1", SourceImage(source, "v1", image.digest), target, "v1", restore_archived=True)
    local_aws.control.reset_calls()

    first = promoter.promote(action)

    assert first.outcome == SKIPPED and "restore requested (ACTIVATING)" in first.reason
    status = ecr.describe_images(repositoryName=source, imageIds=[{"imageDigest": image.digest}])
    assert status["imageDetails"][0]["imageStatus"] == "ACTIVATING"
    assert promoter.promote(action).outcome == SKIPPED  # still restoring: asked once, not twice
    assert local_aws.control.calls()["UpdateImageStorageClass"] == 1
    local_aws.control.finish_restores()
    assert promoter.promote(action).outcome == PROMOTED


def test_the_restore_archived_key_reaches_the_planned_actions():
    config = parse_config(
        {
            "rules": [
                {
                    "name": "ship",
                    "source": {"repository": "app", "tags": ["v*"], "restore_archived": True},
                    "targets": [{"repository": "app-prod", "tags": ["{tag}"]}],
                }
            ]
        }
    )
    assert config.rules[0].source.restore_archived
    assert config.restore_archived_source_globs() == ("app",)
    assert config.rules[0].to_dict()["source"]["restore_archived"] is True


def test_rollback_to_an_archived_digest_is_refused_naming_the_archive(aws_env, ecr, unique_name, pusher):
    source, target = unique_name("stage"), unique_name("prod")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    config = parse_config(
        {
            "rules": [
                {
                    "name": "release",
                    "source": {"repository": source, "tags": ["v*"]},
                    "targets": [{"repository": target, "tags": ["current"]}],
                }
            ]
        }
    )
    registry = EcrRegistry(make_ecr_client())
    run = idempotent_runner(Promoter(registry), make_persistence())
    digests = {}
    for tag in ("v1", "v2"):
        image = im.image((128,))
        pusher.push(source, image, tag)
        digests[tag] = image.digest
        handle_event(
            ImagePushed(str(uuid.uuid4()), source, image.digest, tag),
            config,
            registry,
            run,
            DynamoDbHistory(),
        )
    archive(ecr, target, digests["v1"])

    result = cli("rollback", "--repository", target, "--tag", "current")

    assert result.returncode == 1
    assert "archived" in result.stderr and digests["v1"] in result.stderr
    held = ecr.batch_get_image(repositoryName=target, imageIds=[{"imageTag": "current"}])["images"]
    assert held[0]["imageId"]["imageDigest"] == digests["v2"]
