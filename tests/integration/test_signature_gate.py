"""The signature gate end to end on the local AWS (issue 11): images signed in cosign's format with
keys made here (and a key held in the local KMS), signatures pushed as cosign pushes them (tag
`sha256-<hex>.sig`, or an OCI 1.1 referrer), promoted through the Lambda handler and the CLI."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from local_aws import images as im
from promoter import handler, settings
from promoter.aws.history import DynamoDbHistory
from promoter.aws.results import detail_type_for
from promoter.model.outcomes import UNVERIFIED
from tests.fixtures import SIGNATURES_DIR
from tests.lambda_events import FakeLambdaContext, sqs_batch

pytestmark = pytest.mark.integration

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"




# --- signing as cosign does ---------------------------------------------------------------------


class KeyPair:
    """An ECDSA P-256 key pair, as `cosign generate-key-pair` makes."""

    def __init__(self) -> None:
        self._private = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_pem(self) -> str:
        return (
            self._private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, payload: bytes) -> bytes:
        return self._private.sign(payload, ec.ECDSA(hashes.SHA256()))


def simple_signing_payload(digest: str) -> bytes:
    """cosign's simple-signing payload for `digest` (the exact bytes that get signed)."""
    document = {
        "critical": {
            "identity": {"docker-reference": "registry.example/app"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _signature_manifest(payload: bytes, signature: bytes, subject: im.Manifest | None) -> im.Manifest:
    blob = im.Blob(payload, im.COSIGN_SIGNATURE)
    layer = dict(blob.descriptor(), annotations={SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()})
    if subject is None:  # the `.sig` tag: an image manifest with a config
        config = im.Blob(
            json.dumps(
                {"architecture": "", "os": "", "rootfs": {"type": "layers", "diff_ids": [blob.digest]}}
            ).encode(),
            im.OCI_CONFIG,
        )
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": im.OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer],
        }
        return im.Manifest(json.dumps(document).encode(), im.OCI_MANIFEST, blobs=(config, blob))
    empty = im.Blob(b"{}", im.OCI_EMPTY)  # an OCI 1.1 referrer (cosign --registry-referrers-mode oci-1-1)
    document = {
        "schemaVersion": 2,
        "mediaType": im.OCI_MANIFEST,
        "artifactType": COSIGN_ARTIFACT_TYPE,
        "config": empty.descriptor(),
        "layers": [layer],
        "subject": subject.descriptor(),
    }
    return im.Manifest(json.dumps(document).encode(), im.OCI_MANIFEST, blobs=(empty, blob))


def signature_tag(digest: str) -> str:
    return "sha256-" + digest.split(":", 1)[1] + ".sig"


def push_tag_signature(
    pusher, repository: str, subject: im.Manifest, sign: Callable[[bytes], bytes], *, names: str | None = None
) -> im.Manifest:
    """`cosign sign --key`: the signature at tag sha256-<hex>.sig; `names` signs another digest."""
    payload = simple_signing_payload(names or subject.digest)
    manifest = _signature_manifest(payload, sign(payload), None)
    pusher.push(repository, manifest, signature_tag(subject.digest))
    return manifest


def push_referrer_signature(pusher, repository: str, subject: im.Manifest, sign: Callable[[bytes], bytes]):
    payload = simple_signing_payload(subject.digest)
    manifest = _signature_manifest(payload, sign(payload), subject)
    pusher.push(repository, manifest)
    return manifest


# --- the stack's paths: the Lambda handler and the CLI -----------------------------------------


@pytest.fixture
def repos(ecr, unique_name) -> tuple[str, str]:
    source, target = unique_name("signed"), unique_name("prod")
    ecr.create_repository(repositoryName=source)
    ecr.create_repository(repositoryName=target)
    return source, target


def rule_config(source: str, target: str, keys: list[str]) -> dict[str, Any]:
    return {
        "rules": [
            {
                "name": "release",
                "source": {"repository": source, "tags": ["v*"]},
                "targets": [{"repository": target}],
                "require": {"signature": {"cosign": {"keys": keys}}},
            }
        ]
    }


@pytest.fixture
def lambda_with(
    aws_env, tmp_path, monkeypatch
) -> Callable[[dict[str, Any]], Callable[[str, str, str], dict]]:
    """`lambda_with(config)(repository, digest, tag)`: one push event through the Lambda handler."""

    def configure(config: dict[str, Any]) -> Callable[[str, str, str], dict]:
        path = tmp_path / settings.STAGED_CONFIG_FILE
        path.write_text(json.dumps(config))
        monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        handler.runtime.cache_clear()

        def push(repository: str, digest: str, tag: str) -> dict:
            body = json.dumps(push_event(repository, digest, tag))
            return handler.handle_queue(sqs_batch(body), FakeLambdaContext())

        return push

    yield configure
    handler.runtime.cache_clear()


def push_event(repository: str, digest: str, tag: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": "123456789012",
        "time": "2026-12-01T10:15:30Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": "PUSH",
            "image-tag": tag,
            "manifest-media-type": im.OCI_MANIFEST,
        },
    }


def promoter_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promoter_cli.main", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def images_in(ecr, repository: str) -> list[dict[str, Any]]:
    return ecr.describe_images(repositoryName=repository)["imageDetails"]


def digest_at(ecr, repository: str, tag: str) -> str | None:
    found = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"]
    return found[0]["imageId"]["imageDigest"] if found else None


def history_of(target: str, tag: str) -> list[dict[str, Any]]:
    return DynamoDbHistory().for_target(target, tag)


def key_id_of(pem: str) -> str:
    import hashlib

    der = serialization.load_pem_public_key(pem.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


# --- tests ----------------------------------------------------------------------------------------


def test_an_image_signed_at_its_cosign_tag_is_promoted_with_its_signature_and_the_signer_is_recorded(
    ecr, pusher, repos, lambda_with
):
    source, target = repos
    key = KeyPair()
    image = im.image((512,))
    pusher.push(source, image, "v1")
    signature = push_tag_signature(pusher, source, image, key.sign)

    response = lambda_with(rule_config(source, target, [key.public_pem]))(source, image.digest, "v1")

    assert response == {"batchItemFailures": []}
    assert digest_at(ecr, target, "v1") == image.digest
    assert digest_at(ecr, target, signature_tag(image.digest)) == signature.digest  # verifies there too
    (recorded,) = history_of(target, "v1")
    assert recorded["outcome"] == "promoted"
    assert recorded["signature"]["verifier"] == "cosign"
    assert recorded["signature"]["identity"] == key_id_of(key.public_pem)
    assert recorded["signature"]["signed_digest"] == image.digest


def test_a_signature_stored_as_an_oci_referrer_passes_and_arrives_in_the_target(
    ecr, pusher, repos, lambda_with
):
    source, target = repos
    key = KeyPair()
    image = im.image((512,))
    pusher.push(source, image, "v2")
    referrer = push_referrer_signature(pusher, source, image, key.sign)

    response = lambda_with(rule_config(source, target, [key.public_pem]))(source, image.digest, "v2")

    assert response == {"batchItemFailures": []}
    assert digest_at(ecr, target, "v2") == image.digest
    stored = ecr.batch_get_image(repositoryName=target, imageIds=[{"imageDigest": referrer.digest}])
    assert stored["images"] and stored["images"][0]["imageManifest"].encode() == referrer.raw


def result_events(endpoint: str, target: str) -> Callable[[], list[dict[str, Any]]]:
    """Result events about `target` on the default bus (where the handler publishes them here),
    through a rule into a queue: `drain()` returns what arrived."""
    import time

    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    events = boto3.client("events", endpoint_url=endpoint, region_name="us-east-1")
    name = f"sig-{uuid.uuid4().hex[:12]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {
        "source": [settings.DEFAULT_REQUEST_EVENT_SOURCE],
        "detail-type": list(settings.RESULT_DETAIL_TYPES),
        "detail": {"target": {"repository-name": [target]}},
    }
    events.put_rule(Name=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])

    def drain(count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                got.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return got

    return drain


@pytest.mark.parametrize("case", ["unsigned", "wrong-key", "names-another-digest"])
def test_an_image_without_an_acceptable_signature_is_unverified_and_nothing_is_written(
    ecr, pusher, repos, lambda_with, aws_env, case
):
    source, target = repos
    key, stranger = KeyPair(), KeyPair()
    image, other = im.image((512,)), im.image((512,))
    pusher.push(source, image, "v3")
    if case == "wrong-key":
        push_tag_signature(pusher, source, image, stranger.sign)
    elif case == "names-another-digest":
        push_tag_signature(pusher, source, image, key.sign, names=other.digest)
    announced = result_events(aws_env.endpoint, target)

    response = lambda_with(rule_config(source, target, [key.public_pem]))(source, image.digest, "v3")

    assert response == {"batchItemFailures": []}  # final: never handed back for a retry
    assert images_in(ecr, target) == []
    (recorded,) = history_of(target, "v3")
    assert recorded["outcome"] == UNVERIFIED
    expected = {
        "unsigned": "no signature of",
        "wrong-key": "does not verify",
        "names-another-digest": other.digest,
    }[case]
    assert expected in recorded["reason"]
    (event,) = announced()
    assert event["detail-type"] == settings.BLOCKED_DETAIL_TYPE == detail_type_for(UNVERIFIED)
    assert event["detail"]["outcome"] == UNVERIFIED and expected in event["detail"]["outcome-reason"]


def test_a_signature_made_by_a_kms_key_is_verified_with_kms_verify(ecr, pusher, repos, lambda_with, aws_env):
    source, target = repos
    kms = boto3.client("kms", endpoint_url=aws_env.endpoint, region_name="us-east-1")
    arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]

    def kms_sign(payload: bytes) -> bytes:
        return kms.sign(KeyId=arn, Message=payload, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")[
            "Signature"
        ]

    signed, unsigned = im.image((512,)), im.image((512,))
    pusher.push(source, signed, "v4")
    pusher.push(source, unsigned, "v5")
    push_tag_signature(pusher, source, signed, kms_sign)
    push_tag_signature(pusher, source, unsigned, KeyPair().sign)  # a key KMS does not hold
    promote = lambda_with(rule_config(source, target, [f"awskms:///{arn}"]))

    assert promote(source, signed.digest, "v4") == {"batchItemFailures": []}
    assert promote(source, unsigned.digest, "v5") == {"batchItemFailures": []}

    assert digest_at(ecr, target, "v4") == signed.digest
    assert history_of(target, "v4")[0]["signature"]["identity"] == f"awskms:///{arn}"
    assert digest_at(ecr, target, "v5") is None
    assert history_of(target, "v5")[0]["outcome"] == UNVERIFIED


def test_the_cli_plans_and_handles_through_the_signature_gate(ecr, pusher, repos, aws_env, tmp_path):
    source, target = repos
    key = KeyPair()
    signed, unsigned = im.image((256,)), im.image((256,))
    pusher.push(source, signed, "v6")
    pusher.push(source, unsigned, "v7")
    push_tag_signature(pusher, source, signed, key.sign)
    config = tmp_path / "promotion.yaml"
    config.write_text(json.dumps(rule_config(source, target, [key.public_pem])))
    events = {}
    for name, image, tag in (("signed", signed, "v6"), ("unsigned", unsigned, "v7")):
        events[name] = tmp_path / f"{name}.json"
        events[name].write_text(json.dumps(push_event(source, image.digest, tag)))

    planned = promoter_cli("plan", str(events["unsigned"]), "--config", str(config), "--json")
    table = promoter_cli("plan", str(events["signed"]), "--config", str(config)).stdout
    refused = promoter_cli("handle", str(events["unsigned"]), "--config", str(config), "--json")
    handled = promoter_cli("handle", str(events["signed"]), "--config", str(config), "--json")

    (plan,) = json.loads(planned.stdout)["actions"]
    assert plan["outcome"] == UNVERIFIED and plan["gates"]["signature"].startswith("unverified: no signature")
    assert f"signature passed: cosign signature by {key_id_of(key.public_pem)}" in table
    assert refused.returncode != 0 and json.loads(refused.stdout)["actions"][0]["outcome"] == UNVERIFIED
    assert handled.returncode == 0, handled.stdout + handled.stderr
    (promoted,) = json.loads(handled.stdout)["actions"]
    assert promoted["outcome"] == "promoted" and promoted["signature"]["verifier"] == "cosign"
    assert digest_at(ecr, target, "v6") == signed.digest
    assert digest_at(ecr, target, "v7") is None


# --- Notation (AWS Signer-shaped JWS envelopes, signed here by a test CA) -------------------------

NOTATION_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
JWS_MEDIA_TYPE = "application/jose+json"
PROFILE = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/release"
PROFILE_VERSION = f"{PROFILE}/a1b2c3d4e5"
SIGNING_JOB = "arn:aws:signer:us-east-1:123456789012:/signing-jobs/0c8f3d4c-0000-1111-2222-333344445555"
NOTATION_CRITICAL = [
    "io.cncf.notary.signingScheme",
    "io.cncf.notary.authenticSigningTime",
    "io.cncf.notary.verificationPlugin",
    "com.amazonaws.signer.signingProfileVersion",
    "com.amazonaws.signer.signingJob",
]


class TestSignerCA:
    """Root -> intermediate -> leaf, ECDSA P-384 as AWS Signer's (keys made here, not AWS's)."""

    __test__ = False

    def __init__(self) -> None:
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC)
        self.signed_at = now - timedelta(hours=1)
        keys = [ec.generate_private_key(ec.SECP384R1()) for _ in range(3)]
        names = ["Test Signer Root", "Test Signer Int", "Test Signer Leaf"]
        certificates = []
        for i, (name, key) in enumerate(zip(names, keys, strict=True)):
            issuer = max(i - 1, 0)
            certificates.append(
                _certificate(name, key, names[issuer], keys[issuer], ca=i < 2, start=now - timedelta(days=1))
            )
        self.root, self.intermediate, self.leaf = certificates
        self.leaf_key = keys[2]

    @property
    def root_pem(self) -> str:
        return self.root.public_bytes(serialization.Encoding.PEM).decode()

    def envelope(self, image: im.Manifest, *, expiry: Any = None) -> bytes:
        """A Notation JWS envelope over `image`'s descriptor, with AWS Signer's attributes."""
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        header: dict[str, Any] = {
            "alg": "ES384",
            "crit": NOTATION_CRITICAL + (["io.cncf.notary.expiry"] if expiry else []),
            "cty": "application/vnd.cncf.notary.payload.v1+json",
            "io.cncf.notary.signingScheme": "notary.x509.signingAuthority",
            "io.cncf.notary.authenticSigningTime": self.signed_at.isoformat(),
            "io.cncf.notary.verificationPlugin": "com.amazonaws.signer.notation.plugin",
            "com.amazonaws.signer.signingProfileVersion": PROFILE_VERSION,
            "com.amazonaws.signer.signingJob": SIGNING_JOB,
        }
        if expiry:
            header["io.cncf.notary.expiry"] = expiry.isoformat()
        target = {
            "targetArtifact": {"digest": image.digest, "mediaType": image.media_type, "size": image.size}
        }
        protected, body = _b64url(json.dumps(header).encode()), _b64url(json.dumps(target).encode())
        r, s = decode_dss_signature(
            self.leaf_key.sign(f"{protected}.{body}".encode(), ec.ECDSA(hashes.SHA384()))
        )
        chain = [
            c.public_bytes(serialization.Encoding.DER) for c in (self.leaf, self.intermediate, self.root)
        ]
        unprotected = {
            "x5c": [base64.b64encode(d).decode() for d in chain],
            "io.cncf.notary.signingAgent": "t",
        }
        signature = _b64url(r.to_bytes(48, "big") + s.to_bytes(48, "big"))
        return json.dumps(
            {"payload": body, "protected": protected, "header": unprotected, "signature": signature}
        ).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _certificate(name: str, key, issuer: str, issuer_key, *, ca: bool, start) -> Any:
    from datetime import timedelta

    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def named(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    builder = (
        x509.CertificateBuilder()
        .subject_name(named(name))
        .issuer_name(named(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA384())


def push_notation_signature(pusher, repository: str, subject: im.Manifest, envelope: bytes) -> im.Manifest:
    """As ECR managed signing stores it: an OCI 1.1 referrer of artifact type notary.signature."""
    blob, empty = im.Blob(envelope, JWS_MEDIA_TYPE), im.Blob(b"{}", im.OCI_EMPTY)
    document = {
        "schemaVersion": 2,
        "mediaType": im.OCI_MANIFEST,
        "artifactType": NOTATION_ARTIFACT_TYPE,
        "config": empty.descriptor(),
        "layers": [blob.descriptor()],
        "subject": subject.descriptor(),
    }
    manifest = im.Manifest(json.dumps(document).encode(), im.OCI_MANIFEST, blobs=(empty, blob))
    pusher.push(repository, manifest)
    return manifest


def notation_config(source: str, target: str, root_pem: str) -> dict[str, Any]:
    config = rule_config(source, target, [])
    config["rules"][0]["require"] = {
        "signature": {"notation": {"signing_profiles": [PROFILE], "trust_roots": [root_pem]}}
    }
    return config


@pytest.fixture
def signer_revocations(aws_env):
    yield aws_env.control
    aws_env.control.clear_revocations()


def test_notation_signatures_pass_unless_expired_or_revoked_in_aws_signer(
    ecr, pusher, repos, lambda_with, signer_revocations
):
    from datetime import UTC, datetime, timedelta

    source, target = repos
    ca = TestSignerCA()
    good, expired, revoked = im.image((256,)), im.image((256,)), im.image((256,))
    for image, tag in ((good, "v10"), (expired, "v11"), (revoked, "v12")):
        pusher.push(source, image, tag)
    push_notation_signature(pusher, source, good, ca.envelope(good))
    push_notation_signature(
        pusher, source, expired, ca.envelope(expired, expiry=datetime.now(UTC) - timedelta(minutes=5))
    )
    push_notation_signature(pusher, source, revoked, ca.envelope(revoked))
    promote = lambda_with(notation_config(source, target, ca.root_pem))

    assert promote(source, good.digest, "v10") == {"batchItemFailures": []}
    assert promote(source, expired.digest, "v11") == {"batchItemFailures": []}
    signer_revocations.revoke_signatures([PROFILE_VERSION])  # the profile version, in AWS Signer
    assert promote(source, revoked.digest, "v12") == {"batchItemFailures": []}

    assert digest_at(ecr, target, "v10") == good.digest
    assert history_of(target, "v10")[0]["signature"]["identity"] == f"CN=Test Signer Leaf ({PROFILE_VERSION})"
    assert digest_at(ecr, target, "v11") is None
    assert "expired" in history_of(target, "v11")[0]["reason"]
    assert digest_at(ecr, target, "v12") is None
    (refused,) = history_of(target, "v12")
    assert (
        refused["outcome"] == UNVERIFIED and f"revoked by AWS Signer: {PROFILE_VERSION}" in refused["reason"]
    )


def test_the_reconciliation_sweep_never_promotes_what_the_signature_gate_refuses(ecr, pusher, repos, aws_env):
    from promoter.aws.registry import EcrRegistry, make_ecr_client
    from promoter.model.config import parse_config
    from promoter.workflows.promote import Promoter
    from promoter.workflows.reconcile import reconcile

    source, target = repos
    key = KeyPair()
    signed, unsigned = im.image((256,)), im.image((256,))
    pusher.push(source, signed, "v20")
    pusher.push(source, unsigned, "v21")
    push_tag_signature(pusher, source, signed, key.sign)
    config = parse_config(rule_config(source, target, [key.public_pem]))
    registry = EcrRegistry(make_ecr_client())

    report = reconcile(config, registry, Promoter(registry).promote)

    assert digest_at(ecr, target, "v20") == signed.digest
    assert digest_at(ecr, target, "v21") is None
    outcomes = {r.source_tag: r.outcome for r in report.results}
    assert outcomes == {"v20": "promoted", "v21": UNVERIFIED}
    promoted = next(r for r in report.results if r.source_tag == "v20")
    assert promoted.signature["identity"] == key_id_of(key.public_pem)


@pytest.mark.parametrize(
    ("kms_answer", "outcome", "handed_back"),
    [
        # Real KMS answers a signature that does not verify with this error (moto: SignatureValid false).
        ("KMSInvalidSignatureException", UNVERIFIED, False),
        # Throttling that outlasted botocore's retries: the gate cannot decide now; the event comes back.
        ("ThrottlingException", None, True),
    ],
)
def test_kms_verify_refusals_as_real_kms_gives_them(
    ecr, pusher, repos, lambda_with, aws_env, monkeypatch, kms_answer, outcome, handed_back
):
    from promoter.aws import kms as kms_adapter
    from promoter.gates import signature as signature_gate

    source, target = repos
    kms = boto3.client("kms", endpoint_url=aws_env.endpoint, region_name="us-east-1")
    arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    image = im.image((256,))
    pusher.push(source, image, "v30")
    push_tag_signature(
        pusher,
        source,
        image,
        lambda p: kms.sign(KeyId=arn, Message=p, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")[
            "Signature"
        ],
    )
    monkeypatch.setattr(kms_adapter, "KMS_MAX_ATTEMPTS", 1)
    signature_gate.shared_kms_verifier.cache_clear()  # a client with that retry policy
    aws_env.control.fail_next("TrentService.Verify", kms_answer, count=8, message="injected")
    promote = lambda_with(rule_config(source, target, [f"awskms:///{arn}"]))

    response = promote(source, image.digest, "v30")
    signature_gate.shared_kms_verifier.cache_clear()

    assert (response["batchItemFailures"] != []) == handed_back
    assert digest_at(ecr, target, "v30") is None
    recorded = history_of(target, "v30")
    assert [h["outcome"] for h in recorded] == ([outcome] if outcome else [])  # a retry is not final
    if outcome:  # read as "this key did not sign it", not as a key that cannot be used
        assert "does not verify" in recorded[0]["reason"] and kms_answer not in recorded[0]["reason"]


def test_a_signed_index_is_verified_on_its_own_digest_and_arrives_with_every_platforms_trust_material(
    ecr, pusher, repos, lambda_with
):
    source, target = repos
    key = KeyPair()
    index = im.multi_arch(attestations=False)
    pusher.push(source, index, "v40")
    for child in index.children:  # signed on its own digest (the tag names the index), no more
        push_tag_signature(pusher, source, child, key.sign)
    promote = lambda_with(rule_config(source, target, [key.public_pem]))

    assert promote(source, index.digest, "v40") == {"batchItemFailures": []}
    assert digest_at(ecr, target, "v40") is None  # the children's signatures do not sign the index
    assert history_of(target, "v40")[0]["outcome"] == UNVERIFIED

    index_signature = push_tag_signature(pusher, source, index, key.sign)
    child_sboms = [im.referrer(child) for child in index.children]
    for sbom in child_sboms:
        pusher.push(source, sbom)
    sbom_signature = push_referrer_signature(pusher, source, child_sboms[0], key.sign)

    assert promote(source, index.digest, "v40") == {"batchItemFailures": []}
    assert digest_at(ecr, target, "v40") == index.digest
    assert digest_at(ecr, target, signature_tag(index.digest)) == index_signature.digest
    for child in index.children:
        assert digest_at(ecr, target, signature_tag(child.digest)) is not None
    for manifest in (*child_sboms, sbom_signature):
        found = ecr.batch_get_image(repositoryName=target, imageIds=[{"imageDigest": manifest.digest}])
        assert found["images"], f"{manifest.digest} did not arrive"


SIGSTORE_BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def test_a_real_sigstore_bundle_is_found_as_a_referrer_read_and_refused_for_signing_another_digest(
    ecr, pusher, repos, lambda_with
):
    """A real GitHub Actions bundle (it signs a wheel's digest, not this image): the gate finds it
    among the referrers, reads its blob and hands it to the Sigstore verifier, which refuses it."""
    source, target = repos
    bundle = (
        SIGNATURES_DIR / "sigstore-bundle/github-actions-digest-only/bundle_v3_github.whl.sigstore"
    ).read_bytes()
    image = im.image((256,))
    pusher.push(source, image, "v50")
    blob, empty = im.Blob(bundle, SIGSTORE_BUNDLE_TYPE), im.Blob(b"{}", im.OCI_EMPTY)
    document = {
        "schemaVersion": 2,
        "mediaType": im.OCI_MANIFEST,
        "artifactType": SIGSTORE_BUNDLE_TYPE,
        "config": empty.descriptor(),
        "layers": [blob.descriptor()],
        "subject": image.descriptor(),
    }
    pusher.push(source, im.Manifest(json.dumps(document).encode(), im.OCI_MANIFEST, blobs=(empty, blob)))
    config = rule_config(source, target, [])
    identity = {
        "issuer": "https://token.actions.githubusercontent.com",
        "subject": "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
    }
    config["rules"][0]["require"] = {"signature": {"sigstore": {"identities": [identity]}}}

    assert lambda_with(config)(source, image.digest, "v50") == {"batchItemFailures": []}

    assert digest_at(ecr, target, "v50") is None
    (refused,) = history_of(target, "v50")
    assert refused["outcome"] == UNVERIFIED
    assert "sigstore referrer" in refused["reason"] and "message digest mismatch" in refused["reason"]
