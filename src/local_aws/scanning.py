"""Basic image scanning on the local ECR: which pushes are scanned, and the event a scan sends.

ECR scans an image on push when its repository says `scanOnPush` or a rule of the registry's
scanning configuration (PutRegistryScanningConfiguration, scan type BASIC, frequency SCAN_ON_PUSH)
has a repository filter that matches; `StartImageScan` scans one image by hand. A finished basic
scan is announced on the default bus as `ECR Image Scan` (tests/fixtures/events/ecr-image-scan.json).

There is no scanner here: a scan completes at once with the findings set for the image through the
control API (`POST /_local/scan-findings`, `promoter local scan-findings`), or with none; setting
findings for an image that is in the repository completes a new scan of it (and sends its event),
as a scanner finishing would. ENHANCED (Amazon Inspector) configurations are stored and described,
but only BASIC rules scan here: Inspector's own events (`Inspector2 Scan`) are not sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from local_aws import errors as e
from local_aws.manifests import wildcard_match

DETAIL_TYPE_IMAGE_SCAN = "ECR Image Scan"
# Where the registry's scanning configuration is kept (the store's settings, as JSON).
REGISTRY_SCANNING_SETTING = "registry-scanning-configuration"
SCAN_TYPES = ("BASIC", "ENHANCED")
SCAN_FREQUENCIES = ("SCAN_ON_PUSH", "CONTINUOUS_SCAN", "MANUAL")
# The service model: at most 2 rules, each with 1-100 filters of 1-256 characters.
MAX_SCANNING_RULES = 2
MAX_REPOSITORY_FILTERS = 100
DEFAULT_SCANNING_CONFIGURATION: dict[str, Any] = {"scanType": "BASIC", "rules": []}
SCAN_COMPLETE = {"status": "COMPLETE", "description": "The scan was completed."}


def parse_scanning_configuration(p: dict[str, Any]) -> dict[str, Any]:
    """The configuration a PutRegistryScanningConfiguration request sets; InvalidParameterException
    when it is not one ECR would take."""
    scan_type = p.get("scanType", "BASIC")
    if scan_type not in SCAN_TYPES:
        raise e.InvalidParameterException(
            f"Invalid parameter at 'scanType': {scan_type!r} is not one of {SCAN_TYPES}"
        )
    rules = p.get("rules", [])
    if not isinstance(rules, list) or len(rules) > MAX_SCANNING_RULES:
        raise e.InvalidParameterException(
            f"Invalid parameter at 'rules': a list of at most {MAX_SCANNING_RULES}"
        )
    parsed = []
    for rule in rules:
        frequency = rule.get("scanFrequency") if isinstance(rule, dict) else None
        if frequency not in SCAN_FREQUENCIES:
            raise e.InvalidParameterException(
                f"Invalid parameter at 'scanFrequency': {frequency!r} is not one of {SCAN_FREQUENCIES}"
            )
        if scan_type == "BASIC" and frequency == "CONTINUOUS_SCAN":
            raise e.InvalidParameterException("CONTINUOUS_SCAN needs the ENHANCED scan type")
        filters = rule.get("repositoryFilters")
        if not isinstance(filters, list) or not 1 <= len(filters) <= MAX_REPOSITORY_FILTERS:
            raise e.InvalidParameterException(
                f"Invalid parameter at 'repositoryFilters': 1 to {MAX_REPOSITORY_FILTERS} filters"
            )
        for f in filters:
            value = f.get("filter") if isinstance(f, dict) else None
            wildcard = isinstance(f, dict) and f.get("filterType") == "WILDCARD"
            if not wildcard or not isinstance(value, str) or not 1 <= len(value) <= 256:
                raise e.InvalidParameterException(
                    "Each repository filter needs filterType WILDCARD and a filter"
                )
        parsed.append(
            {
                "scanFrequency": frequency,
                "repositoryFilters": [{"filter": f["filter"], "filterType": "WILDCARD"} for f in filters],
            }
        )
    return {"scanType": scan_type, "rules": parsed}


def load_configuration(stored: str) -> dict[str, Any]:
    """The stored configuration, or ECR's default (BASIC, no rules) when none was put."""
    return json.loads(stored) if stored else dict(DEFAULT_SCANNING_CONFIGURATION)


def filter_matches(pattern: str, repository: str) -> bool:
    """ECR's scanning filters (user guide, "Filter wildcards"): a filter with `*` matches the whole
    name, each `*` standing for any run of characters; one without matches every name containing it."""
    return wildcard_match(pattern, repository) if "*" in pattern else pattern in repository


def scans_on_push(configuration: dict[str, Any], repository: str, repository_scan_on_push: bool) -> bool:
    """Whether a push into `repository` is scanned: the repository's own `scanOnPush`, or a BASIC
    SCAN_ON_PUSH rule of the registry whose filters match it."""
    if repository_scan_on_push:
        return True
    if configuration.get("scanType") != "BASIC":
        return False
    return any(
        rule["scanFrequency"] == "SCAN_ON_PUSH"
        and any(filter_matches(f["filter"], repository) for f in rule["repositoryFilters"])
        for rule in configuration.get("rules", [])
    )


def severity_counts(findings: Iterable[dict[str, Any]]) -> dict[str, int]:
    """`findingSeverityCounts`: how many findings of each severity (absent severities left out)."""
    counts: dict[str, int] = {}
    for finding in findings:
        severity = str(finding.get("severity", "UNDEFINED"))
        counts[severity] = counts.get(severity, 0) + 1
    return counts


def scan_event_detail(
    repository: str, digest: str, tags: Iterable[str], counts: dict[str, int]
) -> dict[str, Any]:
    """The `detail` of an `ECR Image Scan` event, shaped like tests/fixtures/events/ecr-image-scan.json."""
    return {
        "scan-status": "COMPLETE",
        "repository-name": repository,
        "finding-severity-counts": dict(counts),
        "image-digest": digest,
        "image-tags": list(tags),
    }
