"""KMS `Verify` for cosign's `awskms:///<key ARN>` keys: the signature is checked where the key lives,
and no key material sits in the configuration.

Real KMS answers a signature that does not verify with `KMSInvalidSignatureException`; some
implementations answer `SignatureValid: false` instead: both mean "not this key". The algorithm
follows the key (cosign signs ECDSA keys with ECDSA_SHA_*, RSA keys with RSASSA_PKCS1_V1_5 or PSS):
the ones that do not fit the key are refused by KMS (`InvalidKeyUsageException`,
`ValidationException`) and the next is tried, so no `DescribeKey` (and no grant for it) is needed.

The payload goes as `MessageType: RAW` as long as KMS takes it raw (4096 bytes; a cosign payload is
~300); a longer one goes as its digest (`MessageType: DIGEST`, hashed here with the algorithm's
hash). RAW because KMS then hashes the message itself with the hash the `SigningAlgorithm` names, so
the one payload serves every algorithm tried below (SHA-256, -384, -512) and no digest can be paired
with the wrong algorithm; and a key policy may admit only raw messages (the `kms:MessageType`
condition key), which a DIGEST would not pass. (The local AWS verifies an ECDSA DIGEST as KMS does:
`local_aws.moto_fixes` mends moto, which hashed it once more.)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
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


# The key exists but cannot verify now, and waiting will not change that: a disabled key, a key in
# another state (pending deletion, pending import, unavailable by design), or a key policy or role
# that does not grant kms:Verify. What each means, in the words a failed verdict quotes.
UNUSABLE_KEY_CODES = {
    "DisabledException": "the key is disabled",
    "KMSInvalidStateException": "the key is not in a state that verifies (pending deletion or import?)",
    "AccessDeniedException": "kms:Verify on it is not granted to the promoter's role (key policy or IAM)",
}


class KmsKeyUnusableError(ValueError):
    """A listed KMS key that exists but cannot verify (disabled, in another state, or kms:Verify not
    granted): a fault of the key or its grants, not a refused signature. A ValueError, so callers
    that treat any unusable key alike still do; the signature gate names it as a failure."""

    def __init__(self, key_id: str, code: str) -> None:
        super().__init__(f"KMS Verify with {key_id}: {code}: {UNUSABLE_KEY_CODES.get(code, code)}")
        self.key_id, self.code = key_id, code

    @property
    def state(self) -> str:
        """What is wrong with the key, in words."""
        return UNUSABLE_KEY_CODES.get(self.code, self.code)


def kms_client() -> Any:
    """A KMS client from the environment, with the promoter's retry policy."""
    config = Config(retries={"mode": "standard", "total_max_attempts": KMS_MAX_ATTEMPTS})
    return boto3.client("kms", config=config)


class KmsVerifier:
    """`kms_verify(reference, payload, signature) -> bool` for the cosign verifier. The client is
    `client`, else made on first use by `client_factory` (default `kms_client`)."""

    def __init__(self, client: Any = None, client_factory: Callable[[], Any] | None = None) -> None:
        self._client = client
        self._client_factory = client_factory

    def _kms(self) -> Any:
        if self._client is None:
            self._client = (self._client_factory or kms_client)()
        return self._client

    def __call__(self, reference: str, payload: bytes, signature: bytes) -> bool:
        """True when the key named by `reference` ("awskms:///<key ARN>") verifies `signature` over
        `payload`. Raises GateUnavailableError (throttled, KMS fault: retry the event later),
        KmsKeyUnusableError (disabled, in another state, kms:Verify not granted) and ValueError (any
        other reason the key cannot be used: not found, say), with the reason."""
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
                if code in UNUSABLE_KEY_CODES:
                    raise KmsKeyUnusableError(key_id, code) from exc
                raise ValueError(f"KMS Verify with {key_id}: {code}: {exc}") from exc
            except BotoCoreError as exc:
                raise GateUnavailableError(f"KMS Verify with {key_id}: {exc}") from exc
            return bool(response.get("SignatureValid"))
        raise ValueError(f"KMS key {key_id} verifies with none of cosign's algorithms ({'; '.join(refused)})")
