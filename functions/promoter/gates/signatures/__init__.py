"""Signature verifiers: pure functions that decide whether one signature vouches for one image digest.

Nothing here touches the network or a registry. The gate around them finds the signatures (cosign
`.sig` tags, OCI 1.1 referrers, Sigstore bundles, Notation envelopes), fetches their bytes, and hands
them to one verifier; a verifier either returns a `VerifiedSignature` naming who signed what, or
raises `SignatureRejected` saying exactly why not. Calls to AWS (KMS `Verify` for `awskms://` keys,
AWS Signer `GetRevocationStatus`) are passed in as callables, so the verifiers stay pure.

This module holds only the values and the exception (the refusal and AWS Signer's question come from
`promoter.model.signatures`, which the AWS adapter may import), and imports nothing beyond the
standard library and the engine's model. Each verifier module imports its cryptography dependency
when it is imported (`cryptography`; `sigstore` is imported only inside
`sigstore_bundle.verify_bundle`; `cbor2` only for COSE envelopes): import a verifier module only
where a rule with a signature gate is being checked, so a stack without such a rule keeps its cold
start.

- `cosign`: cosign simple-signing payloads with key pairs (PEM or `awskms://`), optional Rekor SET;
  keyless (Fulcio certificate + Rekor SET).
- `sigstore_bundle`: Sigstore bundles v0.1-v0.3 (message signatures and DSSE in-toto statements).
- `notation`: Notary Project JWS and COSE envelopes (x509 and AWS Signer signing authority).
"""

from __future__ import annotations

from dataclasses import dataclass

from promoter.model.signatures import SignatureRejected, SignerRevocationQuery

__all__ = ["Identity", "SignatureRejected", "SignerRevocationQuery", "VerifiedSignature"]

COSIGN, SIGSTORE, NOTATION = "cosign", "sigstore", "notation"

# What the gate looks for in a registry, per verifier (no crypto needed to name them).
# cosign: the `.sig` manifest's layers hold the simple-signing payload; the layer's annotations
# hold the signature and, for keyless, the certificate, its chain and the Rekor bundle.
SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
COSIGN_CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
COSIGN_BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
# Sigstore bundles (OCI 1.1 referrers, e.g. cosign --new-bundle-format): artifact/layer media types.
SIGSTORE_BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
# Notation: the signature manifest's artifact type (config media type), and its envelope layer's.
NOTATION_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
JWS_MEDIA_TYPE = "application/jose+json"
COSE_MEDIA_TYPE = "application/cose"


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature that verified: which verifier accepted it, who signed, and what it covers.

    `identity` is, per verifier: cosign key pairs "sha256:<hex of the key's DER SubjectPublicKeyInfo>"
    or the "awskms:///<arn>" reference; cosign keyless and Sigstore "<subject> (<issuer>)"; Notation
    the signing certificate's subject, followed by " (<signing profile version ARN>)" for AWS Signer.
    `signed_at` is an ISO 8601 UTC time: Rekor's integratedTime (cosign with a Rekor bundle,
    Sigstore), or for Notation the time the signature proves (AWS Signer's authenticSigningTime, a
    verified timestamp countersignature's genTime), else the signer's own signingTime; None when
    nothing dates the signature (a cosign key-pair signature without a Rekor bundle).
    """

    verifier: str
    identity: str
    signed_digest: str
    signed_at: str | None = None


@dataclass(frozen=True)
class Identity:
    r"""A Sigstore signer identity to accept: the OIDC issuer and the certificate's subject (SAN).

    Each field is an exact string, or "re:<regex>" matched against the whole value on the
    linear-time engine (`promoter.model.linear_regex`), its dots escaped, e.g. subject
    "re:https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v[0-9.]+"."""

    issuer: str
    subject: str
