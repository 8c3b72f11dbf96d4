"""Which account a request comes from: the local stand-in for IAM's access-key lookup.

AWS knows the account of every access key. Here, in order:
0. keys made for a principal (`local_aws.principals.credentials_for`) belong to its account;
1. keys that moto's STS handed out (`AssumeRole`) belong to the role's account, as on AWS;
2. by local convention, an access key id of 12 digits *is* the account id
   (`AWS_ACCESS_KEY_ID=210987654321` talks to account 210987654321);
3. any other key belongs to the local AWS's default account.
"""

from __future__ import annotations

import re

CREDENTIAL_KEY_RE = re.compile(r"Credential=(?P<key>[^/,\s]+)/")
ACCOUNT_ID_RE = re.compile(r"\d{12}")


def access_key_of(authorization: str) -> str | None:
    """The access key id in a SigV4 `Authorization` header, if any."""
    match = CREDENTIAL_KEY_RE.search(authorization)
    return match["key"] if match else None


def account_of(access_key: str | None, default: str) -> str:
    """The account an access key belongs to (see the module docstring for the rules)."""
    if not access_key:
        return default
    from local_aws.principals import principal_of_key

    known = principal_of_key(access_key)
    if known is not None:
        return known.account
    if ACCOUNT_ID_RE.fullmatch(access_key):
        return access_key
    from moto.iam.models import iam_backends

    # Copied to a list: moto's own lookup does the same against concurrent inserts (moto #5881).
    for account_id, account in list(iam_backends.items()):
        for backend in list(account.values()):
            if access_key in backend.access_keys:
                return account_id
    return default
