"""KMS `Verify` for cosign's `awskms:///<key ARN>` keys: the signature is checked where the key lives,
and no key material sits in the configuration.

Real KMS answers a signature that does not verify with `KMSInvalidSignatureException`; some
implementations answer `SignatureValid: false` instead: both mean "not this key". The algorithm
follows the key (cosign signs ECDSA keys with ECDSA_SHA_*, RSA keys with RSASSA_PKCS1_V1_5 or PSS):
the ones that do not fit the key are refused by KMS (`InvalidKeyUsageException`,
`ValidationException`) and the next is tried, so no `DescribeKey` (and no grant for it) is needed.

The payload goes as `MessageType: RAW` (KMS hashes it with the algorithm's hash), as long as KMS
takes it raw (4096 bytes; a cosign payload is ~300); a longer one goes as its digest. RAW is also
what every KMS implementation agrees on: moto 5.2.5 hashes a DIGEST message once more, so a correct
signature verified as DIGEST is refused there (checked by running it).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from promoter.exceptions import GateUnavailableError
from promoter.model.config import AWS_KMS_KEY_PREFIX

logger = logging.getLogger(__name__)

KMS_MAX_ATTEMPTS = 4
# KMS Verify's limit on a RAW message (the Verify API reference); longer ones go as a digest.
KMS_MAX_RAW_MESSAGE_BYTES = 4096
# (SigningAlgorithm, hash of the message as KMS expects it with MessageType DIGEST), most likely first.
SIGNING_ALGORITHMS = (
    ("ECDSA_SHA_256", "sha256"),
    ("RSASSA_PKCS1_V1_5_SHA_256", "sha256"),
    ("RSASSA_PSS_SHA_256", "sha256"),
    ("ECDSA_SHA_384", "sha384"),
    ("ECDSA_SHA_512", "sha512"),
)
INVALID_SIGNATURE = "KMSInvalidSignatureException"
# The key cannot verify with this algorithm (another key spec): try the next.
WRONG_ALGORITHM_CODES = frozenset({"InvalidKeyUsageException", "ValidationException"})
# Worth handing the event back for: the key will answer later.
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "ServiceUnavailableException",
        "InternalFailure",
    }
)


class KmsVerifier:
    """`kms_verify(reference, payload, signature) -> bool` for the cosign verifier."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    def _kms(self) -> Any:
        if self._client is None:
            config = Config(retries={"mode": "standard", "total_max_attempts": KMS_MAX_ATTEMPTS})
            self._client = boto3.client("kms", config=config)
        return self._client

    def __call__(self, reference: str, payload: bytes, signature: bytes) -> bool:
        """True when the key named by `reference` ("awskms:///<key ARN>") verifies `signature` over
        `payload`. Raises GateUnavailableError (throttled, KMS fault: retry the event later) and
        ValueError (the key cannot be used: not found, disabled, access denied), with the reason."""
        key_id = reference[len(AWS_KMS_KEY_PREFIX) :] if reference.startswith(AWS_KMS_KEY_PREFIX) else ""
        if not key_id:
            raise ValueError(f"{reference!r} is not an awskms:/// key reference")
        refused: list[str] = []
        for algorithm, hash_name in SIGNING_ALGORITHMS:
            raw = len(payload) <= KMS_MAX_RAW_MESSAGE_BYTES
            message = payload if raw else hashlib.new(hash_name, payload).digest()
            try:
                response = self._kms().verify(
                    KeyId=key_id,
                    Message=message,
                    MessageType="RAW" if raw else "DIGEST",
                    Signature=signature,
                    SigningAlgorithm=algorithm,
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == INVALID_SIGNATURE:
                    return False
                if code in WRONG_ALGORITHM_CODES:
                    refused.append(f"{algorithm}: {code}")
                    continue
                if code in RETRYABLE_CODES:
                    raise GateUnavailableError(f"KMS Verify with {key_id}: {code}") from exc
                raise ValueError(f"KMS Verify with {key_id}: {code}: {exc}") from exc
            except BotoCoreError as exc:
                raise GateUnavailableError(f"KMS Verify with {key_id}: {exc}") from exc
            return bool(response.get("SignatureValid"))
        raise ValueError(f"KMS key {key_id} verifies with none of cosign's algorithms ({'; '.join(refused)})")
