"""`promoter local --config`: the protected targets (`protect: true`) of the repositories it creates
get the repository policy the stack would put there, built by the same code
(promoter.model.protection) and merged the same way (promoter.aws.repository_policy), so a user can
see a direct push refused before deploying.

The writer and the policy's manager are the principal the local promoter runs as: the account's
administrator (the keys `promoter local` prints). Every other principal, such as one from
`promoter local credentials --principal arn:aws:iam::<account>:role/ci`, is refused, as every
principal but the promoter's roles and the break-glass ones is on AWS.
"""

from __future__ import annotations

from typing import Any

from promoter.aws.repository_policy import RepositoryPolicies, protect_repository
from promoter.model.config import PromotionConfig
from promoter.model.protection import protection_statements


def protect_local_repositories(ecr: Any, config: PromotionConfig, account: str) -> list[str]:
    """Protects each protected target of the home registry (they exist: `promoter local` created
    them); returns their names. Raises the registry errors of promoter.aws.repository_policy."""
    administrator = f"arn:aws:iam::{account}:root"
    statements = protection_statements([administrator], [administrator])
    policies = RepositoryPolicies(ecr)
    names = list(config.protected_repositories())
    for name in names:
        protect_repository(policies, name, statements)
    return names
