"""AWS Signer `GetRevocationStatus` for Notation signatures made by AWS Signer (ECR managed signing).

The request is the one AWS's own Notation plugin makes (aws/aws-signer-notation-plugin,
`internal/verifier/verifier.go`): the signing profile version and signing job from the envelope's
extended attributes (`com.amazonaws.signer.signingProfileVersion`, `...signingJob`), the
authentic signing time, platform `Notation-OCI-SHA384-ECDSA`, and one hash per certificate of the
chain: hex SHA-384 of its TBSCertificate followed by that of its issuer's (the root: its own,
twice). Any revoked entity in the answer (the profile, the job, a certificate) refuses the signature.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from promoter.exceptions import GateUnavailableError

SIGNER_MAX_ATTEMPTS = 4
NOTATION_PLATFORM_ID = "Notation-OCI-SHA384-ECDSA"
PROFILE_VERSION_ATTRIBUTE = "com.amazonaws.signer.signingProfileVersion"
SIGNING_JOB_ATTRIBUTE = "com.amazonaws.signer.signingJob"
RETRYABLE_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "InternalServiceErrorException", "ServiceUnavailable"}
)


class RevocationRefused(Exception):
    """AWS Signer says the signature's profile, job or a certificate is revoked, or cannot say
    for a reason a retry will not change; str() says which."""


def certificate_hashes(chain_der: Sequence[bytes]) -> list[str]:
    """The `certificateHashes` of a chain given leaf first (DER certificates)."""
    from cryptography import x509

    tbs = [
        hashlib.sha384(x509.load_der_x509_certificate(der).tbs_certificate_bytes).hexdigest()
        for der in chain_der
    ]
    return [tbs[i] + tbs[min(i + 1, len(tbs) - 1)] for i in range(len(tbs))]


class SignerRevocation:
    """Asks AWS Signer whether a Notation signature it made has been revoked."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    def _signer(self) -> Any:
        if self._client is None:
            # GetRevocationStatus is served on `data-signer.<region>...` (host prefix `data-`);
            # botocore documents inject_host_prefix=False for a custom endpoint (a proxy, a VPC
            # endpoint URL), whose host the prefix would turn into a name that does not resolve.
            custom = os.environ.get("AWS_ENDPOINT_URL_SIGNER") or os.environ.get("AWS_ENDPOINT_URL")
            config = Config(
                retries={"mode": "standard", "total_max_attempts": SIGNER_MAX_ATTEMPTS},
                inject_host_prefix=not custom,
            )
            self._client = boto3.client("signer", config=config)
        return self._client

    def check(
        self,
        chain_der: Sequence[bytes],
        *,
        profile_version_arn: str,
        job_arn: str,
        signing_time: datetime,
    ) -> None:
        """Returns when nothing is revoked. Raises RevocationRefused (revoked, or a refusal such as
        an unknown profile), GateUnavailableError (throttled, service fault: retry the event)."""
        try:
            response = self._signer().get_revocation_status(
                signatureTimestamp=signing_time,
                platformId=NOTATION_PLATFORM_ID,
                profileVersionArn=profile_version_arn,
                jobArn=job_arn,
                certificateHashes=certificate_hashes(chain_der),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in RETRYABLE_CODES or status >= 500:
                raise GateUnavailableError(f"AWS Signer GetRevocationStatus: {code}") from exc
            raise RevocationRefused(f"AWS Signer GetRevocationStatus failed: {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise GateUnavailableError(f"AWS Signer GetRevocationStatus: {exc}") from exc
        revoked = list(response.get("revokedEntities") or ())
        if revoked:
            named = [e for e in revoked if e.startswith("arn:")]
            certificates = len(revoked) - len(named)
            parts = [f"revoked: {', '.join(named)}"] if named else []
            if certificates:
                parts.append(f"{certificates} certificate(s) of the chain revoked")
            raise RevocationRefused("; ".join(parts))
