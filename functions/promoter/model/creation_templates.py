"""Which repository creation template ECR applies when it creates a repository (issue 21, item 3).

A template names a namespace `prefix` (`prod` stands for `prod/...`: ECR always assumes a `/` after
it; `ROOT` for every repository no other template covers) and the operations it applies to
(`appliedFor`: CREATE_ON_PUSH, PULL_THROUGH_CACHE, REPLICATION). ECR creates a repository with the
most specific template applied for the operation (ECR user guide, "Private repository creation
templates"). Templates are given as DescribeRepositoryCreationTemplates returns them, by prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ROOT = "ROOT"
CREATE_ON_PUSH = "CREATE_ON_PUSH"


def covers(prefix: str, repository: str) -> bool:
    """Whether a template's prefix stands for `repository` (`prod` covers `prod/x`, but neither
    `prod` nor `production/x`)."""
    return prefix == ROOT or repository.startswith(prefix.rstrip("/") + "/")


def template_for(
    templates: Mapping[str, Mapping[str, Any]], repository: str, operation: str
) -> Mapping[str, Any] | None:
    """The template ECR applies when it creates `repository` for `operation`: the longest prefix
    covering the name, ROOT last; None when none is applied for `operation`."""
    candidates = [
        t
        for prefix, t in templates.items()
        if covers(prefix, repository) and operation in (t.get("appliedFor") or ())
    ]
    candidates.sort(key=lambda t: (t["prefix"] != ROOT, len(t["prefix"])), reverse=True)
    return candidates[0] if candidates else None
