"""The approval channel on the local AWS: the stack's function URL, at `<endpoint>/approvals/` (issue 20).

What infra/approvals.py deploys (a function URL with `AuthType: AWS_IAM` running
`promoter.approval_handler.handle`), served by `local_aws.function_urls`: the caller's SigV4
signature is checked, then the resource policy the stack writes (infra.approval_policies: only
principals matching some rule's approvers; never the promoter's own roles), and only then does the
handler run, with the caller's ARN in `requestContext.authorizer.iam.userArn` as AWS hands it.

Call it as AWS is called: `POST <endpoint>/approvals/` with the JSON body
`{"wait_id": "...", "decision": "approve" | "reject", "reason": "..."}`, signed for the service
`lambda` in the local region, with a principal's keys (`promoter local credentials --principal
ARN`, or keys of the local STS's AssumeRole, whose RoleSessionName is the person).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from infra.approval_policies import approvers_of, local_resource_policy
from local_aws.function_urls import FunctionUrl, FunctionUrls

if TYPE_CHECKING:
    from promoter.model.config import PromotionConfig

APPROVALS_PATH = "/approvals/"
APPROVAL_FUNCTION_NAME = "image-promoter-approvals"


def approval_url_of(endpoint: str) -> str:
    """The approval channel's URL on the local AWS at `endpoint` (`http://127.0.0.1:4566`)."""
    return f"{endpoint.rstrip('/')}{APPROVALS_PATH}"


def approval_function_arn(account: str, region: str) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{APPROVAL_FUNCTION_NAME}"


def serve_approvals(
    urls: FunctionUrls,
    config: PromotionConfig,
    *,
    account: str,
    region: str,
    promoter_roles: Iterable[str] = (),
) -> str | None:
    """Serves the approval channel on `urls` (a LocalAws's `function_urls`) when some rule
    requires approval, as the stack creates it only then; returns its path (None: no approval
    gate, nothing served). `promoter_roles`: the principals the promoter runs as, denied as the
    stack denies its roles. The handler reads its configuration and tables from this process's
    environment, as in Lambda (settings.function_environment)."""
    approvers = approvers_of(config)
    if not approvers:
        urls.remove(APPROVALS_PATH)
        return None
    from promoter import approval_handler

    arn = approval_function_arn(account, region)
    urls.add(
        FunctionUrl(
            path=APPROVALS_PATH,
            function_arn=arn,
            handler=approval_handler.handle,
            resource_policy=local_resource_policy(arn, approvers, promoter_roles),
            function_name=APPROVAL_FUNCTION_NAME,
        )
    )
    return APPROVALS_PATH
