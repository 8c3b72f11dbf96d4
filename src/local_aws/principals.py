"""Who a request comes from on the local AWS: the principal behind a set of credentials.

AWS knows the identity behind every access key; here, in order:
1. a key made by `credentials_for(arn)` (`promoter local credentials --principal ARN`) carries its
   principal's ARN in itself, so it is deterministic and needs no registration: the same ARN gives
   the same key in every process, and the local AWS reads the ARN back;
2. keys that moto's STS handed out (`AssumeRole`) belong to that role (in the role's account);
3. any other key is its account's administrator (the account root), the account as
   `local_aws.accounts.account_of` finds it (a 12-digit key is that account, else the default).
   That is how every caller was treated before principals existed, so existing scripts keep working.

Each principal also has IAM's unique id (`Principal.user_id`), which SQS reports as a message's
`SenderId`: `AIDA...` for a user, `AROA...:<session>` for a role session, the account id for the
root (the SQS developer guide, ReceiveMessage's `SenderId`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from local_aws.accounts import account_of
from local_aws.policy import Principal

# Keys made here: this prefix, then the principal's ARN in unpadded base32 (no '/', as SigV4's
# Credential= field needs). Real keys start AKIA/ASIA and are 20 characters; these are longer.
LOCAL_KEY_PREFIX = "AKIALOCAL"
LOCAL_SECRET = "local-aws-secret"  # the local AWS checks no signatures
ROLE_SESSION_NAME = "local"
PRINCIPAL_ARN_RE = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):"
    r"(?:(?P<root>root)|(?P<kind>role|user)/(?P<path>(?:[\w+=,.@-]+/)*)(?P<name>[\w+=,.@-]{1,128}))"
)
# SQS's SenderId of what EventBridge delivers. AWS does not document the value (an id of the
# service's own, in the AIDA form of a user id, not a principal of the queue's account); the
# local AWS uses this one.
EVENTBRIDGE_SERVICE = "events.amazonaws.com"
EVENTBRIDGE_SENDER_ID = "AIDAEVENTBRIDGELOCAL7"


@dataclass(frozen=True)
class Credentials:
    """What `promoter local credentials` prints: the keys and the principal they stand for."""

    access_key_id: str
    secret_access_key: str
    principal: Principal

    def exports(self) -> list[str]:
        return [
            f"export AWS_ACCESS_KEY_ID={self.access_key_id}",
            f"export AWS_SECRET_ACCESS_KEY={self.secret_access_key}",
            "unset AWS_SESSION_TOKEN",
            f"# principal: {self.principal.arn} (account {self.principal.account})",
        ]


def parse_principal(arn: str) -> Principal:
    """The principal an IAM ARN names (a role, a user or an account root). Raises ValueError for
    anything else (a session ARN, a group, a malformed ARN)."""
    match = PRINCIPAL_ARN_RE.fullmatch(arn)
    if match is None:
        raise ValueError(
            f"not an IAM role, user or root ARN: {arn!r} "
            "(e.g. arn:aws:iam::210987654321:role/ci or arn:aws:iam::210987654321:user/alice)"
        )
    account = match["account"]
    if match["root"]:
        return Principal(arn=arn, account=account, user_id=account)
    digest = base64.b32encode(hashlib.sha256(arn.encode()).digest()).decode()[:17]
    if match["kind"] == "user":
        return Principal(arn=arn, account=account, user_id=f"AIDA{digest}")
    session = f"arn:{match['partition']}:sts::{account}:assumed-role/{match['name']}/{ROLE_SESSION_NAME}"
    return Principal(
        arn=arn, account=account, user_id=f"AROA{digest}:{ROLE_SESSION_NAME}", session_arn=session
    )


def credentials_for(arn: str) -> Credentials:
    """Deterministic credentials that act as `arn` on any local AWS. Raises ValueError for a bad ARN."""
    principal = parse_principal(arn)
    encoded = base64.b32encode(arn.encode()).decode().rstrip("=")
    return Credentials(f"{LOCAL_KEY_PREFIX}{encoded}", LOCAL_SECRET, principal)


def root_of(account: str) -> Principal:
    """The account's administrator: what unknown credentials act as."""
    return Principal(arn=f"arn:aws:iam::{account}:root", account=account, user_id=account)


def eventbridge() -> Principal:
    """EventBridge delivering to a rule's target (it calls as its service principal)."""
    return Principal.of_service(EVENTBRIDGE_SERVICE, EVENTBRIDGE_SENDER_ID)


def principal_of_key(access_key: str | None) -> Principal | None:
    """The principal of a key made by `credentials_for`, or of a moto STS session; None otherwise."""
    if not access_key:
        return None
    if access_key.startswith(LOCAL_KEY_PREFIX):
        encoded = access_key[len(LOCAL_KEY_PREFIX) :]
        try:
            arn = base64.b32decode(encoded + "=" * (-len(encoded) % 8)).decode()
            return parse_principal(arn)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
    return _assumed_role(access_key)


def principal_of(access_key: str | None, default_account: str) -> Principal:
    """Who calls with this access key (see the module docstring for the rules)."""
    known = principal_of_key(access_key)
    if known is not None:
        return known
    return root_of(account_of(access_key, default_account))


def _assumed_role(access_key: str) -> Principal | None:
    from moto.iam.models import iam_backends

    # Copied to lists: moto's own lookup does the same against concurrent inserts (moto #5881).
    for account_id, account in list(iam_backends.items()):
        for backend in list(account.values()):
            key = backend.access_keys.get(access_key)
            role_arn = getattr(key, "role_arn", None) if key is not None else None
            if role_arn:
                try:
                    principal = parse_principal(role_arn)
                except ValueError:
                    return root_of(account_id)
                return principal
    return None
