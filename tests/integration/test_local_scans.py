"""Scans on the local AWS (issue 21, item 6): scan on push (the repository's `scanOnPush` or the
registry's scanning configuration) and StartImageScan complete and send `ECR Image Scan` as
EventBridge delivers it; findings set through the control API or `promoter local scan-findings`
complete a scan of an image that is there; and, through `promoter local --config` (the stack's
scan rule -> queue -> handler), a waiting scan-gated request resumes on the scan's event, and
`max_severity: NONE` refuses an image with one LOW finding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local_aws import images as im
from local_aws.images import EcrPusher
from tests.integration.conftest import EventCapture
from tests.integration.test_local_promoter import (
    PROMOTION_TIMEOUT_SECONDS,
    START_TIMEOUT_SECONDS,
    Terminal,
    pasted_environment,
    stop,
)

pytestmark = pytest.mark.integration
PROMOTER = [sys.executable, "-m", "promoter_cli.main"]
SCAN_DETAIL_TYPE = "ECR Image Scan"


class ScanCapture(EventCapture):
    """The `ECR Image Scan` events of one repository, through a rule on the default bus."""

    def __init__(self, endpoint: str, repository: str) -> None:
        super().__init__(endpoint, repository)
        name = self.queue_url.rsplit("/", 1)[-1]  # the rule is named like its queue
        pattern = {
            "source": ["aws.ecr"],
            "detail-type": [SCAN_DETAIL_TYPE],
            "detail": {"repository-name": [repository]},
        }
        self.events.put_rule(Name=name, EventPattern=json.dumps(pattern))


@pytest.fixture
def scans(aws_env):
    return lambda repository: ScanCapture(aws_env.endpoint, repository)


def test_scan_on_push_completes_with_the_findings_set_and_sends_the_scan_event(
    ecr, unique_name, scans, local_aws
):
    repo = unique_name("scanned")
    ecr.create_repository(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
    captured = scans(repo)
    image = im.image((128,))
    # Set before the push: the scan on push reports them.
    scanned_now = local_aws.control.set_scan_findings(
        repo, image.digest, [{"name": "CVE-1", "severity": "HIGH"}]
    )
    EcrPusher(ecr).push(repo, image, "v1")

    (event,) = captured.wait(1)
    assert scanned_now is False
    assert event["detail-type"] == SCAN_DETAIL_TYPE and event["source"] == "aws.ecr"
    assert event["detail"] == {
        "scan-status": "COMPLETE",
        "repository-name": repo,
        "finding-severity-counts": {"HIGH": 1},
        "image-digest": image.digest,
        "image-tags": ["v1"],
    }
    found = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v1"})
    assert found["imageScanStatus"]["status"] == "COMPLETE"
    assert found["imageScanFindings"]["findingSeverityCounts"] == {"HIGH": 1}
    (detail,) = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["imageDetails"]
    assert detail["imageScanStatus"]["status"] == "COMPLETE"


def test_a_repository_without_scan_on_push_is_not_scanned(ecr, repo, scans, pusher):
    captured = scans(repo)
    pusher.push(repo, im.image((128,)), "v1")

    with pytest.raises(ClientError) as exc:
        ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v1"})
    assert exc.value.response["Error"]["Code"] == "ScanNotFoundException"
    assert captured.wait(1, timeout=0.5) == []


def test_the_registry_scanning_configuration_scans_the_repositories_its_filters_match(
    ecr, unique_name, scans
):
    matched, other = unique_name("reg-scan"), unique_name("plain")
    for name in (matched, other):
        ecr.create_repository(repositoryName=name)
    rules = [
        {
            "scanFrequency": "SCAN_ON_PUSH",
            "repositoryFilters": [{"filter": matched[:-2] + "*", "filterType": "WILDCARD"}],
        }
    ]
    ecr.put_registry_scanning_configuration(scanType="BASIC", rules=rules)
    try:
        assert ecr.get_registry_scanning_configuration()["scanningConfiguration"]["rules"] == rules
        captured = scans(matched)
        image = im.image((96,))
        EcrPusher(ecr).push(matched, image, "v1")
        EcrPusher(ecr).push(other, image, "v1")

        (event,) = captured.wait(1)
        assert (event["detail"]["image-digest"], event["detail"]["finding-severity-counts"]) == (
            image.digest,
            {},
        )
        assert ecr.describe_image_scan_findings(repositoryName=matched, imageId={"imageTag": "v1"})
        with pytest.raises(ClientError) as exc:
            ecr.describe_image_scan_findings(repositoryName=other, imageId={"imageTag": "v1"})
        assert exc.value.response["Error"]["Code"] == "ScanNotFoundException"
    finally:  # the registry's configuration is the whole session's: back to ECR's default
        ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[])
    assert ecr.get_registry_scanning_configuration()["scanningConfiguration"] == {
        "scanType": "BASIC",
        "rules": [],
    }


def test_a_bad_registry_scanning_configuration_is_refused(ecr):
    with pytest.raises(ClientError) as exc:
        ecr.put_registry_scanning_configuration(
            scanType="BASIC",
            rules=[
                {
                    "scanFrequency": "CONTINUOUS_SCAN",
                    "repositoryFilters": [{"filter": "x", "filterType": "WILDCARD"}],
                }
            ],
        )
    assert exc.value.response["Error"]["Code"] == "InvalidParameterException"


def test_start_image_scan_and_findings_set_later_each_send_a_scan_event(ecr, repo, pusher, scans, local_aws):
    image = im.image((64,))
    pusher.push(repo, image, "v1")
    captured = scans(repo)

    ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": "v1"})
    (started,) = captured.wait(1)
    scanned = local_aws.control.set_scan_findings(
        repo, image.digest, [{"name": "CVE-9", "severity": "LOW"}] * 2
    )
    (rescanned,) = captured.wait(1)

    assert started["detail"]["finding-severity-counts"] == {}
    assert scanned is True
    assert rescanned["detail"]["finding-severity-counts"] == {"LOW": 2}
    found = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageDigest": image.digest})
    assert found["imageScanFindings"]["findingSeverityCounts"] == {"LOW": 2}


def test_promoter_local_scan_findings_sets_the_counts_and_refuses_bad_input(
    aws_env, ecr, repo, pusher, scans
):
    image = im.image((64,))
    pusher.push(repo, image, "v1")
    captured = scans(repo)
    env = {**os.environ, "AWS_ENDPOINT_URL": aws_env.endpoint}

    done = _cli(
        env,
        "local",
        "scan-findings",
        f"{repo}@{image.digest}",
        "--critical",
        "1",
        "--high",
        "0",
        "--low",
        "2",
    )
    bad = _cli(env, "local", "scan-findings", f"{repo}:v1", "--critical", "1")
    negative = _cli(env, "local", "scan-findings", f"{repo}@{image.digest}", "--low", "-1")

    assert done.returncode == 0, done.stderr
    assert "complete: 1 CRITICAL, 2 LOW" in done.stdout
    (event,) = captured.wait(1)
    assert event["detail"]["finding-severity-counts"] == {"CRITICAL": 1, "LOW": 2}
    found = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v1"})
    assert found["imageScanFindings"]["findingSeverityCounts"] == {"CRITICAL": 1, "LOW": 2}
    assert (bad.returncode, negative.returncode) == (2, 2)
    assert "REPOSITORY@sha256" in bad.stderr and "--low must be 0 or more" in negative.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args], env=env, capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS
    )


# --- the whole path: promoter local --config -------------------------------------------------------

GATED_CONFIG = """\
rules:
  - name: clean-only
    trigger: request
    source: {repository: app-ci, tags: ["v*"]}
    targets: [{repository: app-prod}]
    require: {scan: {max_severity: NONE}}
"""


@pytest.fixture
def gated_local(tmp_path: Path):
    config = tmp_path / "promotion.yaml"
    config.write_text(GATED_CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [*PROMOTER, "local", "--port", "0", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    terminal = Terminal(proc)
    try:
        terminal.until(r"^# Ctrl-C", START_TIMEOUT_SECONDS)
        env.update(pasted_environment(terminal.seen))
        yield env, terminal
    finally:
        assert stop(proc) == 0


def _client(env: dict[str, str], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def test_a_scan_gated_request_waits_and_resumes_on_the_local_scans_event_and_none_refuses_a_low_finding(
    gated_local,
):
    env, terminal = gated_local
    ecr = _client(env, "ecr")
    clean, dirty = im.image((80,)), im.image((81,))
    for image, tag in ((clean, "v1"), (dirty, "v2")):
        EcrPusher(ecr).push("app-ci", image, tag)
        requested = _cli(env, "request", "--repository", "app-ci", "--tag", tag, "--rule", "clean-only")
        assert requested.returncode == 0, requested.stderr
        terminal.until(rf"gate-pending app-prod:{tag} {image.digest[:19]}", PROMOTION_TIMEOUT_SECONDS)

    # The scanner finishes: the stack's scan rule takes each scan event to the queue and the handler.
    found_none = _cli(env, "local", "scan-findings", f"app-ci@{clean.digest}")
    found_low = _cli(env, "local", "scan-findings", f"app-ci@{dirty.digest}", "--low", "1")
    assert (found_none.returncode, found_low.returncode) == (0, 0), found_none.stderr + found_low.stderr

    # Two events, handled in either order (the event source mapping runs two invocations at once).
    ended = sorted(
        terminal.until(r" (promoted|blocked) app-prod:", PROMOTION_TIMEOUT_SECONDS) for _ in range(2)
    )
    assert [line for line in ended if f"promoted app-prod:v1 {clean.digest[:19]} clean-only" in line]
    (blocked,) = [line for line in ended if f"blocked app-prod:v2 {dirty.digest[:19]} clean-only" in line]
    assert "1 LOW" in blocked and "no findings" in blocked
    held = ecr.describe_images(repositoryName="app-prod", filter={"tagStatus": "TAGGED"})["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in held] == [(clean.digest, ["v1"])]
