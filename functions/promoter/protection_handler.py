"""The custom resource that puts a protected repository's statements in place (infra/protection.py).

CloudFormation cannot own the policy of a repository it did not create, and must not replace what
others wrote there: this resource merges the promoter's statements into the repository's policy by
their Sid (promoter.model.protection) on Create and Update, and on Delete takes out exactly those.
One resource per repository; its physical id is the repository name, so renaming a protected target
makes CloudFormation delete the old one (its repository unprotected) after creating the new one.

Properties: `RepositoryName`, `Region` (the repository's), and `Statements` (the statements as
JSON text: a string reaches the function exactly as synthesized, where CloudFormation would turn
nested values into strings).
The answer goes to CloudFormation's pre-signed `ResponseURL`; any failure answers FAILED with the
reason (logged at ERROR with its traceback), so a stack never waits an hour for a silent function.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

import boto3

from promoter.aws.registry import make_ecr_client
from promoter.aws.repository_policy import RepositoryPolicies, protect_repository, unprotect_repository
from promoter.exceptions import RepositoryNotFoundError

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

CREATE, UPDATE, DELETE = "Create", "Update", "Delete"
SUCCESS, FAILED = "SUCCESS", "FAILED"
RESPONSE_TIMEOUT_SECONDS = 30
# CloudFormation shows at most this much of a reason.
MAX_REASON_CHARS = 1000


def handle(event: dict[str, Any], context: Any) -> None:
    """CloudFormation custom resource entry point."""
    properties = event.get("ResourceProperties") or {}
    repository = str(properties.get("RepositoryName", ""))
    physical_id = event.get("PhysicalResourceId") or repository or event.get("LogicalResourceId", "")
    status, reason = SUCCESS, ""
    try:
        client = make_ecr_client(boto3.session.Session(), region_name=properties.get("Region") or None)
        physical_id = apply(event, RepositoryPolicies(client))
    except Exception as exc:
        logger.exception("%s of the protection of %r failed", event.get("RequestType"), repository)
        status, reason = FAILED, f"{type(exc).__name__}: {exc}"
    respond(event, context, status, physical_id, reason)


def apply(event: dict[str, Any], policies: RepositoryPolicies) -> str:
    """Does what the request asks; returns the physical id. Raises what ECR answered."""
    properties = event.get("ResourceProperties") or {}
    request = event.get("RequestType")
    repository = str(properties["RepositoryName"])
    if request == DELETE:
        # The physical id is the repository this resource protected (a failed Create's too).
        protected = str(event.get("PhysicalResourceId") or repository)
        try:
            unprotect_repository(policies, protected)
        except RepositoryNotFoundError:
            logger.info("repository %r is gone: nothing to unprotect", protected)
        return protected
    if request not in (CREATE, UPDATE):
        raise ValueError(f"unknown RequestType {request!r}")
    statements = json.loads(str(properties["Statements"]))
    protect_repository(policies, repository, statements)
    logger.info("%s: repository %r protected", request, repository)
    return repository


def respond(event: dict[str, Any], context: Any, status: str, physical_id: str, reason: str = "") -> None:
    """PUTs the answer to CloudFormation's pre-signed URL (an empty Content-Type, as it signed it)."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": (reason or f"see CloudWatch log stream {getattr(context, 'log_stream_name', '')}")[
                :MAX_REASON_CHARS
            ],
            "PhysicalResourceId": physical_id,
            "StackId": event.get("StackId"),
            "RequestId": event.get("RequestId"),
            "LogicalResourceId": event.get("LogicalResourceId"),
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=RESPONSE_TIMEOUT_SECONDS) as response:
        response.read()
