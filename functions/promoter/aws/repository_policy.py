"""A repository's policy on the ECR API: read it, put the promoter's protection into it, take it
out again (promoter.model.protection decides what the policy becomes; this module only calls ECR).

Read, merge, write: ECR has no conditional SetRepositoryPolicy, so a statement someone adds between
the read and the write of one protection change is lost; the change is one GetRepositoryPolicy and
one SetRepositoryPolicy (or DeleteRepositoryPolicy) apart, at deploy time only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from promoter.aws.registry import _ecr_errors
from promoter.exceptions import RegistryError
from promoter.model.protection import merge_protection, remove_protection


class _NoPolicy(RegistryError):
    """The repository has no policy (RepositoryPolicyNotFoundException): an answer, not a failure."""


_NO_POLICY = {"RepositoryPolicyNotFoundException": _NoPolicy}


class RepositoryPolicies:
    """Get, set and delete repository policies. Raises RepositoryNotFoundError for a repository
    that does not exist, AccessDeniedError, RegistryUnavailableError, RegistryError otherwise."""

    def __init__(self, client: Any) -> None:
        self._ecr = client

    def get(self, repository: str) -> str | None:
        """The policy text, None when the repository has none."""
        try:
            with _ecr_errors("GetRepositoryPolicy", repository, _NO_POLICY):
                return str(self._ecr.get_repository_policy(repositoryName=repository)["policyText"])
        except _NoPolicy:
            return None

    def set(self, repository: str, policy_text: str) -> None:
        with _ecr_errors("SetRepositoryPolicy", repository):
            self._ecr.set_repository_policy(repositoryName=repository, policyText=policy_text)

    def delete(self, repository: str) -> None:
        """Deletes the policy; nothing to do when there is none."""
        try:
            with _ecr_errors("DeleteRepositoryPolicy", repository, _NO_POLICY):
                self._ecr.delete_repository_policy(repositoryName=repository)
        except _NoPolicy:
            return


def protect_repository(
    policies: RepositoryPolicies, repository: str, statements: Sequence[dict[str, Any]]
) -> str:
    """Puts the protection statements into the repository's policy (the others kept); returns the
    policy as set."""
    merged = merge_protection(policies.get(repository), statements)
    policies.set(repository, merged)
    return merged


def unprotect_repository(policies: RepositoryPolicies, repository: str) -> None:
    """Takes the promoter's statements out of the repository's policy, and only those."""
    current = policies.get(repository)
    if current is None:
        return
    remaining = remove_protection(current)
    if remaining is None:
        policies.delete(repository)
    elif remaining != current:
        policies.set(repository, remaining)
