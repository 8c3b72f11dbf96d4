"""Layer upload, availability and download on the local ECR follow ECR's rules."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from local_aws import images as im

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


def code(exc_info: pytest.ExceptionInfo[ClientError]) -> str:
    return exc_info.value.response["Error"]["Code"]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(ecr, repo: str, data: bytes, part: int) -> str:
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    for first in range(0, len(data), part):
        chunk = data[first : first + part]
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(chunk) - 1,
            layerPartBlob=chunk,
        )
    return upload_id


def test_multi_part_upload_of_5_mib_parts_completes_with_the_right_digest(ecr, repo):
    data = os.urandom(11 * MIB)
    upload_id = upload(ecr, repo, data, 5 * MIB)
    resp = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest(data)])
    assert resp["layerDigest"] == digest(data)
    layers = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[digest(data)])["layers"]
    assert layers == [
        {
            "layerDigest": digest(data),
            "layerAvailability": "AVAILABLE",
            "layerSize": len(data),
            "mediaType": layers[0]["mediaType"],
        }
    ]


def test_initiate_layer_upload_returns_upload_id_and_part_size(ecr, repo):
    resp = ecr.initiate_layer_upload(repositoryName=repo)
    assert resp["uploadId"]
    assert 5 * MIB <= resp["partSize"] <= 20 * MIB


def test_part_smaller_than_5_mib_followed_by_another_part_is_rejected(ecr, repo):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=99, layerPartBlob=b"a" * 100
    )
    with pytest.raises(ClientError) as exc:
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=100,
            partLastByte=199,
            layerPartBlob=b"b" * 100,
        )
    assert code(exc) == "InvalidLayerPartException"
    assert exc.value.response["lastValidByteReceived"] == 99


def test_part_larger_than_20_mib_is_rejected(ecr, repo):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    size = 20 * MIB + 1
    with pytest.raises(ClientError) as exc:
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=0,
            partLastByte=size - 1,
            layerPartBlob=b"x" * size,
        )
    assert code(exc) == "InvalidLayerPartException"


def test_non_consecutive_part_is_rejected(ecr, repo):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=repo,
        uploadId=upload_id,
        partFirstByte=0,
        partLastByte=5 * MIB - 1,
        layerPartBlob=b"a" * (5 * MIB),
    )
    with pytest.raises(ClientError) as exc:
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=5 * MIB + 10,
            partLastByte=5 * MIB + 19,
            layerPartBlob=b"b" * 10,
        )
    assert code(exc) == "InvalidLayerPartException"


def test_byte_range_that_does_not_match_the_part_length_is_rejected(ecr, repo):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    with pytest.raises(ClientError) as exc:
        ecr.upload_layer_part(
            repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=50, layerPartBlob=b"a" * 10
        )
    assert code(exc) == "InvalidLayerPartException"


def test_complete_with_a_wrong_digest_raises_invalid_layer(ecr, repo):
    data = os.urandom(1000)
    upload_id = upload(ecr, repo, data, 5 * MIB)
    with pytest.raises(ClientError) as exc:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest(b"other")])
    assert code(exc) == "InvalidLayerException"
    layers = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[digest(data)])["layers"]
    assert layers[0]["layerAvailability"] == "UNAVAILABLE"


def test_complete_of_a_layer_already_in_the_repository_raises_layer_already_exists(ecr, repo):
    data = os.urandom(1000)
    ecr.complete_layer_upload(
        repositoryName=repo, uploadId=upload(ecr, repo, data, 5 * MIB), layerDigests=[digest(data)]
    )
    with pytest.raises(ClientError) as exc:
        ecr.complete_layer_upload(
            repositoryName=repo, uploadId=upload(ecr, repo, data, 5 * MIB), layerDigests=[digest(data)]
        )
    assert code(exc) == "LayerAlreadyExistsException"


def test_complete_without_parts_raises_empty_upload(ecr, repo):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    with pytest.raises(ClientError) as exc:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest(b"")])
    assert code(exc) == "EmptyUploadException"


def test_unknown_upload_id_raises_upload_not_found(ecr, repo):
    with pytest.raises(ClientError) as exc:
        ecr.upload_layer_part(
            repositoryName=repo, uploadId="nope", partFirstByte=0, partLastByte=0, layerPartBlob=b"a"
        )
    assert code(exc) == "UploadNotFoundException"


def test_layer_availability_is_per_repository(ecr, repo, unique_name, pusher):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    other = unique_name("other")
    ecr.create_repository(repositoryName=other)
    layer = manifest.blobs[1].digest
    here = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[layer])["layers"]
    there = ecr.batch_check_layer_availability(repositoryName=other, layerDigests=[layer])["layers"]
    assert here[0]["layerAvailability"] == "AVAILABLE"
    assert there[0]["layerAvailability"] == "UNAVAILABLE"


def test_check_layer_availability_takes_at_most_100_digests(ecr, repo):
    with pytest.raises(ClientError) as exc:
        ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[digest(b"x")] * 101)
    assert code(exc) == "InvalidParameterException"


def test_download_url_serves_the_layer_bytes_without_credentials(ecr, repo, pusher):
    manifest = im.image((3000,))
    pusher.push(repo, manifest, "v1")
    layer = manifest.blobs[1]
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=layer.digest)["downloadUrl"]
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == layer.data


def test_download_url_with_a_tampered_signature_is_refused(ecr, repo, pusher):
    manifest = im.image()
    pusher.push(repo, manifest, "v1")
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=manifest.blobs[1].digest)[
        "downloadUrl"
    ]
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url[:-4] + "0000", timeout=10)
    assert exc.value.code == 403


def test_download_url_for_a_layer_not_in_the_repository_raises_layers_not_found(ecr, repo):
    with pytest.raises(ClientError) as exc:
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest(b"absent"))
    assert code(exc) == "LayersNotFoundException"


def test_download_url_for_a_layer_no_image_references_raises_layer_inaccessible(ecr, repo):
    data = os.urandom(100)
    ecr.complete_layer_upload(
        repositoryName=repo, uploadId=upload(ecr, repo, data, 5 * MIB), layerDigests=[digest(data)]
    )
    with pytest.raises(ClientError) as exc:
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest(data))
    assert code(exc) == "LayerInaccessibleException"
