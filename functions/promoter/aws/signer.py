"""AWS Signer `GetRevocationStatus` for Notation signatures made by AWS Signer (ECR managed signing).

The Notation verifier builds the question (`SignerRevocationQuery`: the signing profile version and
signing job from the envelope's attributes, the authentic signing time, platform
`Notation-OCI-SHA384-ECDSA`, one hash per certificate of the chain), as AWS's own Notation plugin
does (aws/aws-signer-notation-plugin, `internal/verifier/verifier.go`); this adapter asks it. Any
revoked entity in the answer (the profile, the job, a certificate) refuses the signature.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from promoter.exceptions import GateUnavailableError
from promoter.model.signatures import SignatureRejected, SignerRevocationQuery

SIGNER_MAX_ATTEMPTS = 4
# Worth handing the event back for (throttling, a fault on AWS's side); any other refusal is final.
RETRYABLE_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "InternalServiceErrorException", "ServiceUnavailable"}
)


class SignerRevocation:
    """`signer_revocation_check` for the Notation verifier: asks AWS Signer whether a signature it
    made, its profile version or a certificate of its chain has been revoked."""

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

    def __call__(self, query: SignerRevocationQuery) -> None:
        """Returns when nothing is revoked. Raises SignatureRejected (revoked, or refused for a
        reason a retry will not change, e.g. an unknown profile), GateUnavailableError (throttled,
        a service fault: retry the event)."""
        try:
            response = self._signer().get_revocation_status(
                signatureTimestamp=query.signature_timestamp,
                platformId=query.platform_id,
                profileVersionArn=query.profile_version_arn,
                jobArn=query.job_arn,
                certificateHashes=list(query.certificate_hashes),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in RETRYABLE_CODES or status >= 500:
                raise GateUnavailableError(f"AWS Signer GetRevocationStatus: {code}") from exc
            raise SignatureRejected(f"AWS Signer GetRevocationStatus refused: {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise GateUnavailableError(f"AWS Signer GetRevocationStatus: {exc}") from exc
        revoked = list(response.get("revokedEntities") or ())
        if revoked:
            named = [e for e in revoked if e.startswith("arn:")]
            certificates = len(revoked) - len(named)
            parts = [f"revoked by AWS Signer: {', '.join(named)}"] if named else []
            if certificates:
                parts.append(f"{certificates} certificate(s) of the chain revoked by AWS Signer")
            raise SignatureRejected("; ".join(parts))
