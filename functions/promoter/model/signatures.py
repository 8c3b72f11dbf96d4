"""What the signature verifiers and the AWS adapters they call both speak (pure values): the refusal
of a signature and AWS Signer's revocation question. Here, not in `promoter.gates.signatures` (which
re-exports both as part of the verifiers' interface), so that `promoter.aws` never imports gates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from promoter.exceptions import PromoterError


class SignatureRejected(PromoterError):
    """A signature that does not verify; str() says exactly why (never retried: the bytes won't change)."""


@dataclass(frozen=True)
class SignerRevocationQuery:
    """What AWS Signer's GetRevocationStatus needs to say whether a verified Notation signature, its
    signing job, its profile version or one of its certificates was revoked (field for field:
    ProfileVersionArn, JobArn, PlatformId, SignatureTimestamp, CertificateHashes)."""

    profile_version_arn: str
    job_arn: str
    platform_id: str
    signature_timestamp: datetime
    certificate_hashes: tuple[str, ...]
