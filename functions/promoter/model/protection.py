"""Protected target repositories: the repository-policy statements that leave the promoter the only
writer, and how they are merged into (and taken out of) a policy someone else owns. Pure: no I/O.

One source for every place that puts protection in place: the stack (infra/protection.py builds
the statements at synth time), its custom resource (promoter.protection_handler merges them into
the repository's policy at deploy time) and `promoter local --config` (the local repositories).

The stack adds two statements, each with a Sid starting with PROTECTION_SID_PREFIX, and touches
nothing else: the repository's other statements are kept as they are, and removing protection
removes exactly the statements with that prefix (the policy is deleted only when nothing else is
left in it). Both deny, to every principal but the exempted ones (`aws:PrincipalArn`, which for an
assumed role's session is the role's ARN; a principal without one, such as a service, is denied):
- PROTECTION_IMAGES_SID: every action that writes, moves, deletes or expires an image, or that
  would make the repository's tags mutable again, except for the promoter's roles (its function's
  and its reconciliation's; in a target account the role the promoter assumes there) and the
  break-glass principals;
- PROTECTION_POLICY_SID: changing or deleting the policy, except for the role that manages the
  protection and the break-glass principals (the promoter's own roles never need it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

POLICY_VERSION = "2012-10-17"
PROTECTION_SID_PREFIX = "ImagePromoterProtect"
PROTECTION_IMAGES_SID = f"{PROTECTION_SID_PREFIX}Images"
PROTECTION_POLICY_SID = f"{PROTECTION_SID_PREFIX}Policy"
# What changes the images a protected repository serves (Service Authorization Reference for Amazon
# ECR, actions on the `repository` resource): pushing layers and manifests (a tag written or moved),
# deleting images or the repository with them, a lifecycle policy that expires them, archiving
# them, and the tag mutability that an IMMUTABLE repository relies on.
IMAGE_WRITE_ACTIONS = (
    "ecr:BatchDeleteImage",
    "ecr:CompleteLayerUpload",
    "ecr:DeleteLifecyclePolicy",
    "ecr:DeleteRepository",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:PutImageTagMutability",
    "ecr:PutLifecyclePolicy",
    "ecr:UpdateImageStorageClass",
    "ecr:UploadLayerPart",
)
# Changing who may do the above.
POLICY_WRITE_ACTIONS = ("ecr:DeleteRepositoryPolicy", "ecr:SetRepositoryPolicy")
# What the manager of the protection calls, on the protected repositories only.
POLICY_MANAGE_ACTIONS = ("ecr:DeleteRepositoryPolicy", "ecr:GetRepositoryPolicy", "ecr:SetRepositoryPolicy")


def protection_statements(
    writers: Sequence[str], policy_managers: Sequence[str], break_glass: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The two Deny statements of a protected repository. `writers`: ARNs of the promoter's roles;
    `policy_managers`: the role that puts the protection in place; `break_glass`: principal ARNs
    (IAM wildcards allowed) that may do both. Raises ValueError when nobody could write at all."""
    if not writers:
        raise ValueError("a protected repository needs the promoter's roles as its writers")

    def deny(sid: str, actions: Sequence[str], exempt: Sequence[str]) -> dict[str, Any]:
        return {
            "Sid": sid,
            "Effect": "Deny",
            "Principal": "*",
            "Action": list(actions),
            "Condition": {"ArnNotLike": {"aws:PrincipalArn": list(dict.fromkeys(exempt))}},
        }

    return [
        deny(PROTECTION_IMAGES_SID, IMAGE_WRITE_ACTIONS, [*writers, *break_glass]),
        deny(PROTECTION_POLICY_SID, POLICY_WRITE_ACTIONS, [*policy_managers, *break_glass]),
    ]


def _statements_of(policy_text: str | None) -> list[Any]:
    """The statements of a policy document (a lone statement object counts as a list of one).
    Raises ValueError for text that is not a policy document."""
    if not policy_text:
        return []
    document = json.loads(policy_text)
    if not isinstance(document, dict):
        raise ValueError("the repository policy is not a JSON object")
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def is_protection_statement(statement: Any) -> bool:
    """Whether a statement is one the promoter added (by its Sid)."""
    return isinstance(statement, dict) and str(statement.get("Sid", "")).startswith(PROTECTION_SID_PREFIX)


def merge_protection(policy_text: str | None, statements: Sequence[dict[str, Any]]) -> str:
    """The policy with `statements` in place of any the promoter added before; every other
    statement kept, in its order, and the document's other keys (Version, Id) too."""
    document = json.loads(policy_text) if policy_text else {}
    kept = [s for s in _statements_of(policy_text) if not is_protection_statement(s)]
    merged = {"Version": POLICY_VERSION, **document, "Statement": [*kept, *statements]}
    return json.dumps(merged, sort_keys=True)


def remove_protection(policy_text: str | None) -> str | None:
    """The policy without the promoter's statements; None when no statement would be left (the
    policy is then deleted: ECR refuses an empty one)."""
    kept = [s for s in _statements_of(policy_text) if not is_protection_statement(s)]
    if not kept:
        return None
    document = json.loads(policy_text or "{}")
    return json.dumps({**document, "Statement": kept}, sort_keys=True)


def is_protected(policy_text: str | None) -> bool:
    """Whether the policy holds the promoter's protection (both statements)."""
    sids = {s.get("Sid") for s in _statements_of(policy_text) if is_protection_statement(s)}
    return {PROTECTION_IMAGES_SID, PROTECTION_POLICY_SID} <= sids
