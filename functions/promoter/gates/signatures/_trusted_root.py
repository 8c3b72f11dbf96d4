"""Sigstore trust material (a TrustedRoot JSON) as the PEM certificates and keys the verifiers take.

The format is Sigstore's `dev.sigstore.trustroot.v1.TrustedRoot` (sigstore/protobuf-specs
`protos/sigstore_trustroot.proto`): `certificateAuthorities[].certChain.certificates[].rawBytes`
(base64 DER, the Fulcio CAs), `tlogs[].publicKey.rawBytes` and `ctlogs[].publicKey.rawBytes`
(base64 DER SubjectPublicKeyInfo, the Rekor and certificate-transparency logs). The keys' validity
windows (`validFor`) are not applied: a certificate's own validity at the log's time is.
The default is the public-good root sigstore-python ships inside its package (the seed of its TUF
cache): read from disk, never refreshed over the network. Reading it imports only the `sigstore`
package's `__init__`, not its verifier.
"""

from __future__ import annotations

import base64
import binascii
import json
import textwrap
from dataclasses import dataclass
from importlib import resources

# Where sigstore-python keeps the production trusted root it was released with.
_EMBEDDED_ROOT_PACKAGE = "sigstore._store"
_EMBEDDED_PRODUCTION_ROOT = ("https%3A%2F%2Ftuf-repo-cdn.sigstore.dev", "trusted_root.json")


def default_trusted_root() -> bytes:
    """The Sigstore public-good trusted root JSON embedded in the installed `sigstore` package."""
    location = resources.files(_EMBEDDED_ROOT_PACKAGE).joinpath(*_EMBEDDED_PRODUCTION_ROOT)
    return location.read_bytes()


@dataclass(frozen=True)
class KeylessTrust:
    """The Fulcio CA certificates, the Rekor log keys and the CT log keys of one trusted root, as PEM."""

    fulcio_certificates: tuple[str, ...]
    rekor_keys: tuple[str, ...]
    ct_log_keys: tuple[str, ...] = ()


def keyless_trust(trusted_root: bytes | None = None) -> KeylessTrust:
    """The Fulcio CAs and Rekor keys of `trusted_root` (default: `default_trusted_root()`).

    Raises ValueError when it is not a TrustedRoot with both.
    """
    try:
        document = json.loads(default_trusted_root() if trusted_root is None else trusted_root)
        certificates = tuple(
            _pem("CERTIFICATE", entry["rawBytes"])
            for authority in document["certificateAuthorities"]
            for entry in authority["certChain"]["certificates"]
        )
        keys = tuple(_pem("PUBLIC KEY", log["publicKey"]["rawBytes"]) for log in document["tlogs"])
        ct_keys = tuple(
            _pem("PUBLIC KEY", log["publicKey"]["rawBytes"]) for log in document.get("ctlogs", [])
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValueError(f"not a Sigstore trusted root: {exc!r}") from exc
    if not certificates or not keys:
        raise ValueError("trusted root lists no Fulcio certificate authority or no transparency log")
    return KeylessTrust(certificates, keys, ct_keys)


def _pem(label: str, raw_b64: str) -> str:
    body = base64.b64encode(base64.b64decode(raw_b64, validate=True)).decode()
    return f"-----BEGIN {label}-----\n" + "\n".join(textwrap.wrap(body, 64)) + f"\n-----END {label}-----\n"
