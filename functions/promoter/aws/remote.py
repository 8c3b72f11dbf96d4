"""Registries in other accounts and regions: ECR clients on assumed-role sessions, cached.

A target with a `role` is written with that role's credentials, assumed (STS AssumeRole) from the
promoter's own. botocore refreshes them before they expire (`RefreshableCredentials`: from 15
minutes ahead, at the latest 10), so a warm Lambda keeps one session per role and region and never
writes with expired keys. A target without a role is written with the promoter's own credentials
and `registryId` set: the target repository's policy must then allow the promoter's role.
Nothing here retries: STS calls are one attempt, and ECR calls retry in `promoter.aws.registry`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from promoter.aws.registry import EcrRegistry, Registry, make_ecr_client
from promoter.exceptions import AccessDeniedError, RegistryUnavailableError

if TYPE_CHECKING:
    from promoter.model.plan import Action

# Shows in the target account's CloudTrail as the assumed-role session name.
ASSUME_ROLE_SESSION_NAME = "ecr-image-promoter"
# One hour: the default maximum session of a role; botocore refreshes 10-15 minutes before the end.
ASSUME_ROLE_DURATION_SECONDS = 3600
_THROTTLED = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded"})

RegistryKey = tuple[str | None, str | None, str | None]


class TargetRegistries:
    """`registry_for(account, region, role)`: the ECR registry a remote target is written to.

    One `EcrRegistry` per (account, region, role), built once and reused; assumed credentials are
    shared by all regions of one role and refreshed by botocore before they expire."""

    def __init__(
        self,
        session: boto3.session.Session | None = None,
        *,
        duration_seconds: int = ASSUME_ROLE_DURATION_SECONDS,
    ) -> None:
        self._session = session or boto3.session.Session()
        self._duration = duration_seconds
        self._registries: dict[RegistryKey, EcrRegistry] = {}
        self._credentials: dict[str, RefreshableCredentials] = {}
        self._lock = threading.Lock()

    def registry_for(self, account: str | None, region: str | None, role: str | None) -> EcrRegistry:
        """Raises AccessDeniedError when the role cannot be assumed, RegistryUnavailableError when
        STS cannot be reached or throttles (retryable)."""
        key = (account, region, role)
        with self._lock:
            registry = self._registries.get(key)
            if registry is None:
                session = self._role_session(role) if role else self._session
                client = make_ecr_client(session, region_name=region, registry_id=account)
                registry = self._registries[key] = EcrRegistry(client)
            return registry

    def credentials(self, role: str) -> RefreshableCredentials:
        """The refreshing credentials of one assumed role (assumed now, if not yet)."""
        if role not in self._credentials:
            self._credentials[role] = RefreshableCredentials.create_from_metadata(
                metadata=self._assume(role),
                refresh_using=lambda: self._assume(role),
                method="sts-assume-role",
            )
        return self._credentials[role]

    def _role_session(self, role: str) -> boto3.session.Session:
        core = botocore.session.Session()
        core._credentials = self.credentials(role)  # botocore's documented way to plug in a provider
        return boto3.session.Session(botocore_session=core, region_name=self._session.region_name)

    def _assume(self, role: str) -> dict[str, Any]:
        sts = self._session.client("sts")
        try:
            creds = sts.assume_role(
                RoleArn=role, RoleSessionName=ASSUME_ROLE_SESSION_NAME, DurationSeconds=self._duration
            )["Credentials"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            error = RegistryUnavailableError if code in _THROTTLED else AccessDeniedError
            raise error(f"AssumeRole {role}: {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise RegistryUnavailableError(f"AssumeRole {role}: {exc}") from exc
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }


_default: TargetRegistries | None = None
_default_lock = threading.Lock()


def default_target_registries() -> TargetRegistries:
    """One per process, on the default credentials: a warm Lambda reuses its sessions."""
    global _default
    with _default_lock:
        if _default is None:
            _default = TargetRegistries()
        return _default


def target_registry_of(action: Action, home: Registry, targets: TargetRegistries | None = None) -> Registry:
    """The registry an action's target lives in: `home`, or the other account's or region's."""
    if not action.remote_target:
        return home
    registries = targets or default_target_registries()
    return registries.registry_for(action.target_account, action.target_region, action.target_role)
