"""The configuration file's JSON Schema, and the reference page generated from it.

`promoter.model.config` stays the authority on what a configuration may say: this module describes
its structure for editors (key names, types, defaults, enums, patterns) and reads every value it can
from the parser's own constants (the triggers, the severities, the name and ARN patterns, the
defaults and limits), so the schema cannot name a default the parser does not apply. The key names
and descriptions are written here, once: `promoter schema` prints the schema, `promoter schema
--markdown` the page (docs/configuration.md); the tests hold both committed files to this output,
every object's keys to the parser's key sets, and the schema to the parser's answer on every
configuration the repository holds.

The dialect is JSON Schema draft-07: the YAML language server (VS Code's YAML extension) "supports
JSON Schema 7 and below" (its README; 2019-09 and 2020-12 are redhat-developer/yaml-language-server
issue #856 and pull request #1115, not merged). Hence `definitions`-free inline objects (a sibling
of `$ref` is ignored in draft-07, so a `$ref` could not carry its own description) and patterns
written for ECMA-262 with the `u` flag, the engine the editor validates with.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from promoter.model.approvals import (
    ALARM_TOPIC,
    APPROVER_PATTERN,
    DEFAULT_EXPIRES_AFTER,
    DEFAULT_MIN_APPROVERS,
    MAX_EXPIRES_AFTER,
)
from promoter.model.config import (
    ACCOUNT_ID_PATTERN,
    AWS_KMS_KEY_PREFIX,
    DEFAULT_ENCRYPTION_TYPE,
    DEFAULT_GATE_TIMEOUT_MINUTES,
    DEFAULT_GITLAB_CI_CONFIG,
    DEFAULT_PROTECT,
    DEFAULT_SOURCE_TAGS,
    DEFAULT_TARGET_TAGS,
    DEFAULT_TRIGGER,
    ENCRYPTION_TYPES,
    GIT_REF_PATTERN,
    GITHUB_ACTIONS_ISSUER,
    GITHUB_REPOSITORY_PATTERN,
    GITHUB_WORKFLOW_PATTERN,
    GITLAB_CI_CONFIG_PATTERN,
    GITLAB_PROJECT_PATTERN,
    GITLAB_SERVER,
    HTTPS_SERVER_PATTERN,
    KMS_KEY_ARN_PATTERN,
    MAX_GATE_TIMEOUT_MINUTES,
    MAX_SEVERITIES,
    MUTABLE,
    NO_FINDINGS,
    PEM_CERTIFICATE_LABEL,
    PEM_PUBLIC_KEY_LABEL,
    REGION_PATTERN,
    REQUESTER_ARN_PATTERN,
    ROLE_ARN_PATTERN,
    RULE_NAME_PATTERN,
    SEVERITIES,
    SIGNING_PROFILE_ARN_PATTERN,
    SNS_TOPIC_ARN_PATTERN,
    TAG_MUTABILITIES,
    TRIGGER_REQUEST,
    TRIGGERS,
)
from promoter.model.config_file import (
    MAX_CONFIG_BYTES,
    MAX_CONFIG_DEPTH,
    MAX_CONFIG_NODES,
    MAX_JSON_CONFIG_BYTES,
)
from promoter.model.linear_regex import MAX_PROGRAM_SIZE
from promoter.model.patterns import (
    REGEX_PREFIX,
    REPOSITORY_GLOB_CHARS,
    TAG_GLOB_CHARS,
    WILDCARDS,
)
from promoter.model.templates import (
    REPOSITORY_MAX_CHARS,
    REPOSITORY_MIN_CHARS,
    REPOSITORY_PATTERN,
)

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
# The file editors point at (`# yaml-language-server: $schema=./promotion.schema.json`) and the page.
SCHEMA_FILE = "promotion.schema.json"
REFERENCE_PAGE = "docs/configuration.md"


# What `protect: true` does (model.config, TargetSpec.protect; infra/protection.py sets the policy).
_PROTECTED = (
    "a repository policy lets only the promoter and the break-glass principals write it (the "
    "target's word wins over its rule's, the rule's over `defaults`)."
)


@dataclass(frozen=True)
class ValidatorOnlyCheck:
    """A refusal `promoter validate` makes that no JSON Schema can: an editor will not flag it."""

    name: str
    what: str
    why_not_in_schema: str


# What the parser refuses beyond the schema. The docs list them; the agreement test names, for each
# refusal the schema lets through, which of these it is (and fails on any other).
VALIDATOR_ONLY_CHECKS = (
    ValidatorOnlyCheck(
        "file",
        "YAML syntax, a key written twice in one mapping, a file over "
        f"{MAX_CONFIG_BYTES // 1024 // 1024} MiB (JSON: {MAX_JSON_CONFIG_BYTES // 1024 // 1024} MiB), "
        f"nesting deeper than {MAX_CONFIG_DEPTH} levels, more than {MAX_CONFIG_NODES:,} values once "
        "aliases are expanded",
        "they are properties of the text, checked while reading it; a schema sees the data once loaded "
        "(editors flag YAML syntax and duplicate keys themselves)",
    ),
    ValidatorOnlyCheck(
        "duplicate-rule-names",
        "two rules with one name",
        "`uniqueItems` compares whole rules, not one of their keys",
    ),
    ValidatorOnlyCheck(
        "regex-safety",
        f"a `{REGEX_PREFIX}` pattern that is not Python syntax matchable in linear time (backreferences, "
        "lookarounds, atomic groups, possessive quantifiers, word boundaries, inline flags), or a "
        f"pattern over {MAX_PROGRAM_SIZE} automaton states; a named group that shadows a template "
        f"field; a `{REGEX_PREFIX}` Sigstore issuer or subject that does not compile",
        "a schema cannot parse a regex written inside a string",
    ),
    ValidatorOnlyCheck(
        "templates",
        "a target template with an unknown field, a malformed `{...}`, `{digest}` (its ':' is not "
        "allowed in a name), a field taken from the pushed tag or digest in a repository, `{repository}` "
        "in a tag when the source can hold a '/', a named group forming a whole target repository name or "
        "path segment (`{name}`, `svc/{team}/api`), or a rendering ECR would refuse",
        "what a template may say depends on the rule's source (its named groups, its patterns)",
    ),
    ValidatorOnlyCheck(
        "semantic-versions",
        "`{major}`/`{minor}`/`{patch}` when no source tag pattern can match a semantic version; a "
        "floating tag in an IMMUTABLE target whose source can be a version",
        "it compares the source's patterns with the targets' templates",
    ),
    ValidatorOnlyCheck(
        "protected-templates",
        "a protected target (by its own `protect`, its rule's or `defaults.protect`) whose repository is "
        "a template",
        "whether a target is protected is decided by values outside it",
    ),
    ValidatorOnlyCheck(
        "source-literal-part",
        f"a `{REGEX_PREFIX}` source repository with no literal letter or digit (`re:.+`): it would name "
        "every repository of the account (a glob without one, `*` or `*/*`, the schema refuses)",
        "a regex's literal part is read from inside it",
    ),
    ValidatorOnlyCheck(
        "identity-names-everyone",
        f"a `{REGEX_PREFIX}` Sigstore issuer or subject that names no one in particular (`re:.*`, "
        "`re:.+`, `re:[^@]*`): it takes every one of several unrelated strings, a subject anyone can "
        "get (any GitHub or GitLab repository's workflow, any Gmail address), or two of Fulcio's "
        "issuers, or spells no letter or digit of its own",
        "it runs the regex on sample strings and reads its literal part",
    ),
    ValidatorOnlyCheck(
        "role-account",
        "a target `role` in another account than the target's `account`",
        "draft-07 cannot compare two values of one document",
    ),
    ValidatorOnlyCheck(
        "pem",
        "a cosign key or Notation trust root that is PEM-shaped but does not load (the `cryptography` "
        "package reads it)",
        "the schema checks the PEM armour; decoding the key is not a pattern",
    ),
    ValidatorOnlyCheck(
        "cycles",
        "rules whose targets feed back into their own source chain (every PutImage is a push event)",
        "it intersects patterns across rules",
    ),
    ValidatorOnlyCheck(
        "create-missing",
        "`create_missing` on a target whose repository is a template or that names another account, "
        "region or role; its `image_tag_mutability` differing from the target's; a KMS key with "
        "encryption type AES256",
        "it compares the setting with the target's other keys and the rule's source",
    ),
    ValidatorOnlyCheck(
        "approval-quorum",
        "an approval gate whose `min` is more than the distinct people its approvers could ever match "
        "(only exact user or session ARNs bound that; a role or a pattern matches any number of people)",
        "it counts the approvers by the kind of ARN each one is",
    ),
    ValidatorOnlyCheck(
        "shared-target-tags",
        "two targets (of one rule or of two) that can write the same tag of the same repository in "
        "the same registry (the same name in another account or region is another repository; the "
        "tags of one target may coincide)",
        "it intersects patterns across rules",
    ),
)


def ecma_pattern(pattern: re.Pattern[str]) -> str:
    """A parser regex (matched with `fullmatch`) as a JSON Schema `pattern`, valid in ECMA-262 with
    the `u` flag and in Python alike: anchored, named groups made non-capturing (`(?P<` is Python's
    alone), and `\\d`/`\\w` spelled as the ASCII classes AWS means (ECMA's are ASCII already)."""
    source = pattern.pattern
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(source):
        char = source[i]
        if char == "\\":
            escape = source[i : i + 2]
            ascii_class = {"\\d": "0-9", "\\w": "A-Za-z0-9_"}.get(escape)
            if ascii_class is None:
                out.append(escape)
            else:
                out.append(ascii_class if in_class else f"[{ascii_class}]")
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        elif not in_class and source.startswith("(?P<", i):
            i = source.index(">", i) + 1
            out.append("(?:")
            continue
        out.append(char)
        i += 1
    return "^(?:" + "".join(out) + ")$"


def char_class(chars: frozenset[str]) -> str:
    """A character class for a set of ASCII characters, letter and digit runs written as ranges,
    '-' last."""
    codes = sorted(ord(c) for c in chars if c != "-")
    parts: list[str] = []
    start = 0
    while start < len(codes):
        end = start
        while (
            end + 1 < len(codes)
            and codes[end + 1] == codes[end] + 1
            and _kind(codes[end + 1]) == _kind(codes[start])
        ):
            end += 1
        first, last = chr(codes[start]), chr(codes[end])
        parts.append(f"{first}-{last}" if end - start >= 2 else "".join(map(chr, codes[start : end + 1])))
        start = end + 1
    body = "".join(parts).replace("\\", "\\\\").replace("]", "\\]").replace("[", "\\[")
    return "[" + body + ("-" if "-" in chars else "") + "]"


def _kind(code: int) -> str:
    """Ranges run within digits, lower or upper case letters only (`a-z`, never `.-9`)."""
    char = chr(code)
    return "digit" if char.isdigit() else "lower" if char.islower() else "upper" if char.isupper() else char


def _pem_pattern(label: str) -> str:
    """One PEM block of `label`, whitespace around it allowed (the parser strips it)."""
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    return rf"^\s*{begin}(?:(?!-----BEGIN)[\s\S])*{end}\s*$"


def _strings(description: str, *, item: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A non-empty list of non-empty strings (the parser's `_string_list`)."""
    return {
        "type": "array",
        "description": description,
        "minItems": 1,
        "items": {"type": "string", "minLength": 1, **(item or {})},
        **extra,
    }


def _object(description: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A mapping the parser reads key by key, refusing any other key."""
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def _any_of(*keys: str) -> list[dict[str, Any]]:
    return [{"required": [key]} for key in keys]


def _ref() -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": ecma_pattern(GIT_REF_PATTERN),
        "description": "The branch or tag that ran (`refs/heads/<branch>`, `refs/tags/<tag>`); `*` stands "
        "for any run of characters.",
        "examples": ["refs/tags/v*"],
    }


def _github_identity() -> dict[str, Any]:
    return _object(
        f"GitHub Actions: issuer `{GITHUB_ACTIONS_ISSUER}` and the exact SAN "
        "`https://github.com/<repository>/<workflow>@<ref>`.",
        {
            "repository": {
                "type": "string",
                "pattern": ecma_pattern(GITHUB_REPOSITORY_PATTERN),
                "description": "The repository whose workflow signs.",
                "examples": ["acme/app"],
            },
            "workflow": {
                "type": "string",
                "pattern": ecma_pattern(GITHUB_WORKFLOW_PATTERN),
                "description": "The workflow file that signs.",
                "examples": [".github/workflows/release.yml"],
            },
            "ref": _ref(),
        },
        required=["repository", "workflow", "ref"],
    )


def _gitlab_identity() -> dict[str, Any]:
    return _object(
        "GitLab CI: issuer the GitLab server and the exact SAN `<server>/<project>//<ci_config>@<ref>`.",
        {
            "project": {
                "type": "string",
                "pattern": ecma_pattern(GITLAB_PROJECT_PATTERN),
                "description": "The project whose pipeline signs.",
                "examples": ["group/app"],
            },
            "ref": _ref(),
            "ci_config": {
                "type": "string",
                "pattern": ecma_pattern(GITLAB_CI_CONFIG_PATTERN),
                "default": DEFAULT_GITLAB_CI_CONFIG,
                "description": "The pipeline definition that ran.",
            },
            "server": {
                "type": "string",
                "pattern": ecma_pattern(HTTPS_SERVER_PATTERN),
                "default": GITLAB_SERVER,
                "description": "The GitLab server, also the OIDC issuer.",
            },
        },
        required=["project", "ref"],
    )


def _source() -> dict[str, Any]:
    repository_glob = char_class(REPOSITORY_GLOB_CHARS - WILDCARDS)
    repository_glob_chars = char_class(REPOSITORY_GLOB_CHARS)
    tag_glob_chars = char_class(TAG_GLOB_CHARS)
    return _object(
        "Which pushed (or requested) images the rule takes: a repository and tag patterns.",
        {
            "repository": {
                "type": "string",
                "description": "The source repository: an exact name, a glob (`*` any run of characters, "
                "'/' included; `?` one character) or `re:<regex>`, whose named groups "
                "(`(?P<service>...)`) become template fields of the targets.",
                "anyOf": [
                    {"pattern": f"^{REGEX_PREFIX}"},
                    # A glob has a wildcard, and a letter or digit: a pattern with no literal part
                    # would name every repository of the account (the parser refuses it).
                    {"pattern": f"^(?=.*[a-z0-9]){repository_glob}*[*?]{repository_glob_chars}*$"},
                    {
                        "pattern": ecma_pattern(REPOSITORY_PATTERN),
                        "minLength": REPOSITORY_MIN_CHARS,
                        "maxLength": REPOSITORY_MAX_CHARS,
                    },
                ],
                "examples": ["app-dev", "team/*", "re:svc/(?P<service>[a-z0-9-]+)-dev"],
            },
            "tags": _strings(
                "Tag patterns: globs (`*`, `?`) or `re:<regex>`; an image is taken when any matches.",
                item={"pattern": f"^(?:{REGEX_PREFIX}|{tag_glob_chars}+$)"},
                default=list(DEFAULT_SOURCE_TAGS),
                examples=[["sha-*"], ["v*"], ["re:^v?[0-9]+\\.[0-9]+\\.[0-9]+$"]],
            ),
            "restore_archived": {
                "type": "boolean",
                "description": "Restore a source image, or its signatures, SBOMs and attestations, in "
                "ECR's archive storage class (and promote it once restored) instead of reporting it as "
                "archived.",
                "default": False,
            },
        },
        required=["repository"],
    )


def _target() -> dict[str, Any]:
    return _object(
        "One place the image goes: a repository template and tag templates, in this registry or another.",
        {
            "repository": {
                "type": "string",
                "minLength": 1,
                "description": "The target repository, a template: it may use `{repository}` and the "
                "named groups of a `re:` source repository, never a field taken from the pushed tag or "
                "digest (whoever pushes would choose the repository written to).",
                "examples": ["app-staging", "release/{repository}", "svc/{service}-staging"],
            },
            "tags": _strings(
                "The tags written, templates: `{tag}`, `{repository}`, `{short_digest}`, named groups and, "
                "for semantic-version tags, `{major}`, `{minor}`, `{patch}`.",
                default=list(DEFAULT_TARGET_TAGS),
                examples=[["{tag}"], ["{tag}", "{major}.{minor}", "{major}"], ["{tag}", "latest"]],
            ),
            "image_tag_mutability": {
                "type": "string",
                "enum": list(TAG_MUTABILITIES),
                "default": MUTABLE,
                "description": "The target repository's tag mutability, as configured in ECR: an IMMUTABLE "
                "target takes no floating tag (`latest`, `{major}`), which could never move forward.",
            },
            "account": {
                "type": ["string", "null"],
                "pattern": ecma_pattern(ACCOUNT_ID_PATTERN),
                "description": "The target's AWS account, 12 digits (quote it: YAML would read a number); "
                "default: the promoter's own.",
                "examples": ["210987654321"],
            },
            "region": {
                "type": ["string", "null"],
                "pattern": ecma_pattern(REGION_PATTERN),
                "description": "The target's AWS region; default: the promoter's own.",
                "examples": ["eu-west-1"],
            },
            "role": {
                "type": ["string", "null"],
                "pattern": ecma_pattern(ROLE_ARN_PATTERN),
                "description": "An IAM role in `account` (which must then be written beside it) that the "
                "promoter assumes to write there; without it the promoter's own role writes, which the "
                "target repository's policy must allow.",
                "examples": ["arn:aws:iam::210987654321:role/image-promoter-target"],
            },
            "create_missing": _create_missing(),
            "protect": {
                "type": "boolean",
                "description": "Protect this target repository: " + _PROTECTED + " Needs an exact "
                "repository name (a repository a template names later would be left open). Default: the "
                "rule's `protect`, else `defaults.protect`.",
            },
        },
        required=["repository"],
        # A role is assumed in the account it names: the account must be written beside it.
        **{
            "if": {"properties": {"role": {"type": "string"}}, "required": ["role"]},
            "then": {"properties": {"account": {"type": "string"}}, "required": ["account"]},
        },
    )


def _create_missing() -> dict[str, Any]:
    return _object(
        "Create the target repository (CreateRepository) with these settings when it does not exist "
        "and no CREATE_ON_PUSH repository creation template covers it (a template that does creates "
        "it on the first push, with its own settings). An exact repository name in the promoter's own "
        "registry: the stack grants ecr:CreateRepository on that repository only. `{}` creates it "
        "with ECR's defaults.",
        {
            "image_tag_mutability": {
                "type": "string",
                "enum": list(TAG_MUTABILITIES),
                "description": "The new repository's tag mutability; default: the target's "
                "`image_tag_mutability` (which this sets when the target does not).",
            },
            "scan_on_push": {
                "type": "boolean",
                "default": False,
                "description": "Basic scanning on push for the new repository.",
            },
            "encryption": _object(
                "The new repository's encryption at rest.",
                {
                    "type": {
                        "type": "string",
                        "enum": list(ENCRYPTION_TYPES),
                        "default": DEFAULT_ENCRYPTION_TYPE,
                        "description": "ECR's encryption type: AES256 (S3-managed keys), KMS or KMS_DSSE.",
                    },
                    "kms_key": {
                        "type": "string",
                        "pattern": ecma_pattern(KMS_KEY_ARN_PATTERN),
                        "description": "A KMS key ARN for KMS or KMS_DSSE (default: ECR's AWS managed "
                        "key); the stack grants kms:CreateGrant and kms:DescribeKey on it.",
                    },
                },
            ),
            "tags": {
                "type": "object",
                "description": "Resource tags of the new repository (the stack then grants "
                "ecr:TagResource on it).",
                "propertyNames": {"minLength": 1, "maxLength": 128},
                "additionalProperties": {"type": "string", "maxLength": 256},
            },
        },
    )


# `expires_after` as the parser reads it (promoter.model.approvals.parse_duration): a count of
# minutes, hours or days, more than zero and at most MAX_EXPIRES_AFTER (7d = 168h = 10080m), spelled
# out per unit since a pattern cannot compare numbers. tests/unit/test_config_approval.py holds it to
# the parser on every count around the limits.
EXPIRES_AFTER_SCHEMA_PATTERN = (
    r"^(?:(?:[1-9][0-9]{0,3}|100[0-7][0-9]|10080)m|(?:[1-9][0-9]?|1[0-5][0-9]|16[0-8])h|[1-7]d)$"
)


def _approval() -> dict[str, Any]:
    return _object(
        "Promote only once `min` distinct people among the approvers approved, within `expires_after`; "
        "one rejection ends the wait (outcome `rejected`), and so does the expiry (`expired`). Asked "
        "last, once the other gates passed; the promotion is of exactly the digest that waited.",
        {
            "approvers": _strings(
                "Who may approve or reject: IAM principal ARNs of a named account. A user "
                "(`arn:aws:iam::<account>:user/<name>`), a role session "
                "(`arn:aws:sts::<account>:assumed-role/<role>/<session>`, IAM Identity Center's form), or a "
                "role (`arn:aws:iam::<account>:role/<name>`: each of its sessions is a person); `*` and `?` "
                "allowed after the type, matched like IAM's ArnLike.",
                item={"pattern": ecma_pattern(APPROVER_PATTERN)},
                uniqueItems=True,
                examples=[["arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Release_*/*"]],
            ),
            "min": {
                "type": "integer",
                "minimum": 1,
                "default": DEFAULT_MIN_APPROVERS,
                "description": "How many distinct people must approve (one person approving twice counts "
                "once).",
            },
            "requester_may_approve": {
                "type": "boolean",
                "default": False,
                "description": "Whether the requester of a promotion (the principal ARN its `requested-by` "
                "names) may approve it. Anyone who may approve may reject.",
            },
            "expires_after": {
                "type": "string",
                "pattern": EXPIRES_AFTER_SCHEMA_PATTERN,
                "default": DEFAULT_EXPIRES_AFTER,
                "description": f"How long a promotion waits for its approvals: `30m`, `24h`, `7d`; at most "
                f"{MAX_EXPIRES_AFTER}, never zero.",
            },
            "notify": {
                "type": "string",
                "anyOf": [{"pattern": ecma_pattern(SNS_TOPIC_ARN_PATTERN)}, {"pattern": f"^{ALARM_TOPIC}$"}],
                "description": "The SNS topic told when a promotion starts waiting (its ARN), or "
                f"`{ALARM_TOPIC}` for the stack's alarm topic. Default: no notification "
                "(`promoter approvals` lists the waits).",
                "examples": ["arn:aws:sns:us-east-1:111122223333:releases"],
            },
        },
        required=["approvers"],
    )


def _signature() -> dict[str, Any]:
    kms_key = re.compile(re.escape(AWS_KMS_KEY_PREFIX) + KMS_KEY_ARN_PATTERN.pattern)
    cosign_key = {
        "anyOf": [
            {"pattern": ecma_pattern(kms_key)},
            {"pattern": _pem_pattern(PEM_PUBLIC_KEY_LABEL)},
        ]
    }
    non_empty = {"type": "array", "minItems": 1}
    return _object(
        "Promote only an image that at least one listed verifier accepts.",
        {
            "cosign": _object(
                "cosign signatures made with a key pair.",
                {
                    "keys": _strings(
                        f"PEM public keys, or `{AWS_KMS_KEY_PREFIX}<key ARN>` for a key that never leaves "
                        "KMS (a key ARN: no endpoint, no alias).",
                        item=cosign_key,
                        examples=[[f"{AWS_KMS_KEY_PREFIX}arn:aws:kms:us-east-1:123456789012:key/1234abcd"]],
                    )
                },
                required=["keys"],
            ),
            "sigstore": _object(
                "Keyless Sigstore signatures (Fulcio certificate and Rekor proof).",
                {
                    "identities": {
                        "type": "array",
                        "minItems": 1,
                        "description": "The signers accepted.",
                        "items": _object(
                            "One keyless signer: `issuer` and `subject`, or one typed form (`github`, "
                            "`gitlab`) that builds both exactly.",
                            {
                                "issuer": {
                                    "type": "string",
                                    "minLength": 1,
                                    "description": "The OIDC issuer, exact or `re:<regex>`.",
                                    "examples": [GITHUB_ACTIONS_ISSUER],
                                },
                                "subject": {
                                    "type": "string",
                                    "minLength": 1,
                                    "description": "The certificate's subject (SAN), exact or `re:<regex>`.",
                                },
                                "github": _github_identity(),
                                "gitlab": _gitlab_identity(),
                            },
                            oneOf=[
                                {
                                    "required": ["issuer", "subject"],
                                    "not": {"anyOf": _any_of("github", "gitlab")},
                                },
                                {
                                    "required": ["github"],
                                    "not": {"anyOf": _any_of("issuer", "subject", "gitlab")},
                                },
                                {
                                    "required": ["gitlab"],
                                    "not": {"anyOf": _any_of("issuer", "subject", "github")},
                                },
                            ],
                        ),
                    }
                },
                required=["identities"],
            ),
            "notation": _object(
                "Notary Project signatures (ECR managed signing, AWS Signer). With AWS Signer's roots "
                "(no `trust_roots`), `signing_profiles` must name the profiles accepted: those roots sign "
                "for every AWS customer.",
                {
                    "signing_profiles": {
                        "type": ["array", "null"],
                        "description": "AWS Signer signing-profile ARNs accepted.",
                        "items": {"type": "string", "pattern": ecma_pattern(SIGNING_PROFILE_ARN_PATTERN)},
                        "examples": [["arn:aws:signer:us-east-1:123456789012:/signing-profiles/release"]],
                    },
                    "trust_roots": {
                        "type": ["array", "null"],
                        "description": "PEM certificates to trust; empty: AWS Signer's roots, shipped with "
                        "the verifier.",
                        "items": {"type": "string", "pattern": _pem_pattern(PEM_CERTIFICATE_LABEL)},
                    },
                },
                anyOf=[
                    {"required": ["signing_profiles"], "properties": {"signing_profiles": non_empty}},
                    {"required": ["trust_roots"], "properties": {"trust_roots": non_empty}},
                ],
            ),
        },
        minProperties=1,
    )


def _rule() -> dict[str, Any]:
    return _object(
        "One promotion rule: images matching `source` go to every target, on `trigger`.",
        {
            "name": {
                "type": "string",
                "pattern": ecma_pattern(RULE_NAME_PATTERN),
                "description": "The rule's name, unique in the file: 1-64 lowercase letters, digits or '-', "
                "starting with a letter or digit.",
                "examples": ["dev-to-staging"],
            },
            "source": _source(),
            "trigger": {
                "type": "string",
                "enum": list(TRIGGERS),
                "default": DEFAULT_TRIGGER,
                "description": "`push`: ECR's push events promote by themselves; `request`: only an "
                "`Image Promotion Requested` event does (`promoter request`, CI).",
            },
            "targets": {
                "type": "array",
                "minItems": 1,
                "description": "Where the image goes; each target must be able to write its tags alone.",
                "items": _target(),
            },
            "require": _object(
                "Gates: the image is promoted only when each one given passes (any may stand together).",
                {
                    "scan": _object(
                        "Promote only a scanned image with no finding above `max_severity`; a promotion "
                        "waits for the scan to complete.",
                        {
                            "max_severity": {
                                "type": "string",
                                "enum": list(MAX_SEVERITIES),
                                "description": "The most severe finding let through (ECR's severities, most "
                                "severe first: " + " > ".join(SEVERITIES) + "), or " + NO_FINDINGS + ": the "
                                "scan must have found nothing at all.",
                            },
                            "timeout_minutes": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_GATE_TIMEOUT_MINUTES,
                                "default": DEFAULT_GATE_TIMEOUT_MINUTES,
                                "description": "How long a promotion waits for the scan before giving up, "
                                "in whole minutes (60, not 60.0).",
                            },
                        },
                        required=["max_severity"],
                    ),
                    "signature": _signature(),
                    "approval": _approval(),
                },
                type=["object", "null"],
                minProperties=1,
            ),
            "requesters": {
                "type": ["array", "null"],
                "minItems": 1,
                "uniqueItems": True,
                "description": "Only with `trigger: request`: who may request this rule (on its own event "
                "source): 12-digit account ids or IAM role or user ARNs of a named account, `*` and `?` "
                "allowed in the name only. Default: the stack's trusted principals.",
                "items": {
                    "type": "string",
                    "pattern": "^(?:"
                    + ecma_pattern(ACCOUNT_ID_PATTERN)[1:-1]
                    + "|"
                    + ecma_pattern(REQUESTER_ARN_PATTERN)[1:-1]
                    + ")$",
                },
                "examples": [["arn:aws:iam::210987654321:role/release-pipeline-*", "123456789012"]],
            },
            "protect": {
                "type": "boolean",
                "description": "Protect every target of this rule that does not say otherwise: "
                + _PROTECTED
                + " Default: `defaults.protect`.",
            },
        },
        required=["name", "source", "targets"],
        # A push rule fires on ECR's own events: only a request rule names who may request it.
        **{
            "if": {"properties": {"requesters": {"type": "array"}}, "required": ["requesters"]},
            "then": {"properties": {"trigger": {"const": TRIGGER_REQUEST}}, "required": ["trigger"]},
        },
    )


def build_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of a promotion configuration."""
    return {
        "$schema": DRAFT_07,
        "title": "ECR Image Promoter configuration (promotion.yaml)",
        "description": "Which pushed (or requested) images go where. Generated by `promoter schema`; "
        "`promoter validate` is the authority and checks more (see docs/configuration.md).",
        "type": "object",
        "properties": {
            "rules": {
                "type": "array",
                "minItems": 1,
                "description": "The promotion rules, in the order written.",
                "items": _rule(),
            },
            "defaults": _object(
                "What every rule takes unless it says otherwise.",
                {
                    "protect": {
                        "type": "boolean",
                        "default": DEFAULT_PROTECT,
                        "description": "Protect every target whose rule and target do not say otherwise: "
                        + _PROTECTED,
                    }
                },
                type=["object", "null"],
            ),
        },
        "required": ["rules"],
        "additionalProperties": False,
    }


def iter_objects(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every object of the schema with `properties`, with its path (`rules[].targets[]`), in order."""
    if "properties" in schema:
        yield path, schema
        for key, value in schema["properties"].items():
            yield from iter_objects(value, f"{path}.{key}" if path else key)
    if "items" in schema:
        yield from iter_objects(schema["items"], f"{path}[]")
