"""What "newer" means, written once for every path that moves a target tag: the engine (events,
requests), the reconciliation sweep and rollback's hold all ask these functions. Pure: no I/O.

- A floating tag (`{major}`, `{major}.{minor}`: templates.is_floating_template) orders by semantic
  version: it holds the highest release among the versions its image carries in the target
  repository; a backport or a pre-release never moves it.
- Every other target tag orders by ECR's push time (`imagePushedAt`) of the source images, both read
  in the SOURCE repository: the image the target holds now and the image being promoted. The later
  push wins, whatever order the events arrive in. An image the source repository does not hold (the
  tag was moved out of band, or the source image is gone) has no push time there: nothing says it
  is newer, so the promotion goes ahead and repairs the tag.
"""

from __future__ import annotations

from collections.abc import Iterable

from promoter.model.templates import SemVer, parse_semver


def version_key(version: SemVer) -> tuple[int, int, int, int]:
    """Sort key of a version. A release outranks its own pre-releases (semver.org, rule 11)."""
    return (version.major, version.minor, version.patch, 0 if version.prerelease else 1)


def spell(version: SemVer) -> str:
    text = f"{version.major}.{version.minor}.{version.patch}"
    return f"{text}-{version.prerelease}" if version.prerelease else text


def highest_version(tags: Iterable[str]) -> SemVer | None:
    """The highest semantic version among `tags`, None when none is a version."""
    versions = [v for t in tags if (v := parse_semver(t))]
    return max(versions, key=version_key) if versions else None


def version_is_newer(candidate: str, held_tags: Iterable[str]) -> bool:
    """Whether a floating tag moves to the image of version `candidate` from an image carrying
    `held_tags` in the target repository. Nothing to compare (no version held, or `candidate` is
    not a version) means it moves."""
    new = parse_semver(candidate)
    held = highest_version(held_tags)
    if new is None or held is None:
        return True
    return version_key(new) > version_key(held)


def push_is_newer(candidate_pushed_at: float | None, held_pushed_at: float | None) -> bool:
    """Whether an ordinary target tag moves to the image pushed at `candidate_pushed_at` from the
    image pushed at `held_pushed_at` (epoch seconds in the source repository; None: not there).
    A tie moves it (the same instant gives no order; the event that asked is the later word)."""
    if held_pushed_at is None or candidate_pushed_at is None:
        return True
    return candidate_pushed_at >= held_pushed_at
