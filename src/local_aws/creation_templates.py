"""Repository creation templates on the local ECR (CreateRepositoryCreationTemplate and friends).

A template names a namespace `prefix` (`prod` stands for `prod/...`: ECR always assumes a `/` after
it; `ROOT` for every repository no other template covers) and the operations it applies to
(`appliedFor`: CREATE_ON_PUSH, PULL_THROUGH_CACHE, REPLICATION). When ECR creates a repository for
one of those, the most specific template applied for it sets the repository's tag mutability
(exclusion filters included), encryption, lifecycle policy, repository policy and resource tags.
With CREATE_ON_PUSH, a push (PutImage, a layer upload, a manifest PUT on `/v2/`) into a repository
that does not exist creates it (ECR user guide, "Private repository creation templates"); without
a template such a push is `RepositoryNotFoundException` as before. A tool that calls
CreateRepository itself bypasses templates.

Inferred: when the most specific prefix has a template that is not applied for the operation, a
less specific one (or ROOT) that is applied for it is used. Templates live in the store's settings.
"""

from __future__ import annotations

import json
import re
from typing import Any

from local_aws import errors as e

# Which template applies is the engine's rule as much as ECR's: one copy of it, re-exported here.
from promoter.model.creation_templates import CREATE_ON_PUSH, ROOT, covers, template_for  # noqa: F401

TEMPLATES_SETTING = "repository-creation-templates"
LIFECYCLE_POLICY_SETTING = "lifecycle-policy/"  # + repository name
RESOURCE_TAGS_SETTING = "resource-tags/"  # + repository name
APPLIED_FOR = ("REPLICATION", "PULL_THROUGH_CACHE", CREATE_ON_PUSH)
# The service model's Prefix pattern (1-256 characters).
PREFIX_RE = re.compile(r"^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*\/?|ROOT)$")
MAX_DESCRIPTION_CHARS = 256
MAX_POLICY_CHARS = 30720


def prefix_of(p: dict[str, Any]) -> str:
    """The request's `prefix` (without a trailing `/`), or InvalidParameterException."""
    prefix = p.get("prefix")
    if not isinstance(prefix, str) or not 1 <= len(prefix) <= 256 or not PREFIX_RE.match(prefix):
        raise e.InvalidParameterException(
            f"Invalid parameter at 'prefix' failed to satisfy constraint: 'Member must satisfy regular "
            f"expression pattern: {PREFIX_RE.pattern}' (got {prefix!r})"
        )
    return prefix.rstrip("/")


def template_fields(p: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings a Create/UpdateRepositoryCreationTemplate request gives, over `base` (an update
    keeps what it does not name). Mutability is checked by the caller (ECR's four modes)."""
    out = dict(base or {})
    applied = p.get("appliedFor", out.get("appliedFor"))
    if not isinstance(applied, list) or not applied or any(a not in APPLIED_FOR for a in applied):
        raise e.InvalidParameterException(
            f"Invalid parameter at 'appliedFor': a non-empty list of {', '.join(APPLIED_FOR)}, "
            f"got {applied!r}"
        )
    out["appliedFor"] = list(dict.fromkeys(applied))
    for key, limit in (
        ("description", MAX_DESCRIPTION_CHARS),
        ("repositoryPolicy", MAX_POLICY_CHARS),
        ("lifecyclePolicy", MAX_POLICY_CHARS),
    ):
        if key in p:
            if not isinstance(p[key], str) or len(p[key]) > limit:
                raise e.InvalidParameterException(
                    f"Invalid parameter at '{key}': a string of at most {limit}"
                )
            out[key] = p[key]
    for key in ("repositoryPolicy", "lifecyclePolicy"):
        if out.get(key):
            try:
                json.loads(out[key])
            except ValueError as exc:
                raise e.InvalidParameterException(f"Invalid parameter at '{key}': not JSON") from exc
    if "encryptionConfiguration" in p:
        encryption = p["encryptionConfiguration"]
        if not isinstance(encryption, dict) or encryption.get("encryptionType") not in (
            "AES256",
            "KMS",
            "KMS_DSSE",
        ):
            raise e.InvalidParameterException("Invalid parameter at 'encryptionConfiguration.encryptionType'")
        out["encryptionConfiguration"] = encryption
    if "resourceTags" in p:
        tags = p["resourceTags"]
        if not isinstance(tags, list) or not all(
            isinstance(t, dict) and isinstance(t.get("Key"), str) for t in tags
        ):
            raise e.InvalidParameterException("Invalid parameter at 'resourceTags': a list of {Key, Value}")
        out["resourceTags"] = tags
    if "customRoleArn" in p:
        out["customRoleArn"] = p["customRoleArn"]
    return out


def load(stored: str) -> dict[str, dict[str, Any]]:
    """The registry's templates by prefix."""
    return json.loads(stored) if stored else {}
