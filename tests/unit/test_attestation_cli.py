"""`promoter attestation verify IMAGE`: the three spellings of IMAGE, and what is refused (exit 2)."""

from __future__ import annotations

import pytest

from promoter_cli.cmd_attestation import BadInput, ImageReference, parse_image

DIGEST = "sha256:" + "ab" * 32
ECR = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("app-prod:v1.4.0", ImageReference(None, "app-prod", "v1.4.0", None)),
        (f"team/app@{DIGEST}", ImageReference(None, "team/app", None, DIGEST)),
        (f"{ECR}/team/app:v1", ImageReference(ECR, "team/app", "v1", None)),
        (f"{ECR}/app@{DIGEST}", ImageReference(ECR, "app", None, DIGEST)),
        (
            f"{ECR.replace('.com', '.com.cn')}/app:v1",
            ImageReference(ECR.replace(".com", ".com.cn"), "app", "v1", None),
        ),
        ("127.0.0.1:5000/app:v1", ImageReference("127.0.0.1:5000", "app", "v1", None)),
        ("localhost/app:v1", ImageReference("localhost", "app", "v1", None)),
        # Both, as docker writes them: the digest is verified, the tag is the resource.
        (f"app:v1@{DIGEST}", ImageReference(None, "app", "v1", DIGEST)),
        # ECR repository names may hold dots: a first segment that is no registry host is the name's.
        ("my.team/app:v1", ImageReference(None, "my.team/app", "v1", None)),
    ],
)
def test_image_is_a_tag_a_digest_or_a_full_registry_uri(image, expected):
    assert parse_image(image) == expected


@pytest.mark.parametrize(
    ("image", "says"),
    [
        ("app", "names no tag and no digest"),
        (f"{ECR}/app", "names no tag and no digest"),
        ("app@sha256:abc", "is not a sha256 digest"),
        ("App:v1", "is not a valid ECR repository name"),
        ("app:v1:v2", "is not a valid ECR tag"),
        ("app:", "is not a valid ECR tag"),
    ],
)
def test_an_image_that_cannot_be_read_is_bad_input_saying_why(image, says):
    with pytest.raises(BadInput, match=says):
        parse_image(image)
