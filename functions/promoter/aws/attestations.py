"""KMS signing of promotion attestations (issue 19): the stack's key (ECC_NIST_P256, SIGN_VERIFY)
signs the DSSE pre-authentication encoding; `GetPublicKey` gives the key consumers verify with.

`Sign` with ECDSA_SHA_256: the message goes as `MessageType: RAW` (KMS hashes it with SHA-256) up to
KMS's 4,096-byte limit on a raw message (the Sign API reference); a longer one (an attestation with
many inputs) goes as its SHA-256 with `MessageType: DIGEST`, which KMS signs as given. Either way the
signature is DER ECDSA over SHA-256 of the PAE: what DSSE, cosign and securesystemslib verify. (The
local AWS mends moto, which hashed a DIGEST once more: `local_aws.moto_fixes`.)

KMS's refusals are classified here, once: throttling and KMS-side faults are retryable (the event
comes back); a disabled key, a key pending deletion, a missing key, a key that cannot sign ECDSA
P-256, or a key policy that does not let this role sign are named failures that no retry mends.
"""

from __future__ import annotations

import base64
import hashlib
import textwrap
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from promoter.aws.kms import KMS_MAX_RAW_MESSAGE_BYTES, RETRYABLE_CODES, kms_client
from promoter.exceptions import AttestationError

SIGNING_ALGORITHM = "ECDSA_SHA_256"
KEY_SPEC = "ECC_NIST_P256"
# What each refusal means for the operator (KMS API reference, Sign and GetPublicKey errors; "Key
# states of AWS KMS keys").
_NAMED_FAILURES = {
    "DisabledException": "is disabled (enable it: aws kms enable-key)",
    "KMSInvalidStateException": "is not usable in its state (pending deletion or import?)",
    "NotFoundException": "does not exist (or not in this account and region)",
    "AccessDeniedException": "does not let this role use it (the key policy must allow {action})",
    "InvalidKeyUsageException": f"cannot sign (it must be {KEY_SPEC} with KeyUsage SIGN_VERIFY)",
    "ValidationException": f"cannot sign {SIGNING_ALGORITHM} (it must be {KEY_SPEC}, SIGN_VERIFY)",
    "UnsupportedOperationException": f"cannot sign (it must be {KEY_SPEC} with KeyUsage SIGN_VERIFY)",
}


def der_to_pem(der: bytes) -> str:
    """A SubjectPublicKeyInfo (DER, as GetPublicKey returns it) as a PEM `PUBLIC KEY` block."""
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


class KmsAttestationSigner:
    """Signs with one KMS key (`key_arn`: ARN, key id or alias) and reads its public key; the client
    is `client`, else `promoter.aws.kms.kms_client()` (the promoter's KMS retry policy)."""

    def __init__(self, key_arn: str, client: Any = None) -> None:
        self.key_arn = key_arn
        self._client = client

    def _kms(self) -> Any:
        if self._client is None:
            self._client = kms_client()
        return self._client

    def sign(self, message: bytes) -> bytes:
        """The DER ECDSA P-256 signature of SHA-256(`message`) (`message`: the DSSE PAE).
        Raises AttestationError: `retryable` for throttling and KMS faults; otherwise it names the
        key and what is wrong with it."""
        raw = len(message) <= KMS_MAX_RAW_MESSAGE_BYTES
        try:
            response = self._kms().sign(
                KeyId=self.key_arn,
                Message=message if raw else hashlib.sha256(message).digest(),
                MessageType="RAW" if raw else "DIGEST",
                SigningAlgorithm=SIGNING_ALGORITHM,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._refusal("Sign", "kms:Sign", exc) from exc
        return bytes(response["Signature"])

    def public_key_pem(self) -> str:
        """The key's public key as PEM (SubjectPublicKeyInfo). Raises AttestationError as `sign`,
        and for a key that is not ECC_NIST_P256 / SIGN_VERIFY."""
        try:
            response = self._kms().get_public_key(KeyId=self.key_arn)
        except (ClientError, BotoCoreError) as exc:
            raise self._refusal("GetPublicKey", "kms:GetPublicKey", exc) from exc
        spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec")
        if spec != KEY_SPEC or response.get("KeyUsage") != "SIGN_VERIFY":
            raise AttestationError(
                f"KMS key {self.key_arn} is {spec} {response.get('KeyUsage')}, not {KEY_SPEC} SIGN_VERIFY"
            )
        return der_to_pem(bytes(response["PublicKey"]))

    def _refusal(self, operation: str, action: str, exc: ClientError | BotoCoreError) -> AttestationError:
        """The error to raise (the caller logs it: the engine with the action, the CLI as its line)."""
        if isinstance(exc, BotoCoreError):
            return AttestationError(f"KMS {operation} with {self.key_arn}: {exc}", retryable=True)
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in RETRYABLE_CODES or status >= 500:
            return AttestationError(f"KMS {operation} with {self.key_arn}: {code}", retryable=True)
        meaning = _NAMED_FAILURES.get(code, "refused")
        detail = exc.response.get("Error", {}).get("Message", "")
        return AttestationError(
            f"KMS key {self.key_arn} {meaning.format(action=action)}: {operation}: {code}"
            + (f": {detail}" if detail else "")
        )
