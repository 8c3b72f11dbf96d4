"""Pull times and pull-time update exclusions on the local ECR.

ECR records when an image was last pulled (`lastRecordedPullTime` in DescribeImages), which
lifecycle rules with `sinceImagePulled` count from. A pull is a manifest fetch: BatchGetImage, or a
GET of a manifest on the registry API. `RegisterPullTimeUpdateExclusion` names IAM principals (roles
and users, at most 100 a registry) whose pulls are not recorded, so automation such as the promoter
does not keep images alive (ECR API reference, PullTimeUpdateExclusion). ECR refreshes the time at
least once a day; the local one records every pull, which only makes a missed exclusion easier to see.

Both are kept in the store's settings (JSON), so `--data` keeps them across restarts.
"""

from __future__ import annotations

import json
import re
from typing import Any

from local_aws import errors as e
from local_aws.policy import Principal
from local_aws.store import Scope, Store, now

EXCLUSIONS_SETTING = "pull-time-update-exclusions"
PULL_TIME_SETTING = "pull-time/"  # + "<repository>@<digest>"
MAX_EXCLUSIONS = 100
# The service model's pattern and length for principalArn (roles and users only).
PRINCIPAL_ARN_RE = re.compile(r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[\w+=,.@-]+(/[\w+=,.@-]+)*$")
MAX_PRINCIPAL_ARN_CHARS = 200


def principal_arn(value: Any) -> str:
    """A principalArn parameter, or InvalidParameterException in the model's words."""
    valid = isinstance(value, str) and len(value) <= MAX_PRINCIPAL_ARN_CHARS and PRINCIPAL_ARN_RE.match(value)
    if not valid:
        raise e.InvalidParameterException(
            f"Invalid parameter at 'principalArn' failed to satisfy constraint: 'Member must satisfy regular "
            f"expression pattern: {PRINCIPAL_ARN_RE.pattern}' (got {value!r})"
        )
    return value


def exclusions(store: Store, scope: Scope) -> dict[str, float]:
    """The registry's excluded principals, ARN -> when each was registered (epoch seconds)."""
    return json.loads(store.setting(scope, EXCLUSIONS_SETTING, "") or "{}")


def save_exclusions(store: Store, scope: Scope, excluded: dict[str, float]) -> None:
    store.set_setting(scope, EXCLUSIONS_SETTING, json.dumps(excluded))


def record_pull(store: Store, scope: Scope, repository: str, digest: str, puller: Principal) -> None:
    """A pull of `repository@digest` by `puller`: its time is recorded unless `puller` (the role of
    a role session, or the user) is excluded."""
    if puller.arn in exclusions(store, scope):
        return
    store.set_setting(scope, f"{PULL_TIME_SETTING}{repository}@{digest}", str(now()))


def last_pull(store: Store, scope: Scope, repository: str, digest: str) -> float | None:
    """When `repository@digest` was last pulled by someone not excluded; None if never."""
    recorded = store.setting(scope, f"{PULL_TIME_SETTING}{repository}@{digest}", "")
    return float(recorded) if recorded else None
