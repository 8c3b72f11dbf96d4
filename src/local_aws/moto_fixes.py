"""Fixes for moto behind the local AWS: the same answers with less work (SQS), and the answers AWS
gives where moto's differ (KMS asymmetric keys, below `_apply_kms`).

moto 5.2.5's SQS `receive_message` checks each message it returns against the queue's retention
period by building *every* queue attribute (ApproximateNumberOfMessages and friends walk the whole
queue, with a datetime per message), so one receive of 10 from a queue holding 1,000 messages took
0.7-1.1 s and grew with the queue (`python -m bench`, figure 4). The check needs one integer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

_applied = False


def apply() -> None:
    """Patch moto's SQS backend and KMS responses once per process (idempotent)."""
    global _applied
    if _applied:
        return
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_seconds = int(self.get_queue(queue_name).message_retention_period)
        return retention_seconds + message.sent_timestamp / 1000 > unix_time()

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    _apply_kms()
    _applied = True


# --- KMS: asymmetric Sign / Verify / GetPublicKey as KMS answers them (issue 19) ----------------
# Checked against moto 5.2.5 by running it (tests/integration/test_attestation_verify.py holds the
# checks): moto ignores `MessageType` (a DIGEST is hashed once more, so a signature made by real KMS
# over a digest, or by anyone over the message, does not verify, and a DIGEST signature of moto's is
# over the wrong bytes); it takes a digest of any length and a RAW message over 4,096 bytes; it signs
# with a disabled key or one pending deletion; it answers a bad signature with `SignatureValid:
# false`; its GetPublicKey omits `KeySpec` and gives the bare key id. Real KMS (API reference: Sign,
# Verify, GetPublicKey; "Key states of AWS KMS keys"): DIGEST is signed as given, after checking its
# length against the algorithm's hash; RAW is at most 4,096 bytes; a disabled key answers
# DisabledException, a key pending deletion KMSInvalidStateException; a bad signature is
# KMSInvalidSignatureException; GetPublicKey answers the key ARN and its KeySpec.
KMS_MAX_RAW_MESSAGE_BYTES = 4096
_KMS_HASHES = {"ECDSA_SHA_256": "sha256", "ECDSA_SHA_384": "sha384", "ECDSA_SHA_512": "sha512"}


def _kms_error(code: str, message: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError(code, message)


def _kms_usable_key(response: Any, key_id: str) -> Any:
    """The key behind `key_id`, refused as KMS refuses a key that is not Enabled."""
    key = response.kms_backend.describe_key(key_id)
    if key.key_state == "Disabled":
        raise _kms_error("DisabledException", f"{key.arn} is disabled.")
    if key.key_state != "Enabled":
        state = re.sub(
            r"(?<=[a-z])(?=[A-Z])", " ", key.key_state
        ).lower()  # PendingDeletion: pending deletion
        raise _kms_error("KMSInvalidStateException", f"{key.arn} is {state}.")
    return key


def _kms_message(response: Any, algorithm: str) -> tuple[bytes, str]:
    """(message, message type) of a Sign or Verify request, with KMS's length checks."""
    from moto.kms.exceptions import ValidationException

    message = response._get_param("Message")
    if isinstance(message, str):
        message = message.encode("utf-8")
    message_type = response._get_param("MessageType") or "RAW"
    if message_type == "RAW" and len(message or b"") > KMS_MAX_RAW_MESSAGE_BYTES:
        raise ValidationException(
            "1 validation error detected: Value at 'message' failed to satisfy constraint: "
            f"Member must have length less than or equal to {KMS_MAX_RAW_MESSAGE_BYTES}"
        )
    digest_size = hashlib.new(_KMS_HASHES[algorithm]).digest_size if algorithm in _KMS_HASHES else None
    if message_type == "DIGEST" and digest_size is not None and len(message) != digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    return message, message_type


def _prehashed(algorithm: str) -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    hash_class = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
    return ec.ECDSA(Prehashed(hash_class[_KMS_HASHES[algorithm]]()))


def _apply_kms() -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec
    from moto.kms.responses import KmsResponse

    original_sign, original_verify, original_public_key = (
        KmsResponse.sign,
        KmsResponse.verify,
        KmsResponse.get_public_key,
    )

    def ecdsa_key(key: Any) -> Any:
        private = getattr(key.private_key, "private_key", None)
        return private if isinstance(private, ec.EllipticCurvePrivateKey) else None

    def sign(self: Any) -> str:
        key_id, algorithm = self._get_param("KeyId"), self._get_param("SigningAlgorithm")
        self._validate_key_id(key_id)
        key = _kms_usable_key(self, key_id)
        message, message_type = _kms_message(self, algorithm)
        private = ecdsa_key(key)
        if message_type != "DIGEST" or private is None or algorithm not in key.signing_algorithms:
            return original_sign(self)  # RAW (moto hashes it as KMS does), RSA, or moto's own refusal
        signature = private.sign(message, _prehashed(algorithm))
        return json.dumps(
            {
                "KeyId": key.arn,
                "Signature": base64.b64encode(signature).decode(),
                "SigningAlgorithm": algorithm,
            }
        )

    def verify(self: Any) -> str:
        key_id, algorithm = self._get_param("KeyId"), self._get_param("SigningAlgorithm")
        self._validate_key_id(key_id)
        key = _kms_usable_key(self, key_id)
        message, message_type = _kms_message(self, algorithm)
        private = ecdsa_key(key)
        if message_type == "DIGEST" and private is not None and algorithm in key.signing_algorithms:
            signature = self._get_param("Signature")
            if isinstance(signature, str):
                signature = base64.b64decode(signature)
            try:
                private.public_key().verify(signature, message, _prehashed(algorithm))
            except InvalidSignature:
                valid = False
            else:
                valid = True
            answer = {"KeyId": key.arn, "SignatureValid": valid, "SigningAlgorithm": algorithm}
        else:
            answer = json.loads(original_verify(self))
        if not answer.get("SignatureValid"):
            raise _kms_error("KMSInvalidSignatureException", "")
        return json.dumps(answer)

    def get_public_key(self: Any) -> str:
        key_id = self._get_param("KeyId")
        self._validate_key_id(key_id)
        key = _kms_usable_key(self, key_id)
        answer = json.loads(original_public_key(self))
        answer["KeyId"] = key.arn
        answer["KeySpec"] = key.key_spec
        if key.key_usage == "SIGN_VERIFY":
            answer.pop("EncryptionAlgorithms", None)
        return json.dumps(answer)

    KmsResponse.sign = sign
    KmsResponse.verify = verify
    KmsResponse.get_public_key = get_public_key
    _accept_key_arns()


def _accept_key_arns() -> None:
    """DisableKey, EnableKey, ScheduleKeyDeletion and CancelKeyDeletion take a key ARN as KMS does
    (moto 5.2.5 looks the ARN up as a bare key id: KeyError, answered as a 500)."""
    from moto.kms.models import KmsBackend

    def by_key_id(method: Any) -> Any:
        def call(self: Any, key_id: str, *args: Any, **kwargs: Any) -> Any:
            return method(self, self.get_key_id(key_id), *args, **kwargs)

        return call

    for name in ("disable_key", "enable_key", "schedule_key_deletion", "cancel_key_deletion"):
        setattr(KmsBackend, name, by_key_id(getattr(KmsBackend, name)))
