"""Promotion attestations on the local AWS: signed by its KMS (as real KMS signs), attached as an OCI
1.1 referrer in the local registry, verified by an implementation that is not ours (securesystemslib's
DSSE `Envelope` + `SSlibKey` with the PEM KMS GetPublicKey returned) and by `promoter attestation
verify`; a tampered envelope, a statement for another digest and another key's signature are
refused by both. Also the local AWS's KMS itself: Sign/Verify/GetPublicKey for ECC_NIST_P256 with
RAW and DIGEST messages answer as KMS does (local_aws.moto_fixes)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from local_aws import images as im
from promoter.aws.attestations import KmsAttestationSigner
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.exceptions import AttestationError
from promoter.model import attestation as vsa
from promoter_cli.main import main
from tests.integration.test_operator_cli import deploy_outputs

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed"),
]

REGION = "us-east-1"
RULE = "to-prod"
REQUESTER = "arn:aws:sts::123456789012:assumed-role/Release/alice"
EVIDENCE = (
    {
        "gate": "signature",
        "summary": "signed by awskms:///release",
        "inputs": ({"uri": "oci://app@sha256:" + "11" * 32, "digest": "sha256:" + "11" * 32},),
        "details": {},
    },
    {
        "gate": "scan",
        "summary": "no finding at or above HIGH",
        "inputs": ({"uri": "ecr://app/scan-findings", "digest": "sha256:" + "22" * 32},),
        "details": {},
    },
)
CONFIG = b"rules:\n  - name: to-prod\n"


@pytest.fixture
def kms(aws_env):
    return boto3.client("kms", endpoint_url=aws_env.endpoint, region_name=REGION)


@pytest.fixture
def key_arn(kms) -> str:
    return kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]


@pytest.fixture
def other_key_arn(kms) -> str:
    return kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]


@pytest.fixture
def host(aws_env) -> str:
    return EcrRegistry(make_ecr_client()).registry_host()


@pytest.fixture
def promoted(repo, pusher):
    """An image in the target repository, tagged v1 (what a promotion wrote)."""
    image = im.image()
    pusher.push(repo, image, "v1")
    return image


def statement(host: str, repo: str, digest: str, *, evidence=EVIDENCE, tag: str = "v1") -> bytes:
    return vsa.build_statement(
        subject_digest=digest,
        target_registry=host,
        target_repository=repo,
        target_tag=tag,
        rule=RULE,
        config_digest=vsa.config_sha256(CONFIG),
        config_name="promotion.yaml",
        source=f"{host}/app:v1",
        source_digest=digest,
        requested_by=REQUESTER,
        trigger="request",
        evidence=evidence,
        time_verified=datetime(2026, 12, 6, 18, 0, tzinfo=UTC),
        version="0.1.0",
    )


def signed_bundle(payload: bytes, key_arn: str) -> bytes:
    """Signed as the engine signs: KMS Sign over the PAE (RAW up to 4,096 bytes, else DIGEST)."""
    signature = KmsAttestationSigner(key_arn).sign(vsa.pae(vsa.IN_TOTO_PAYLOAD_TYPE, payload))
    return vsa.bundle(vsa.envelope(payload, signature, key_arn), key_arn)


def attach(pusher, repo: str, subject: im.Manifest, bundle: bytes, target: str) -> str:
    """Puts the referrer manifest (exact bytes) and its blobs in `repo`; its digest."""
    annotations = vsa.attestation_annotations(RULE, target, datetime.now(UTC))
    body, blobs = vsa.referrer_manifest(bundle, subject.digest, subject.media_type, subject.size, annotations)
    media = {vsa.sha256_digest(vsa.OCI_EMPTY_BLOB): vsa.OCI_EMPTY_MEDIA_TYPE}
    referrer = im.Manifest(
        body,
        vsa.OCI_MANIFEST_MEDIA_TYPE,
        tuple(im.Blob(data, media.get(digest, vsa.BUNDLE_MEDIA_TYPE)) for digest, data in blobs.items()),
    )
    return pusher.push(repo, referrer).digest


def sslib_verify(bundle: bytes, pem: str, keyid: str) -> None:
    """securesystemslib's DSSE verification; raises VerificationError."""
    envelope = Envelope.from_dict(json.loads(bundle)["dsseEnvelope"])
    key = SSlibKey.from_crypto(load_pem_public_key(pem.encode()), keyid=keyid, scheme="ecdsa-sha2-nistp256")
    envelope.verify([key], 1)


def promoter(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_an_attestation_signed_by_local_kms_is_verified_by_securesystemslib_and_by_the_cli(
    capsys, repo, pusher, promoted, key_arn, host
):
    target = f"{host}/{repo}:v1"
    bundle = signed_bundle(statement(host, repo, promoted.digest), key_arn)
    attestation = attach(pusher, repo, promoted, bundle, target)
    pem = KmsAttestationSigner(key_arn).public_key_pem()

    sslib_verify(bundle, pem, key_arn)
    # cosign's spelling of a KMS key, as a Kyverno or cosign user already has it.
    code, out, err = promoter(capsys, "attestation", "verify", f"{repo}:v1", "--key", f"awskms:///{key_arn}")
    assert (code, err) == (0, "")
    assert f"verified attestation {attestation}" in out
    assert "gates      signature, scan" in out
    assert f"requester  {REQUESTER}" in out
    assert "time       2026-12-06T18:00:00Z" in out
    assert f"policy     sha256:{hashlib.sha256(CONFIG).hexdigest()}" in out

    code, out, _ = promoter(
        capsys,
        "attestation",
        "verify",
        f"{host}/{repo}@{promoted.digest}",
        "--key",
        pem,
        "--rule",
        RULE,
        "--json",
    )
    document = json.loads(out)
    assert code == 0 and document["verified"] is True
    [only] = document["attestations"]
    assert only["attestation"] == attestation and only["resourceUri"] == target
    assert only["verifiedLevels"] == [
        "ECR_PROMOTER_RULE_to-prod",
        "ECR_PROMOTER_GATE_SIGNATURE",
        "ECR_PROMOTER_GATE_SCAN",
    ]


def test_a_statement_over_4096_bytes_is_signed_as_a_digest_and_still_verifies(
    capsys, repo, pusher, promoted, key_arn, host
):
    # 60 inputs make the PAE ~9 KB: KMS takes it as its SHA-256 (MessageType DIGEST), which moto
    # hashed once more before local_aws.moto_fixes: securesystemslib refused those signatures.
    many = tuple({"uri": f"oci://app@sha256:{i:064x}", "digest": f"sha256:{i:064x}"} for i in range(60))
    payload = statement(host, repo, promoted.digest, evidence=({**EVIDENCE[0], "inputs": many},))
    assert len(vsa.pae(vsa.IN_TOTO_PAYLOAD_TYPE, payload)) > 4096
    bundle = signed_bundle(payload, key_arn)
    attach(pusher, repo, promoted, bundle, f"{host}/{repo}:v1")

    sslib_verify(bundle, KmsAttestationSigner(key_arn).public_key_pem(), key_arn)
    code, _, err = promoter(capsys, "attestation", "verify", f"{repo}:v1", "--key", key_arn)
    assert (code, err) == (0, "")


def _tampered(bundle: bytes) -> bytes:
    document = json.loads(bundle)
    payload = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    payload["predicate"]["verifiedLevels"].append("ECR_PROMOTER_GATE_APPROVAL")
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    return json.dumps(document).encode()


def test_a_tampered_envelope_is_refused_by_securesystemslib_and_by_the_cli(
    capsys, repo, pusher, promoted, key_arn, host
):
    bundle = _tampered(signed_bundle(statement(host, repo, promoted.digest), key_arn))
    attestation = attach(pusher, repo, promoted, bundle, f"{host}/{repo}:v1")

    with pytest.raises(VerificationError):
        sslib_verify(bundle, KmsAttestationSigner(key_arn).public_key_pem(), key_arn)
    code, out, err = promoter(capsys, "attestation", "verify", f"{repo}:v1", "--key", key_arn)
    assert code == 1
    assert f"REFUSED  attestation {attestation}" in out and "no signature of the envelope verifies" in out
    assert "1 of 1 attestation(s)" in err


def test_an_attestation_signed_by_another_kms_key_is_refused_by_securesystemslib_and_by_the_cli(
    capsys, repo, pusher, promoted, key_arn, other_key_arn, host
):
    # Signed by the other key but naming ours as its keyid: only the signature can tell.
    payload = statement(host, repo, promoted.digest)
    signature = KmsAttestationSigner(other_key_arn).sign(vsa.pae(vsa.IN_TOTO_PAYLOAD_TYPE, payload))
    bundle = vsa.bundle(vsa.envelope(payload, signature, key_arn), key_arn)
    attach(pusher, repo, promoted, bundle, f"{host}/{repo}:v1")

    with pytest.raises(VerificationError):
        sslib_verify(bundle, KmsAttestationSigner(key_arn).public_key_pem(), key_arn)
    code, out, _ = promoter(capsys, "attestation", "verify", f"{repo}:v1", "--key", key_arn)
    assert code == 1 and "no signature of the envelope verifies" in out
    code, _, _ = promoter(capsys, "attestation", "verify", f"{repo}:v1", "--key", other_key_arn)
    assert code == 0  # the key that signed verifies it: the refusal above is the key's


def test_a_statement_for_another_digest_is_refused_by_the_verifying_consumer_and_by_the_cli(
    capsys, repo, pusher, promoted, key_arn, host
):
    other = "sha256:" + "ee" * 32
    bundle = signed_bundle(statement(host, repo, other), key_arn)
    attach(pusher, repo, promoted, bundle, f"{host}/{repo}:v1")

    # securesystemslib verifies the envelope (the signature is good); the statement it hands back is
    # about another digest, which a consumer must check (the VSA spec): it is not this image's.
    pem = KmsAttestationSigner(key_arn).public_key_pem()
    sslib_verify(bundle, pem, key_arn)
    payload = Envelope.from_dict(json.loads(bundle)["dsseEnvelope"]).payload
    assert json.loads(payload)["subject"][0]["digest"] != {"sha256": promoted.digest.removeprefix("sha256:")}
    code, out, _ = promoter(capsys, "attestation", "verify", f"{repo}@{promoted.digest}", "--key", key_arn)
    assert code == 1 and f"the statement is about {other}, not {promoted.digest}" in out


def test_the_referrer_is_listed_by_the_registry_with_its_artifact_type_and_its_digest_is_its_bytes(
    local_aws, ecr, repo, pusher, promoted, key_arn, host
):
    bundle = signed_bundle(statement(host, repo, promoted.digest), key_arn)
    attestation = attach(pusher, repo, promoted, bundle, f"{host}/{repo}:v1")
    body = ecr.batch_get_image(
        repositoryName=repo,
        imageIds=[{"imageDigest": attestation}],
        acceptedMediaTypes=[vsa.OCI_MANIFEST_MEDIA_TYPE],
    )["images"][0]["imageManifest"]
    assert attestation == "sha256:" + hashlib.sha256(body.encode()).hexdigest()

    token = base64.b64encode(f"AWS:{local_aws.password}".encode()).decode()
    request = urllib.request.Request(
        f"{local_aws.endpoint}/v2/{repo}/referrers/{promoted.digest}",
        headers={"Authorization": f"Basic {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        index = json.loads(response.read())
    [listed] = [d for d in index["manifests"] if d["digest"] == attestation]
    assert listed["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert listed["annotations"]["dev.sigstore.bundle.predicateType"] == vsa.VSA_PREDICATE_TYPE
    assert listed["annotations"]["dev.ecr-image-promoter.rule"] == RULE
    # ListImageReferrers (what the promoter reads) says the same.
    found = EcrRegistry(make_ecr_client()).referrer_annotations(repo, promoted.digest, vsa.BUNDLE_MEDIA_TYPE)
    assert vsa.is_our_attestation(found[attestation], RULE, f"{host}/{repo}:v1")


def test_verify_says_what_is_missing_and_refuses_bad_input(capsys, repo, pusher, promoted, key_arn, host):
    code, _, err = promoter(capsys, "attestation", "verify", f"{repo}:v1", "--key", key_arn)
    assert code == 1 and f"no attestation of the promoter for {host}/{repo}:v1" in err
    attach(
        pusher,
        repo,
        promoted,
        signed_bundle(statement(host, repo, promoted.digest), key_arn),
        f"{host}/{repo}:v1",
    )
    code, _, err = promoter(
        capsys, "attestation", "verify", f"{repo}:v1", "--key", key_arn, "--rule", "to-staging"
    )
    assert code == 1 and "(there are attestations for:" in err
    pusher.push(repo, promoted, "latest")  # the same digest under a tag the promoter never attested
    code, _, err = promoter(capsys, "attestation", "verify", f"{repo}:latest", "--key", key_arn)
    assert code == 1 and f"there are attestations for: {host}/{repo}:v1" in err
    code, _, err = promoter(capsys, "attestation", "verify", f"{repo}:nope", "--key", key_arn)
    assert code == 1 and "nope" in err

    for bad in (repo, f"{repo}@sha256:abc", "UPPER:v1", f"{repo}:v1 x"):
        code, _, err = promoter(capsys, "attestation", "verify", bad, "--key", key_arn)
        assert code == 2 and err.startswith("promoter: ") and err.count("\n") == 1, (bad, err)
    for key in ("not-a-key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"):
        code, _, err = promoter(capsys, "attestation", "verify", f"{repo}:v1", "--key", key)
        assert code == 2 and err.count("\n") == 1, err
    code, _, err = promoter(capsys, "attestation", "verify", f"example.com:5000/{repo}:v1", "--key", key_arn)
    assert code == 2 and "example.com:5000" in err


def test_attestation_key_prints_the_pem_kms_get_public_key_returns(capsys, monkeypatch, kms, key_arn):
    der = kms.get_public_key(KeyId=key_arn)["PublicKey"]
    code, out, _ = promoter(capsys, "attestation", "key", "--key-arn", key_arn)
    assert code == 0
    assert load_pem_public_key(out.encode()).public_numbers() == load_der_public_key(der).public_numbers()
    monkeypatch.setenv("ATTESTATION_KEY_ARN", key_arn)
    assert promoter(capsys, "attestation", "key")[:2] == (0, out)


def test_attestation_key_finds_the_stacks_key_through_its_output(capsys, monkeypatch, aws_env, key_arn):
    # `--stack` sets ATTESTATION_KEY_ARN in this process (resources.use_stack): monkeypatch puts it
    # back after the test, set or not.
    monkeypatch.setenv("ATTESTATION_KEY_ARN", "unset-after-the-test")
    monkeypatch.delenv("ATTESTATION_KEY_ARN")
    expected = KmsAttestationSigner(key_arn).public_key_pem()
    stack = deploy_outputs(aws_env.endpoint, {"AttestationPublicKeyArn": key_arn})
    assert promoter(capsys, "attestation", "key", "--stack", stack)[:2] == (0, expected)

    monkeypatch.delenv("ATTESTATION_KEY_ARN")
    older = deploy_outputs(aws_env.endpoint, {"DashboardUrl": "https://console.aws.amazon.com/"})
    code, out, err = promoter(capsys, "attestation", "key", "--stack", older)
    assert (code, out) == (2, "")
    assert err.startswith(f"promoter: stack {older!r} has no output AttestationPublicKeyArn")
    assert err.endswith("pass --key\n") and err.count("\n") == 1


def test_a_disabled_or_deleted_key_is_a_named_failure_and_throttling_is_retryable(
    capsys, aws_env, kms, key_arn
):
    signer = KmsAttestationSigner(key_arn)
    aws_env.control.fail_next("TrentService.Sign", "ThrottlingException", count=8)
    with pytest.raises(AttestationError) as throttled:
        signer.sign(b"DSSEv1 ...")
    assert throttled.value.retryable
    aws_env.control.clear_faults()

    kms.disable_key(KeyId=key_arn)  # by ARN, as KMS takes it (moto took the bare key id only)
    with pytest.raises(AttestationError) as disabled:
        signer.sign(b"DSSEv1 ...")
    assert not disabled.value.retryable and f"KMS key {key_arn} is disabled" in str(disabled.value)
    code, _, err = promoter(capsys, "attestation", "key", "--key-arn", key_arn)
    assert code == 1 and "is disabled" in err

    kms.enable_key(KeyId=key_arn)
    kms.schedule_key_deletion(KeyId=key_arn, PendingWindowInDays=7)
    with pytest.raises(AttestationError) as pending:
        signer.sign(b"DSSEv1 ...")
    assert not pending.value.retryable and "KMSInvalidStateException" in str(pending.value)
    kms.cancel_key_deletion(KeyId=key_arn)  # KMS leaves a key whose deletion is cancelled disabled
    kms.enable_key(KeyId=key_arn)
    assert len(signer.sign(b"DSSEv1 ...")) > 0


# --- the local AWS's KMS answers as KMS does (local_aws.moto_fixes) ------------------------------


def test_local_kms_signs_a_digest_as_given_and_verifies_raw_and_digest_alike(kms, key_arn):
    message = b"DSSEv1 28 application/vnd.in-toto+json 2 {}" * 200
    digest = hashlib.sha256(message).digest()
    public = load_der_public_key(kms.get_public_key(KeyId=key_arn)["PublicKey"])
    by_digest = kms.sign(
        KeyId=key_arn, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
    )
    public.verify(by_digest["Signature"], message, ec.ECDSA(hashes.SHA256()))  # over the message itself
    by_raw = kms.sign(
        KeyId=key_arn, Message=message[:4096], MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
    )
    for signature, raw in ((by_digest["Signature"], message), (by_raw["Signature"], message[:4096])):
        answer = kms.verify(
            KeyId=key_arn,
            Message=hashlib.sha256(raw).digest(),
            MessageType="DIGEST",
            Signature=signature,
            SigningAlgorithm="ECDSA_SHA_256",
        )
        assert answer["SignatureValid"] is True
    answer = kms.verify(
        KeyId=key_arn,
        Message=message[:4096],
        MessageType="RAW",
        Signature=by_raw["Signature"],
        SigningAlgorithm="ECDSA_SHA_256",
    )
    assert answer["SignatureValid"] is True


@pytest.mark.parametrize(
    ("message", "message_type", "text"),
    [
        (b"x" * 31, "DIGEST", "Digest is invalid length for algorithm ECDSA_SHA_256"),
        (b"x" * 4097, "RAW", "less than or equal to 4096"),
    ],
)
def test_local_kms_refuses_what_kms_refuses(kms, key_arn, message, message_type, text):
    with pytest.raises(ClientError) as refused:
        kms.sign(KeyId=key_arn, Message=message, MessageType=message_type, SigningAlgorithm="ECDSA_SHA_256")
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert text in refused.value.response["Error"]["Message"]


def test_local_kms_answers_a_bad_signature_and_a_disabled_key_as_kms_does(kms, key_arn):
    signature = kms.sign(KeyId=key_arn, Message=b"one", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
    with pytest.raises(ClientError) as invalid:
        kms.verify(
            KeyId=key_arn,
            Message=b"two",
            MessageType="RAW",
            Signature=signature["Signature"],
            SigningAlgorithm="ECDSA_SHA_256",
        )
    assert invalid.value.response["Error"]["Code"] == "KMSInvalidSignatureException"
    answer = kms.get_public_key(KeyId=key_arn.rsplit("/", 1)[1])
    assert (answer["KeyId"], answer["KeySpec"], answer["KeyUsage"]) == (
        key_arn,
        "ECC_NIST_P256",
        "SIGN_VERIFY",
    )
    kms.disable_key(KeyId=key_arn)
    for call in (
        lambda: kms.sign(KeyId=key_arn, Message=b"one", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"),
        lambda: kms.get_public_key(KeyId=key_arn),
    ):
        with pytest.raises(ClientError) as disabled:
            call()
        assert disabled.value.response["Error"]["Code"] == "DisabledException"


def test_a_local_aws_not_started_is_said_in_one_line_as_bad_setup(tmp_path):
    # A real process, as a deploy pipeline runs it: KMS unreachable is the setup's fault (exit 2),
    # said as every command says it, not an attestation refused (exit 1) nor a traceback.
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    for command in (["key", "--key-arn", "alias/image-promoter-attestation"], ["verify", "app:v1"]):
        done = subprocess.run(
            [sys.executable, "-m", "promoter_cli.main", "attestation", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert done.returncode == 2, done
        assert done.stderr.startswith(f"promoter: nothing answers at http://127.0.0.1:{port}"), done.stderr
        assert done.stderr.count("\n") == 1 and done.stdout == ""


def test_what_the_engine_attests_on_a_break_glass_promotion_verifies_with_the_configured_key(
    capsys, monkeypatch, ecr, unique_name, pusher, key_arn
):
    # Not built by this test: `promoter promote` writes the attestation (workflows.attest) with the
    # key ATTESTATION_KEY_ARN names; `attestation verify` and securesystemslib read it back.
    source, target = unique_name("dev"), unique_name("prod")
    for name in (source, target):
        ecr.create_repository(repositoryName=name)
    image = im.image((256,))
    pusher.push(source, image, "v1")
    monkeypatch.setenv("ATTESTATION_KEY_ARN", key_arn)
    code, out, err = promoter(
        capsys, "promote", f"{source}:v1", "--to", f"{target}:v1", "--requested-by", "alice"
    )
    assert code == 0, (out, err)

    code, out, err = promoter(capsys, "attestation", "verify", f"{target}:v1", "--json")  # the key: the env's
    assert code == 0, (out, err)
    document = json.loads(out)
    [attestation] = document["attestations"]
    assert document["key"] == key_arn and attestation["subject"]["digest"] == image.digest
    registry = EcrRegistry(make_ecr_client())
    manifest = registry.get_manifests(target, [attestation["attestation"]])[attestation["attestation"]]
    bundle = registry.read_blob(target, manifest.document["layers"][0]["digest"], 1 << 20)
    sslib_verify(bundle, KmsAttestationSigner(key_arn).public_key_pem(), key_arn)
