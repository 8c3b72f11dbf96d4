"""Name patterns for repositories and tags: exact names, globs and `re:` regexes.

A glob knows two wildcards, `*` (any run of characters, '/' included, as in IAM resource ARNs so
that a source glob can scope a policy as written) and `?` (one character). Brackets and braces are
refused rather than guessed at. A `re:` regex is Python's syntax restricted to what matches in
linear time (`promoter.model.linear_regex`): no pattern can make a pushed tag hang the Lambda.
Besides matching, patterns answer two questions the configuration
check needs: can two patterns name a common string (cycle detection), and can a pattern match a
semantic version at all. When that cannot be decided (regexes), the answer leans to "yes": a
refusal must be provable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from promoter.model.linear_regex import LinearRegex, UnsupportedRegexError, literal_glob
from promoter.model.templates import parse_semver

REGEX_PREFIX = "re:"
WILDCARDS = frozenset("*?")
REPOSITORY_GLOB_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-/") | WILDCARDS
TAG_GLOB_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") | WILDCARDS
# The longest name ECR accepts: an image tag (1-300 characters in the API) or a repository name
# (2-256). A longer name cannot be in any registry, so it matches no pattern and is not even read:
# with the linear-time matcher this bounds the cost of one match whatever the input.
MAX_NAME_CHARS = 300


@dataclass(frozen=True)
class NamePattern:
    """One pattern as written in the configuration."""

    text: str

    @property
    def is_regex(self) -> bool:
        return self.text.startswith(REGEX_PREFIX)

    @property
    def is_exact(self) -> bool:
        return not self.is_regex and not WILDCARDS.intersection(self.text)

    @cached_property
    def _compiled(self) -> LinearRegex:
        return LinearRegex(self.text[len(REGEX_PREFIX) :] if self.is_regex else glob_to_regex(self.text))

    def matches(self, name: str) -> bool:
        """Whether the whole name matches (a regex must match the whole name too); linear time,
        and a name longer than any ECR name (`MAX_NAME_CHARS`) matches nothing."""
        return len(name) <= MAX_NAME_CHARS and self._compiled.matches(name)

    @property
    def capture_names(self) -> tuple[str, ...]:
        """The named groups of a regex (`(?P<service>...)`), in the order written; () for a glob."""
        if not self.is_regex:
            return ()
        names = self._compiled.group_names
        return tuple(sorted(names, key=names.__getitem__))

    def captures(self, name: str) -> dict[str, str]:
        """The named groups' values for a matching name (a group that took no part is left out);
        {} for a glob or a name that does not match."""
        if not self.capture_names or len(name) > MAX_NAME_CHARS:
            return {}
        found = self._compiled.captures(name) or {}
        return {group: value for group, value in found.items() if value is not None}

    def as_glob(self) -> str:
        """The glob this pattern matches within: a regex widens to its literal skeleton, where
        each varying part is `*` (`re:svc/(?P<s>[a-z]+)-dev` -> `svc/*-dev`)."""
        return literal_glob(self._compiled) if self.is_regex else self.text


def glob_to_regex(glob: str) -> str:
    """The regular expression for a glob with `*` and `?`."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)


def check_regex(text: str) -> LinearRegex:
    """The linear-time automaton of a `re:<regex>` value; raises ValueError with the reason when
    the regex cannot be matched in linear time (or is not one)."""
    try:
        return LinearRegex(text[len(REGEX_PREFIX) :])
    except UnsupportedRegexError as exc:
        raise ValueError(
            f"bad regex {text!r}: {exc} (regexes are matched in linear time: no backreferences, "
            "lookarounds, atomic groups, possessive quantifiers, word boundaries or inline flags)"
        ) from exc


# Very different strings no meaningful identity pattern matches all of: an email, URIs of two CI
# systems and an attacker's repository, an issuer, a bare word, digits, non-ASCII, blanks.
_UNRELATED_PROBES = (
    "x",
    "0",
    "mallory@example.com",
    "https://github.com/attacker/fork/.github/workflows/steal.yml@refs/heads/main",
    "https://gitlab.com/attacker/fork//.gitlab-ci.yml@refs/heads/main",
    "https://accounts.google.com",
    "spiffe://cluster.local/ns/default/sa/default",
    "ünïcødé 名前",
    "a b\tc",
)
# Subjects anyone can get a certificate for from the public Sigstore: a workflow of a repository
# they create on GitHub or GitLab, an address at a public mail provider.
_ANYONES_SUBJECTS = (
    "https://github.com/mallory-0/app/.github/workflows/release.yml@refs/tags/v1.0.0",
    "https://gitlab.com/mallory-0/app//.gitlab-ci.yml@refs/tags/v1.0.0",
    "mallory-0@gmail.com",
)
# Distinct OIDC issuers Fulcio trusts: an issuer pattern that takes two of them names none.
_FULCIO_ISSUERS = (
    "https://token.actions.githubusercontent.com",
    "https://gitlab.com",
    "https://accounts.google.com",
    "https://github.com/login/oauth",
    "https://oauth2.sigstore.dev/auth",
)


def too_wide_identity(regex: LinearRegex, key: str) -> str | None:
    """Why an identity regex (`key`: "issuer" or "subject") names no one in particular, or None:
    it takes every one of several unrelated strings (`.*`, `.+`, `[\\s\\S]*`), spells no letter or
    digit of its own (`[^@]*`, `.*@.*`), takes a subject anyone can get (a workflow of any GitHub
    repository, any Gmail address), or takes two of Fulcio's issuers."""
    if not any(c.isalnum() for c in literal_glob(regex)):
        return "it spells no letter or digit of its own"
    if all(regex.matches(probe) for probe in _UNRELATED_PROBES):
        return "it takes any string"
    if key == "subject":
        anyones = next((probe for probe in _ANYONES_SUBJECTS if regex.matches(probe)), None)
        if anyones is not None:
            return f"it takes {anyones!r}, an identity anyone can get"
    else:
        issuers = [issuer for issuer in _FULCIO_ISSUERS if regex.matches(issuer)]
        if len(issuers) > 1:
            return f"it takes both {issuers[0]!r} and {issuers[1]!r}"
    return None


def check_pattern(text: object, allowed: frozenset[str], what: str) -> NamePattern:
    """Parses a pattern; raises ValueError with the reason when it cannot be used."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"a {what} pattern must be a non-empty string, got {text!r}")
    pattern = NamePattern(text)
    if pattern.is_regex:
        check_regex(text)
        return pattern
    bad = sorted(set(text) - allowed)
    if bad:
        raise ValueError(
            f"bad glob {text!r}: character(s) {''.join(bad)!r} not allowed in a {what} "
            "(the only wildcards are '*' and '?'; use 're:<regex>' for more)"
        )
    try:
        LinearRegex(glob_to_regex(text))  # a glob runs on the same automaton, with the same bound
    except UnsupportedRegexError as exc:
        raise ValueError(f"bad glob {text!r}: {exc}") from exc
    return pattern


def patterns_overlap(a: NamePattern, b: NamePattern) -> bool:
    """Whether some name could match both patterns (True when undecidable here)."""
    if a.is_regex or b.is_regex:
        exact, other = (a, b) if a.is_exact else (b, a)
        return other.matches(exact.text) if exact.is_exact else globs_overlap(a.as_glob(), b.as_glob())
    return globs_overlap(a.text, b.text)


def globs_overlap(a: str, b: str) -> bool:
    """Whether two globs share a match: a search over the product of their automata."""
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        # A '*' may match nothing: skip it without consuming a character.
        if i < len(a) and a[i] == "*":
            todo.append((i + 1, j))
        if j < len(b) and b[j] == "*":
            todo.append((i, j + 1))
        if i == len(a) or j == len(b):
            continue
        # Consume one character on both sides, if some character satisfies both.
        ca, cb = a[i], b[j]
        if ca in WILDCARDS or cb in WILDCARDS or ca == cb:
            todo.append((i if ca == "*" else i + 1, j if cb == "*" else j + 1))
    return False


def can_match_semver(pattern: NamePattern) -> bool:
    """False only when the pattern provably matches no semantic-version tag."""
    if pattern.is_regex:
        return True
    if pattern.is_exact:
        return parse_semver(pattern.text) is not None
    text = pattern.text
    # A semantic version holds only digits, '.', '-', letters (prerelease) and a leading 'v';
    # it starts with 'v' + digit or a digit.
    if "_" in text:
        return False
    first = text[0]
    if first not in WILDCARDS and first not in "v0123456789":
        return False
    return not (first == "v" and len(text) > 1 and text[1] not in WILDCARDS and not text[1].isdigit())
