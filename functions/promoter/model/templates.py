"""Tag and repository templates: `{tag}`, `{repository}`, `{digest}`, `{short_digest}`, for
semantic-version tags `{major}`, `{minor}`, `{patch}`, and the named groups of a `re:` source
repository (`(?P<service>...)` -> `{service}`); plus the names ECR accepts.

Pure functions, shared by validation (config) and execution (plan), so both agree on what a
template means.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from promoter.exceptions import TemplateError

SEMVER_FIELDS = frozenset({"major", "minor", "patch"})
TEMPLATE_FIELDS = frozenset({"tag", "repository", "digest", "short_digest"}) | SEMVER_FIELDS
# Fields filled from the pushed tag or the image's digest: whoever may push a tag chooses them, so
# they may shape a target tag but never name a target repository (the IAM grant would become
# `repository/*`). `{repository}` and the source repository's named captures may.
TAG_DERIVED_FIELDS = frozenset({"tag", "digest", "short_digest"}) | SEMVER_FIELDS
SHORT_DIGEST_HEX_CHARS = 12

# ECR's own patterns: ImageTag as documented for PutImage/tag immutability (the service model says
# only 1-300 chars; the registry's OCI rule is the stricter one below), RepositoryName from the
# botocore service model (2-256 chars).
TAG_PATTERN = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
REPOSITORY_PATTERN = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")
REPOSITORY_MIN_CHARS = 2
REPOSITORY_MAX_CHARS = 256
DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")

# A tag is a semantic version when it reads MAJOR.MINOR.PATCH, optionally prefixed by "v" and
# followed by a "-prerelease" (semver.org; "+build" cannot occur: '+' is not allowed in a tag).
SEMVER_PATTERN = re.compile(
    r"v?(?P<major>0|[1-9][0-9]*)\.(?P<minor>0|[1-9][0-9]*)\.(?P<patch>0|[1-9][0-9]*)"
    r"(?:-(?P<prerelease>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


@dataclass(frozen=True)
class SemVer:
    """The numeric parts of a semantic-version tag."""

    major: int
    minor: int
    patch: int
    prerelease: str | None = None


@dataclass(frozen=True)
class ImageFacts:
    """What a template can be filled from: the source image that triggered the promotion."""

    repository: str
    tag: str
    digest: str
    # The named groups of the rule's `re:` source repository pattern, matched on `repository`.
    captures: Mapping[str, str] = field(default_factory=dict)


def parse_semver(tag: str) -> SemVer | None:
    """The semantic version a tag spells, or None when it is not one."""
    match = SEMVER_PATTERN.fullmatch(tag)
    if match is None:
        return None
    return SemVer(int(match["major"]), int(match["minor"]), int(match["patch"]), match["prerelease"])


def template_fields(template: str, captures: Iterable[str] = ()) -> tuple[str, ...]:
    """The field names a template uses, in order; `captures` are the named groups of the source
    repository pattern, allowed besides TEMPLATE_FIELDS. Raises TemplateError on bad syntax or
    an unknown field."""
    known_fields = TEMPLATE_FIELDS.union(captures)
    fields = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"template {template!r} is malformed: {exc}") from exc
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in known_fields:
            known = ", ".join("{" + f + "}" for f in sorted(known_fields))
            raise TemplateError(f"template {template!r} uses unknown field {{{name}}} (known: {known})")
        if spec or conversion:
            raise TemplateError(f"template {template!r}: field {{{name}}} takes no format spec or conversion")
        fields.append(name)
    return tuple(fields)


def bare_segments(template: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The '/'-separated segments of a repository template that have no letter or digit of their
    own, each as (its text, the fields in it): there a field names the whole segment (`{name}`,
    or `{team}` in `svc/{team}/api`), and a separator (`{a}-{b}`) narrows nothing. Raises
    TemplateError on bad syntax."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"template {template!r} is malformed: {exc}") from exc
    segments: list[tuple[str, list[str], list[str]]] = [("", [], [])]  # text, literal parts, fields
    for literal, name, _spec, _conversion in parsed:
        first, *rest = literal.split("/")
        text, literals, names = segments[-1]
        segments[-1] = (text + first, [*literals, first], names)
        segments += [(part, [part], []) for part in rest]
        if name is not None:
            text, literals, names = segments[-1]
            segments[-1] = (text + "{" + name + "}", literals, [*names, name])
    return tuple(
        (text, tuple(names))
        for text, literals, names in segments
        if names and not any(c.isalnum() for part in literals for c in part)
    )


def render(template: str, facts: ImageFacts) -> str:
    """Fills a template from the image; raises TemplateError when a field cannot be filled."""
    fields = template_fields(template, facts.captures)
    values: dict[str, str] = {
        **facts.captures,
        "tag": facts.tag,
        "repository": facts.repository,
        "digest": facts.digest,
        "short_digest": facts.digest.split(":", 1)[-1][:SHORT_DIGEST_HEX_CHARS],
    }
    if SEMVER_FIELDS.intersection(fields):
        version = parse_semver(facts.tag)
        if version is None:
            raise TemplateError(
                f"tag {facts.tag!r} is not a semantic version, so {template!r} cannot be filled"
            )
        values.update(major=str(version.major), minor=str(version.minor), patch=str(version.patch))
    return template.format(**values)


# A tag template that renders the same tag for many versions (`{major}.{minor}`, `{major}`,
# `latest`) is a floating tag when the source tag is a semantic version: it only moves forward.
EXACT_TAG_FIELDS = frozenset({"tag", "digest", "short_digest", "patch"})


def is_floating_template(template: str) -> bool:
    """Whether a tag template can render the same tag for different versions (no exact field).
    A named capture of the source repository is constant across versions: it does not count."""
    names = {name for _literal, name, _spec, _conversion in string.Formatter().parse(template) if name}
    return EXACT_TAG_FIELDS.isdisjoint(names)


def is_valid_tag(tag: str) -> bool:
    """Whether ECR accepts this as an image tag."""
    return TAG_PATTERN.fullmatch(tag) is not None


def is_valid_repository(name: str) -> bool:
    """Whether ECR accepts this as a repository name."""
    return (
        REPOSITORY_MIN_CHARS <= len(name) <= REPOSITORY_MAX_CHARS
        and REPOSITORY_PATTERN.fullmatch(name) is not None
    )


def is_digest(reference: str) -> bool:
    """Whether a reference is a sha256 digest (as opposed to a tag)."""
    return DIGEST_PATTERN.fullmatch(reference) is not None
