"""Name patterns: glob/regex matching and the overlap test cycle detection rests on."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from promoter.model.patterns import (
    NamePattern,
    can_match_semver,
    glob_to_regex,
    globs_overlap,
    patterns_overlap,
)

globs = st.text(alphabet="ab*?", max_size=5)


def brute_force_overlap(a: str, b: str) -> bool:
    """Whether some string over {a, b, c} up to len(a) + len(b) chars matches both globs."""
    ra, rb = re.compile(glob_to_regex(a)), re.compile(glob_to_regex(b))
    for n in range(len(a) + len(b) + 1):
        for chars in itertools.product("abc", repeat=n):
            s = "".join(chars)
            if ra.fullmatch(s) and rb.fullmatch(s):
                return True
    return False


@settings(max_examples=300, deadline=None)
@given(globs, globs)
def test_glob_overlap_agrees_with_brute_force(a, b):
    assert globs_overlap(a, b) == brute_force_overlap(a, b)


def test_star_matches_across_slashes_like_iam():
    assert NamePattern("team/*").matches("team/a/b")
    assert not NamePattern("team/?").matches("team/ab")


def test_regex_overlap_is_exact_against_literals_and_conservative_otherwise():
    regex = NamePattern("re:v[0-9]+")
    assert patterns_overlap(regex, NamePattern("v12"))
    assert not patterns_overlap(regex, NamePattern("latest"))
    # Otherwise the regex's literal skeleton (`v?*`) is compared: it starts with 'v', 'x*' does not.
    assert not patterns_overlap(regex, NamePattern("x*"))
    assert patterns_overlap(regex, NamePattern("v1*"))
    assert patterns_overlap(regex, NamePattern("re:[a-z]+"))  # undecided: assume it could


def test_semver_possibility():
    assert can_match_semver(NamePattern("v*"))
    assert can_match_semver(NamePattern("*"))
    assert not can_match_semver(NamePattern("sha-*"))
    assert not can_match_semver(NamePattern("v-*"))
    assert not can_match_semver(NamePattern("1.*_x"))
