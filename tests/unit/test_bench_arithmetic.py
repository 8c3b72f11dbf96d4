"""The bench's arithmetic: medians, ratios, goals and the minimum ECR calls per promotion."""

from __future__ import annotations

import pytest

from bench.minimum import MIB, CopyShape, excess, minimum_copy, minimum_retag
from bench.report import Goal, Row, median, ratio, render


def test_median_of_repeats_ignores_one_outlier():
    assert median([1.0, 9.0, 1.2]) == 1.2
    with pytest.raises(ValueError):
        median([])


def test_ratio_is_none_against_a_zero_reference():
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(0.0, 0.0) is None


def test_goals_on_ratio_and_on_our_value():
    assert Goal(1.15).met(114.0, 100.0)
    assert not Goal(1.15).met(116.0, 100.0)
    assert Goal(1.0).met(2.0, 2.0)
    assert not Goal(200, on="ours", strict=True).met(200, 1024)
    assert Goal(0, on="ours").met(0, 0)
    assert not Goal(0, on="ours").met(1, 0)


def test_retag_minimum_is_one_read_and_one_put():
    assert minimum_retag() == {"BatchGetImage": 1, "PutImage": 1}


def test_three_platform_copy_minimum_with_attestations():
    shape = CopyShape(children=6, blobs=10, missing_sizes=(1024,) * 10)
    mounted = minimum_copy(shape, mounting=True)
    assert mounted == {
        "BatchGetImage": 3,
        "ListImageReferrers": 7,  # the index and each of its 6 children
        "BatchCheckLayerAvailability": 1,
        "GetAccountSetting": 1,
        "GetAuthorizationToken": 1,
        "PutImage": 7,
    }
    copied = minimum_copy(shape, mounting=False, layer_api=True)
    assert copied["UploadLayerPart"] == copied["InitiateLayerUpload"] == 10
    assert "GetAuthorizationToken" not in copied
    # Through /v2: a download URL per blob and the registry token; the uploads are no API calls.
    v2 = minimum_copy(shape, mounting=False)
    assert {**mounted, "GetDownloadUrlForLayer": 10} == v2


def test_single_image_copy_needs_one_read_per_repository_and_parts_of_10_mib():
    shape = CopyShape(children=0, blobs=2, missing_sizes=(25 * MIB, 100))
    calls = minimum_copy(shape, mounting=False, first_in_container=False, layer_api=True)
    assert calls["BatchGetImage"] == 2
    assert calls["UploadLayerPart"] == 3 + 1
    assert "GetAccountSetting" not in calls


def test_excess_lists_only_operations_that_differ():
    assert excess({"BatchGetImage": 4, "PutImage": 1}, {"BatchGetImage": 2, "PutImage": 1}) == {
        "BatchGetImage": 2
    }


def test_table_shows_ratio_and_verdict():
    row = Row("4 burst", "wall time", 110.0, 100.0, "s", "quota bound", Goal(1.15), ("a note",))
    text = render([row])
    assert "1.10x" in text and "yes" in text and "a note" in text
