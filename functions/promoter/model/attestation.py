"""The promotion attestation: what the promoter signs for every image it promotes, and how it is read.

Format (shared design, "Attestation"; issue 19): an in-toto Statement v1 (in-toto attestation spec
`spec/v1/statement.md`) whose predicate is a SLSA Verification Summary (VSA,
`https://slsa.dev/verification_summary/v1`, slsa.dev/spec/v1.0/verification_summary), wrapped in a
DSSE envelope (secure-systems-lab DSSE v1.0 `protocol.md`), inside a Sigstore bundle v0.3 whose
verification material is a public-key hint (the key lives in KMS; there is no transparency-log
entry), stored as an OCI 1.1 referrer of the promoted digest in the target repository exactly as
cosign's `--new-bundle-format` stores one (sigstore/cosign `specs/BUNDLE_SPEC.md`): an image
manifest with `artifactType` the bundle media type, the empty config, one layer holding the bundle.
So `cosign verify-attestation --new-bundle-format --key <PEM> --insecure-ignore-tlog` and Kyverno
(1.18+) verify it with the stack's public key alone; the Sigstore policy-controller (up to v0.15.1)
accepts this format only from keyless signers (sigstore/policy-controller#1958).

What the VSA says: the verifier (the promoter, with its version), when, the resource (the target
`registry/repository:tag`), the policy (the rule and the configuration, with the configuration's
sha256), every input the gates used (`inputAttestations`, from their `Evidence`), PASSED, and our
own `verifiedLevels` (`ECR_PROMOTER_RULE_<rule>`, `ECR_PROMOTER_GATE_<GATE>`: the spec lets
producers use custom values that do not start with `SLSA_`). The source image, the requester as
authenticated and the trigger go in one extension field whose name is a URI (`PROMOTION_FIELD`):
the VSA's parsing rules say "Producers MAY add extension fields using field names that are URIs"
and "Consumers MUST ignore unrecognized fields".

Pure: no AWS. Signing is `promoter.aws.attestations`; `cryptography` is imported only by
`verify_bundle`. Every byte string built here (statement, bundle, manifest) is written and hashed
as it is, never re-serialised.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
# DSSE payload type of an in-toto statement (in-toto attestation spec, `envelope.md`).
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
# The OCI empty descriptor (image-spec `manifest.md`, "Guidance for an Empty Descriptor").
OCI_EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
OCI_EMPTY_BLOB = b"{}"

# Who verified: one URI for the promoter (the spec: "URI indicating the verifier's identity"); which
# deployment signed is the key's business (consumers accept only (key, verifier) pairs they trust).
PROMOTER_URI = "https://ecr-image-promoter.dev"
VERIFIER_ID = f"{PROMOTER_URI}/promoter"
VERIFIER_NAME = "ecr-image-promoter"
# The extension field (a URI, as the VSA's parsing rules ask) holding source, requester and trigger.
PROMOTION_FIELD = f"{PROMOTER_URI}/promotion/v1"
PASSED = "PASSED"
# Our verifiedLevels: never `SLSA_...` (reserved by the spec for its own tracks).
LEVEL_PREFIX = "ECR_PROMOTER_"
RULE_LEVEL_PREFIX = f"{LEVEL_PREFIX}RULE_"
GATE_LEVEL_PREFIX = f"{LEVEL_PREFIX}GATE_"

# Manifest annotations: cosign's bundle spec (the first two) and ours, which make an attestation's
# identity (subject digest, target, rule) readable from the referrers list without fetching it.
ANNOTATION_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"
ANNOTATION_RULE = "dev.ecr-image-promoter.rule"
ANNOTATION_TARGET = "dev.ecr-image-promoter.target"
ANNOTATION_CREATED = "org.opencontainers.image.created"
DSSE_CONTENT = "dsse-envelope"

_SHA256 = "sha256:"


class AttestationRefusedError(Exception):
    """The attestation does not hold: malformed, not signed by the key, or not about what was asked.
    `reason` is one line for people."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class VerifiedAttestation:
    """What a verified attestation says (`verify_bundle`)."""

    subject_name: str
    subject_digest: str
    resource_uri: str
    verifier_id: str
    verifier_version: Mapping[str, str]
    time_verified: str
    policy_uri: str
    policy_digest: str
    verified_levels: tuple[str, ...]
    input_attestations: tuple[Mapping[str, Any], ...]
    rule: str | None
    gates: tuple[str, ...]
    requester: str | None
    trigger: str | None
    source: str | None
    keyid: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (`promoter attestation verify --json`)."""
        return {
            "subject": {"name": self.subject_name, "digest": self.subject_digest},
            "resourceUri": self.resource_uri,
            "verifier": {"id": self.verifier_id, "version": dict(self.verifier_version)},
            "timeVerified": self.time_verified,
            "policy": {"uri": self.policy_uri, "digest": self.policy_digest},
            "verifiedLevels": list(self.verified_levels),
            "inputAttestations": [dict(i) for i in self.input_attestations],
            "rule": self.rule,
            "gates": list(self.gates),
            "requester": self.requester,
            "trigger": self.trigger,
            "source": self.source,
            "keyid": self.keyid,
        }


# --- building ---------------------------------------------------------------------------------


def promoter_version() -> str:
    """The promoter's version (`promoter.__version__`, the project's one version: the Lambda asset
    carries the package without installed metadata)."""
    from promoter import __version__

    return __version__


def config_sha256(config_bytes: bytes) -> str:
    """Hex sha256 of the configuration's bytes: the policy's digest."""
    return hashlib.sha256(config_bytes).hexdigest()


def policy_uri(rule: str, config_name: str) -> str:
    """The URI naming the policy: the rule within the configuration (its digest travels beside)."""
    return f"{PROMOTER_URI}/policy?{urlencode({'config': config_name, 'rule': rule})}"


def rule_level(rule: str) -> str:
    return f"{RULE_LEVEL_PREFIX}{rule}"


def gate_level(gate: str) -> str:
    return f"{GATE_LEVEL_PREFIX}{gate.upper()}"


def resource_uri(registry: str, repository: str, tag: str) -> str:
    """`registry/repository:tag`, the VSA's `resourceUri` and the target annotation."""
    return f"{registry}/{repository}:{tag}"


def rfc3339(moment: datetime) -> str:
    """`YYYY-MM-DDThh:mm:ssZ` (in-toto's Timestamp field type), UTC; a naive time is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def digest_set(digest: str | Mapping[str, str]) -> dict[str, str]:
    """`sha256:<hex>` (or an in-toto DigestSet already) as a DigestSet `{"sha256": "<hex>"}`."""
    if isinstance(digest, Mapping):
        return {str(k): str(v) for k, v in digest.items()}
    algorithm, sep, value = str(digest).partition(":")
    if not sep or not algorithm or not value:
        raise ValueError(f"{digest!r} is not '<algorithm>:<hex>'")
    return {algorithm: value}


def input_attestations(evidence: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every gate input (`Evidence.inputs`: `{uri, digest}`) as VSA `inputAttestations`, in gate order,
    each once."""
    seen: set[tuple[str, str]] = set()
    inputs: list[dict[str, Any]] = []
    for item in evidence:
        for descriptor in item.get("inputs") or ():
            entry = {"uri": str(descriptor["uri"]), "digest": digest_set(descriptor["digest"])}
            key = (entry["uri"], json.dumps(entry["digest"], sort_keys=True))
            if key not in seen:
                seen.add(key)
                inputs.append(entry)
    return inputs


def build_statement(
    *,
    subject_digest: str,
    target_registry: str,
    target_repository: str,
    target_tag: str,
    rule: str,
    config_digest: str,
    config_name: str,
    source: str,
    source_digest: str,
    requested_by: str | None,
    trigger: str,
    evidence: Sequence[Mapping[str, Any]],
    time_verified: datetime,
    version: str,
    event_id: str | None = None,
) -> bytes:
    """The in-toto Statement v1 with the VSA predicate, as the exact bytes to sign.

    `subject_digest` is the promoted digest (`sha256:<hex>`); `config_digest` the hex sha256 of the
    configuration's bytes (`config_sha256`); `source` the image promoted from
    (`registry/repository:tag` or `...@digest`) and `source_digest` its digest; `requested_by` the
    requester as authenticated (None: unknown); `trigger` what started it (push, request,
    reconcile, promote, rollback); `evidence` the passing gates' `Evidence` as dicts
    (`{gate, summary, inputs: [{uri, digest}], details}`), in gate order.
    Raises ValueError for a digest that is not `sha256:<hex>`.
    """
    if not subject_digest.startswith(_SHA256) or len(subject_digest) != len(_SHA256) + 64:
        raise ValueError(f"subject digest {subject_digest!r} is not sha256:<64 hex>")
    gates = [str(item["gate"]) for item in evidence]
    levels = [rule_level(rule), *(gate_level(g) for g in dict.fromkeys(gates))]
    predicate: dict[str, Any] = {
        "verifier": {"id": VERIFIER_ID, "version": {VERIFIER_NAME: version}},
        "timeVerified": rfc3339(time_verified),
        "resourceUri": resource_uri(target_registry, target_repository, target_tag),
        "policy": {"uri": policy_uri(rule, config_name), "digest": {"sha256": config_digest}},
        "inputAttestations": input_attestations(evidence),
        "verificationResult": PASSED,
        "verifiedLevels": levels,
        PROMOTION_FIELD: {
            "rule": rule,
            "trigger": trigger,
            "requestedBy": requested_by,
            "eventId": event_id,
            "source": {"uri": source, "digest": digest_set(source_digest)},
            "target": resource_uri(target_registry, target_repository, target_tag),
            "gates": [
                {
                    "gate": str(item["gate"]),
                    "summary": str(item.get("summary", "")),
                    "details": dict(item.get("details") or {}),
                }
                for item in evidence
            ],
        },
    }
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"{target_registry}/{target_repository}", "digest": digest_set(subject_digest)}],
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": predicate,
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), default=str).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is signed (lengths are byte counts, ASCII decimal)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def envelope(
    payload: bytes, sig: bytes, keyid: str, payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> dict[str, Any]:
    """The DSSE envelope of `payload` signed with `sig` (DER ECDSA over `pae(payload_type, payload)`)."""
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}],
    }


def bundle(dsse_envelope: Mapping[str, Any], keyid: str) -> bytes:
    """The Sigstore bundle v0.3 (protobuf-specs `sigstore_bundle.proto`, its JSON form) holding the
    envelope; verification material is the public-key hint only (no certificate, no log entry)."""
    document = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": keyid}, "tlogEntries": []},
        "dsseEnvelope": dict(dsse_envelope),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def attestation_annotations(rule: str, target: str, created: datetime) -> dict[str, str]:
    """The referrer manifest's annotations: cosign's two, our identity (rule, target), the time."""
    return {
        ANNOTATION_CONTENT: DSSE_CONTENT,
        ANNOTATION_PREDICATE_TYPE: VSA_PREDICATE_TYPE,
        ANNOTATION_RULE: rule,
        ANNOTATION_TARGET: target,
        ANNOTATION_CREATED: rfc3339(created),
    }


def sha256_digest(data: bytes) -> str:
    return _SHA256 + hashlib.sha256(data).hexdigest()


def referrer_manifest(
    bundle_bytes: bytes,
    subject_digest: str,
    subject_media_type: str,
    subject_size: int,
    annotations: Mapping[str, str],
) -> tuple[bytes, dict[str, bytes]]:
    """The OCI 1.1 image manifest that attaches the bundle to `subject_digest` (cosign's bundle spec),
    and the blobs it names (`{digest: bytes}`: the empty config and the bundle), to upload first.

    The manifest bytes are final: put them as they are (their sha256 is the attestation's digest)."""
    bundle_digest = sha256_digest(bundle_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {
            "mediaType": OCI_EMPTY_MEDIA_TYPE,
            "digest": sha256_digest(OCI_EMPTY_BLOB),
            "size": len(OCI_EMPTY_BLOB),
        },
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": bundle_digest, "size": len(bundle_bytes)}],
        "subject": {"mediaType": subject_media_type, "digest": subject_digest, "size": subject_size},
        "annotations": dict(annotations),
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    return body, {sha256_digest(OCI_EMPTY_BLOB): OCI_EMPTY_BLOB, bundle_digest: bundle_bytes}


def is_our_attestation(
    annotations: Mapping[str, str] | None, rule: str | None = None, target: str | None = None
) -> bool:
    """True when a referrer's annotations (from the referrers list or its manifest) mark one of our
    attestations, for `rule` and `target` when given (None: any). The identity of an attestation is
    (subject digest, target, rule): the subject is the digest whose referrers were listed."""
    notes = annotations or {}
    if notes.get(ANNOTATION_PREDICATE_TYPE) != VSA_PREDICATE_TYPE or ANNOTATION_RULE not in notes:
        return False
    if rule is not None and notes.get(ANNOTATION_RULE) != rule:
        return False
    return target is None or notes.get(ANNOTATION_TARGET) == target


# --- verifying --------------------------------------------------------------------------------


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise AttestationRefusedError(f"{what} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttestationRefusedError(f"{what} is not base64: {exc}") from exc


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AttestationRefusedError(f"{what} is not a JSON object")
    return value


def load_public_key(public_key_pem: str | bytes) -> Any:
    """The ECDSA P-256 public key of a PEM (`cryptography`). Raises ValueError for anything else."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the attestation key must be an ECDSA P-256 public key (KMS ECC_NIST_P256)")
    return key


def _signed_by(key: Any, message: bytes, signatures: Sequence[Any]) -> str | None:
    """The keyid of the first signature `key` verifies over `message` (ECDSA P-256 SHA-256, DER), if any."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    for index, entry in enumerate(signatures):
        sig = _b64(_object(entry, f"signature {index}").get("sig"), f"signature {index}")
        try:
            key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return str(entry.get("keyid") or "")
    return None


def _matches_resource(actual: str, expected: str) -> bool:
    """`expected` is `registry/repository:tag` (exact) or `registry/repository` (any tag of it)."""
    name = expected.rsplit("/", 1)[-1]
    if ":" in name:
        return actual == expected
    return actual.startswith(expected + ":") and "/" not in actual[len(expected) + 1 :]


def parse_bundle(bundle_bytes: bytes) -> dict[str, Any]:
    """The bundle's DSSE envelope, after checking the bundle's media type. Raises AttestationRefusedError."""
    try:
        document = json.loads(bundle_bytes)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttestationRefusedError(f"the bundle is not JSON: {exc}") from exc
    document = _object(document, "the bundle")
    if document.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise AttestationRefusedError(
            f"bundle media type {document.get('mediaType')!r} is not {BUNDLE_MEDIA_TYPE}"
        )
    return _object(document.get("dsseEnvelope"), "the bundle's dsseEnvelope")


def verify_bundle(
    bundle_bytes: bytes,
    public_key_pem: str | bytes,
    *,
    subject_digest: str,
    resource: str | None = None,
    rule: str | None = None,
    level: str | None = None,
    verifier_id: str = VERIFIER_ID,
) -> VerifiedAttestation:
    """Verify one attestation as a consumer must (the VSA spec, "How to verify"): the DSSE signature
    over the PAE with `public_key_pem` (ECDSA P-256 SHA-256), the statement type, the subject digest
    (`subject_digest`), the predicate type, the verifier id, the resource (`resource`:
    `registry/repository:tag` exactly, or `registry/repository` for any tag; None: not checked),
    `verificationResult` PASSED, and when given the rule (its level and our extension's rule) and
    `level` among `verifiedLevels`.

    Raises AttestationRefusedError (one line: what does not hold) and ValueError for a key that is not
    an ECDSA P-256 PEM public key (bad input, not a bad attestation).
    """
    key = load_public_key(public_key_pem)
    dsse = parse_bundle(bundle_bytes)
    payload_type = dsse.get("payloadType")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise AttestationRefusedError(f"payload type {payload_type!r} is not {IN_TOTO_PAYLOAD_TYPE}")
    payload = _b64(dsse.get("payload"), "the envelope's payload")
    signatures = dsse.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise AttestationRefusedError("the envelope has no signatures")
    keyid = _signed_by(key, pae(payload_type, payload), signatures)
    if keyid is None:
        raise AttestationRefusedError("no signature of the envelope verifies with the given key")
    # Only now is the payload trusted enough to read.
    try:
        statement = _object(json.loads(payload), "the statement")
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttestationRefusedError(f"the statement is not JSON: {exc}") from exc
    if statement.get("_type") != STATEMENT_TYPE:
        raise AttestationRefusedError(f"statement type {statement.get('_type')!r} is not {STATEMENT_TYPE}")
    if statement.get("predicateType") != VSA_PREDICATE_TYPE:
        raise AttestationRefusedError(
            f"predicate type {statement.get('predicateType')!r} is not {VSA_PREDICATE_TYPE}"
        )
    algorithm, value = next(iter(digest_set(subject_digest).items()))
    subjects = [s for s in statement.get("subject") or () if isinstance(s, dict)]
    subject = next(
        (s for s in subjects if isinstance(s.get("digest"), dict) and s["digest"].get(algorithm) == value),
        None,
    )
    if subject is None:
        named = ", ".join(sorted({f"{algorithm}:{(s.get('digest') or {}).get(algorithm)}" for s in subjects}))
        raise AttestationRefusedError(f"the statement is about {named}, not {subject_digest}")
    predicate = _object(statement.get("predicate"), "the predicate")
    verifier = _object(predicate.get("verifier"), "predicate.verifier")
    if verifier.get("id") != verifier_id:
        raise AttestationRefusedError(f"verifier {verifier.get('id')!r} is not {verifier_id}")
    actual_resource = str(predicate.get("resourceUri", ""))
    if resource is not None and not _matches_resource(actual_resource, resource):
        raise AttestationRefusedError(f"resourceUri {actual_resource!r} is not {resource}")
    if resource is not None and subject.get("name") != resource_repository(resource):
        raise AttestationRefusedError(
            f"subject name {subject.get('name')!r} is not {resource_repository(resource)}"
        )
    if predicate.get("verificationResult") != PASSED:
        raise AttestationRefusedError(
            f"verificationResult is {predicate.get('verificationResult')!r}, not PASSED"
        )
    levels = tuple(str(v) for v in predicate.get("verifiedLevels") or ())
    promotion = predicate.get(PROMOTION_FIELD) if isinstance(predicate.get(PROMOTION_FIELD), dict) else {}
    if rule is not None and (rule_level(rule) not in levels or promotion.get("rule") != rule):
        raise AttestationRefusedError(
            f"the attestation is not for rule {rule!r} (levels: {', '.join(levels)})"
        )
    if level is not None and level not in levels:
        raise AttestationRefusedError(
            f"level {level!r} is not among the verified levels ({', '.join(levels)})"
        )
    policy = predicate.get("policy") if isinstance(predicate.get("policy"), dict) else {}
    policy_digest = policy.get("digest") if isinstance(policy.get("digest"), dict) else {}
    source = promotion.get("source") if isinstance(promotion.get("source"), dict) else {}
    return VerifiedAttestation(
        subject_name=str(subject.get("name", "")),
        subject_digest=subject_digest,
        resource_uri=actual_resource,
        verifier_id=str(verifier.get("id")),
        verifier_version={str(k): str(v) for k, v in (verifier.get("version") or {}).items()},
        time_verified=str(predicate.get("timeVerified", "")),
        policy_uri=str(policy.get("uri", "")),
        policy_digest=f"sha256:{policy_digest['sha256']}" if "sha256" in policy_digest else "",
        verified_levels=levels,
        input_attestations=tuple(i for i in predicate.get("inputAttestations") or () if isinstance(i, dict)),
        rule=promotion.get("rule"),
        gates=tuple(g[len(GATE_LEVEL_PREFIX) :].lower() for g in levels if g.startswith(GATE_LEVEL_PREFIX)),
        requester=promotion.get("requestedBy"),
        trigger=promotion.get("trigger"),
        source=source.get("uri"),
        keyid=keyid,
    )


def resource_repository(resource: str) -> str:
    """`registry/repository` of `registry/repository[:tag]` (a registry's `:port` is kept)."""
    head, _, name = resource.rpartition("/")
    return f"{head}/{name.split(':', 1)[0]}" if head else name.split(":", 1)[0]
