"""Result events and history items always fit: free text cut with a marker, PutEvents calls split
by size as well as by count (EventBridge: 10 entries and 256 KB a call)."""

from __future__ import annotations

import json

from promoter.aws.results import (
    MAX_BYTES_PER_PUT,
    MAX_ENTRIES_PER_PUT,
    carried_metadata,
    entry_size,
    put_batches,
)
from promoter.model.outcomes import MAX_METADATA_BYTES, TRUNCATION_MARKER, clip


def entry(detail_bytes: int) -> dict[str, str]:
    return {"Source": "image-promoter", "DetailType": "Image Promoted", "Detail": "x" * detail_bytes}


def test_text_that_fits_is_kept_whole():
    assert clip("tests passed", 4096) == "tests passed"


def test_long_text_is_cut_within_the_limit_with_a_marker_naming_the_original_size():
    text = "é" * 10_000  # 2 bytes each in UTF-8: the limit is in bytes, and no character is split

    cut = clip(text, 4096)

    assert len(cut.encode("utf-8")) <= 4096
    assert cut.endswith(TRUNCATION_MARKER.format(20_000))
    assert set(cut.removesuffix(TRUNCATION_MARKER.format(20_000))) == {"é"}


def test_large_entries_are_split_into_calls_under_256_kb():
    entries = [entry(100_000) for _ in range(5)]

    batches = put_batches(entries)

    assert [len(b) for b in batches] == [2, 2, 1]
    assert all(sum(entry_size(e) for e in b) <= MAX_BYTES_PER_PUT for b in batches)
    assert [e for b in batches for e in b] == entries  # every entry, in order


def test_small_entries_are_still_split_by_ten():
    batches = put_batches([entry(10) for _ in range(23)])

    assert [len(b) for b in batches] == [MAX_ENTRIES_PER_PUT, MAX_ENTRIES_PER_PUT, 3]


def test_metadata_is_carried_as_is_when_it_fits_and_cut_under_truncated_when_not():
    assert carried_metadata({"run": 42}) == {"run": 42}
    assert carried_metadata(None) == {}

    big = carried_metadata({"log": "y" * 100_000})

    assert list(big) == ["truncated"]
    assert len(big["truncated"].encode("utf-8")) <= MAX_METADATA_BYTES
    assert big["truncated"].startswith(json.dumps({"log": ""})[:-2])
