"""The local AWS Signer's GetRevocationStatus (moto has none): what it answers, as AWS documents it."""

from __future__ import annotations

import pytest

from local_aws.signer import SignerRevocations

PROFILE = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/release"
VERSION = f"{PROFILE}/a1b2c3d4e5"
JOB = "arn:aws:signer:us-east-1:123456789012:/signing-jobs/0c8f3d4c"


def _query(at: str = "2026-12-01T00:00:00Z", hashes: tuple[str, ...] = ("aa", "bb")) -> dict[str, list[str]]:
    return {
        "signatureTimestamp": [at],
        "platformId": ["Notation-OCI-SHA384-ECDSA"],
        "profileVersionArn": [VERSION],
        "jobArn": [JOB],
        "certificateHashes": list(hashes),
    }


def test_nothing_revoked_answers_no_entity():
    assert SignerRevocations().status(_query()) == []


def test_a_revoked_profile_revokes_its_versions_and_a_revoked_job_and_certificate_are_named():
    revocations = SignerRevocations()
    revocations.revoke([PROFILE, JOB, "bb"])
    assert revocations.status(_query()) == [VERSION, JOB, "bb"]


def test_a_signature_made_before_the_revocation_took_effect_stays_valid():
    revocations = SignerRevocations()
    revocations.revoke([VERSION], effective=1_800_000_000.0)  # 2027-01-15
    assert revocations.status(_query("2026-12-01T00:00:00Z")) == []
    assert revocations.status(_query("2027-02-01T00:00:00Z")) == [VERSION]


def test_a_missing_parameter_is_refused_as_aws_validates_it():
    query = _query()
    del query["jobArn"]
    with pytest.raises(ValueError, match="jobArn"):
        SignerRevocations().status(query)
