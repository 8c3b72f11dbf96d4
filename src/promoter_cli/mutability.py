"""Floating tags in immutable repositories: what `validate` and `plan` warn about (issue 21, item 5).

A rule's floating target tag (`latest`, `{major}`, `{major}.{minor}`: a tag that is re-pointed to
each new image) can move only if ECR lets that tag move in the target repository. ECR's tag
mutability has four modes (PutImageTagMutability): MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION
(immutable except tags matching an exclusion filter) and MUTABLE_WITH_EXCLUSION (mutable except
tags matching one); filters are wildcards (`*`: any run of characters). A floating tag that is
immutable there is a tag conflict at run time, from the second image on; this says so ahead, and
which exclusion filter would let the tag move.

The same reads say which targets do not exist, and whether a repository creation template
(DescribeRepositoryCreationTemplates, CREATE_ON_PUSH) would create one on a push, with its settings.

The repository's settings are read with DescribeRepositories when AWS credentials are present; when
they are not, or the read fails, the output says the check was not made and why. Targets in another
account or region, and repositories named by a template, are not read.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from local_aws.manifests import wildcard_match
from promoter.model.config import PromotionConfig
from promoter.model.creation_templates import CREATE_ON_PUSH, template_for
from promoter.model.templates import is_floating_template

IMMUTABLE_MODES = ("IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION")
WITH_EXCLUSION = "IMMUTABLE_WITH_EXCLUSION"


@dataclass(frozen=True)
class RepositorySettings:
    """A repository's tag mutability as DescribeRepositories reports it."""

    mutability: str
    filters: tuple[str, ...] = ()


@dataclass(frozen=True)
class MutabilityCheck:
    """What the check found: `warnings` (one line each) and `notes` (what could not be checked)."""

    warnings: tuple[str, ...]
    notes: tuple[str, ...]


def tag_wildcard(template: str) -> str:
    """A tag template as an exclusion filter covering every tag it renders: each field is `*`
    (`{major}.{minor}` -> `*.*`, `v{major}` -> `v*`, `latest` -> `latest`)."""
    out = []
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        out.append(literal)
        if field is not None:
            out.append("*")
    return "".join(out)


def floating_tag_is_immutable(settings: RepositorySettings, template: str) -> bool:
    """Whether ECR would refuse to move a tag rendered from `template` in this repository. A filter
    covers the template when it matches the template's wildcard form (`*` read as a character)."""
    covered = any(wildcard_match(f, tag_wildcard(template)) for f in settings.filters)
    if settings.mutability == "IMMUTABLE":
        return True
    if settings.mutability == "IMMUTABLE_WITH_EXCLUSION":
        return not covered
    if settings.mutability == "MUTABLE_WITH_EXCLUSION":
        return covered
    return False


def _fix(repository: str, settings: RepositorySettings, template: str) -> str:
    wanted = tag_wildcard(template)
    if settings.mutability == "MUTABLE_WITH_EXCLUSION":
        kept = [f for f in settings.filters if not wildcard_match(f, wanted)]
        return (
            f"remove the exclusion filter(s) matching {wanted!r} from {repository} "
            f"(MUTABLE_WITH_EXCLUSION, filters left: {', '.join(kept) or 'none'})"
        )
    filters = [*settings.filters, wanted]
    return (
        f"set {repository} to {WITH_EXCLUSION} with the exclusion filter {wanted!r}: aws ecr "
        f"put-image-tag-mutability --repository-name {repository} --image-tag-mutability {WITH_EXCLUSION} "
        "--image-tag-mutability-exclusion-filters "
        + " ".join(f"filterType=WILDCARD,filter={f}" for f in filters)
    )


def check_floating_tags(
    config: PromotionConfig, describe: Callable[[str], RepositorySettings | None] | None, why_not: str = ""
) -> MutabilityCheck:
    """Warnings for each floating target tag that would be immutable in its repository. `describe`
    reads a repository's settings (None: it does not exist); without it (`why_not` says why), the
    check is not made and a note says so. `describe` may raise ReadError for one repository."""
    warnings: list[str] = []
    notes: list[str] = []
    read: dict[str, RepositorySettings | ReadError | None] = {}
    floating = [
        (rule, target, tag)
        for rule in config.rules
        for target in rule.targets
        for tag in target.tags
        if is_floating_template(tag)
    ]
    if floating and describe is None:
        names = sorted({t.repository for _r, t, _tag in floating})
        notes.append(
            f"floating tags not checked against the repositories' tag mutability ({why_not}): "
            + ", ".join(names)
        )
        return MutabilityCheck((), tuple(notes))
    for rule, target, tag in floating:
        if target.registry is not None or _is_template(target.repository):
            continue
        repository = target.repository
        if repository not in read:
            try:
                read[repository] = describe(repository) if describe else None
            except ReadError as exc:
                read[repository] = exc
                notes.append(f"could not read the tag mutability of {repository}: {exc}")
        settings = read[repository]
        if not isinstance(settings, RepositorySettings) or not floating_tag_is_immutable(settings, tag):
            continue
        mode = settings.mutability
        if settings.filters:
            mode += f" (filters: {', '.join(settings.filters)})"
        warnings.append(
            f"rule {rule.name}: floating tag {tag!r} cannot move in {repository}, which is {mode}: "
            f"the second image is a tag conflict; fix: {_fix(repository, settings, tag)}"
        )
    return MutabilityCheck(tuple(warnings), tuple(notes))


def check_missing_targets(
    config: PromotionConfig,
    describe: Callable[[str], RepositorySettings | None],
    templates: Callable[[], dict[str, dict[str, Any]]],
) -> MutabilityCheck:
    """A warning for each target repository that does not exist, naming the CREATE_ON_PUSH creation
    template that would create it on a push (and with which tag mutability), or saying none would
    (and whether the target's `create_missing` has the promoter create it). A repository whose read
    failed is left to the floating-tag check's note."""
    warnings: list[str] = []
    notes: list[str] = []
    names = sorted(
        {
            t.repository
            for rule in config.rules
            for t in rule.targets
            if t.registry is None and not _is_template(t.repository)
        }
    )
    created = set(config.created_target_repositories())
    found: dict[str, dict[str, Any]] | None = None
    for name in names:
        try:
            if describe(name) is not None:
                continue
        except ReadError:
            continue
        if found is None:
            try:
                found = templates()
            except ReadError as exc:
                notes.append(f"could not read the repository creation templates: {exc}")
                found = {}
        template = template_for(found, name, CREATE_ON_PUSH)
        if template is None and name in created:
            warnings.append(
                f"target repository {name} does not exist and no CREATE_ON_PUSH repository creation "
                "template covers it: the promoter creates it (create_missing) on its first promotion "
                "into it"
            )
            continue
        if template is None:
            warnings.append(
                f"target repository {name} does not exist and no CREATE_ON_PUSH repository creation "
                "template covers it: promotions into it fail until it is created"
            )
            continue
        warnings.append(
            f"target repository {name} does not exist: the repository creation template "
            f"{template['prefix']!r} (CREATE_ON_PUSH) will create it on the first push into it, "
            f"{template.get('imageTagMutability', 'MUTABLE')}; the promoter's first promotion into it "
            "is that push"
        )
    return MutabilityCheck(tuple(warnings), tuple(notes))


def _is_template(name: str) -> bool:
    return any(field is not None for _l, field, _s, _c in string.Formatter().parse(name))


class ReadError(RuntimeError):
    """A repository's settings could not be read (access denied, no endpoint, ...)."""


def ecr_describer(client: Any) -> Callable[[str], RepositorySettings | None]:
    """DescribeRepositories of one repository through `client`: its settings, None when it does not
    exist; ReadError with ECR's words for any other failure."""
    from botocore.exceptions import BotoCoreError, ClientError

    def describe(repository: str) -> RepositorySettings | None:
        try:
            found = client.describe_repositories(repositoryNames=[repository])["repositories"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "RepositoryNotFoundException":
                return None
            raise ReadError(f"{error.get('Code')}: {error.get('Message')}") from exc
        except BotoCoreError as exc:
            raise ReadError(str(exc)) from exc
        repo = found[0]
        filters = tuple(f["filter"] for f in repo.get("imageTagMutabilityExclusionFilters") or ())
        return RepositorySettings(repo.get("imageTagMutability", "MUTABLE"), filters)

    return describe


def ecr_templates(client: Any) -> Callable[[], dict[str, dict[str, Any]]]:
    """DescribeRepositoryCreationTemplates, every page: the templates by prefix; ReadError when
    they cannot be read (no permission, an SDK that predates the operation)."""
    from botocore.exceptions import BotoCoreError, ClientError

    def read() -> dict[str, dict[str, Any]]:
        if not hasattr(client, "describe_repository_creation_templates"):
            raise ReadError("this botocore predates DescribeRepositoryCreationTemplates")
        found: dict[str, dict[str, Any]] = {}
        params: dict[str, Any] = {}
        try:
            while True:
                page = client.describe_repository_creation_templates(**params)
                found.update({t["prefix"]: t for t in page.get("repositoryCreationTemplates", [])})
                if not page.get("nextToken"):
                    return found
                params["nextToken"] = page["nextToken"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise ReadError(f"{error.get('Code')}: {error.get('Message')}") from exc
        except BotoCoreError as exc:
            raise ReadError(str(exc)) from exc

    return read


def check_with_credentials(config: PromotionConfig) -> MutabilityCheck:
    """The checks with the ECR client the CLI uses (floating tags, missing targets), when
    credentials and a region are configured; otherwise the note that they were not made, and why."""
    import boto3

    session = boto3.session.Session()
    if session.get_credentials() is None:
        return check_floating_tags(config, None, "no AWS credentials")
    if not session.region_name:
        return check_floating_tags(config, None, "no AWS region")
    from promoter.aws.registry import make_ecr_client

    client = make_ecr_client(session)
    described: dict[str, RepositorySettings | None] = {}
    read_repository = ecr_describer(client)

    def describe(name: str) -> RepositorySettings | None:  # each repository read once
        if name not in described:
            described[name] = read_repository(name)
        return described[name]

    floating = check_floating_tags(config, describe)
    missing = check_missing_targets(config, describe, ecr_templates(client))
    return MutabilityCheck(floating.warnings + missing.warnings, floating.notes + missing.notes)


def warning_lines(check: MutabilityCheck) -> Iterable[str]:
    """The check as output lines: `warning: ...` then `note: ...`."""
    yield from (f"warning: {w}" for w in check.warnings)
    yield from (f"note: {n}" for n in check.notes)
