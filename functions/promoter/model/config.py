"""The promotion configuration: parse, validate, and answer questions about it.

The Lambda reads the staged JSON (`parse_config` on a dict, no PyYAML); the CLI and the CDK app
read `promotion.yaml` through `load_config`, which imports PyYAML only when it needs it. Every
refusal is a `ConfigError` naming the file and line (when read from a file), the rule, the field
and the reason, so a bad configuration is stopped at `promoter validate` / synth time, never by a
failing promotion at run time.

Besides well-formedness, the rules are checked for what could be abused or could fight: regexes
must match in linear time (`promoter.model.linear_regex`), a target repository may not be named by
anything the pusher chooses (the tag, the digest), and no two targets may write the same tag.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from promoter.exceptions import ConfigError, TemplateError
from promoter.model.approvals import (
    ALARM_TOPIC,
    APPROVER_PATTERN,
    DEFAULT_EXPIRES_AFTER,
    DEFAULT_MIN_APPROVERS,
    MAX_EXPIRES_AFTER,
    MAX_EXPIRES_AFTER_SECONDS,
    ApprovalGate,
    most_approvers,
    parse_duration,
)
from promoter.model.config_file import line_of, read_config_data
from promoter.model.linear_regex import LinearRegex, UnsupportedRegexError
from promoter.model.patterns import (
    REGEX_PREFIX,
    REPOSITORY_GLOB_CHARS,
    TAG_GLOB_CHARS,
    WILDCARDS,
    NamePattern,
    can_match_semver,
    check_pattern,
    check_regex,
    globs_overlap,
    patterns_overlap,
    too_wide_identity,
)
from promoter.model.templates import (
    SEMVER_FIELDS,
    SHORT_DIGEST_HEX_CHARS,
    TAG_DERIVED_FIELDS,
    TEMPLATE_FIELDS,
    bare_segments,
    is_floating_template,
    is_valid_repository,
    is_valid_tag,
    template_fields,
)

__all__ = [
    "ApprovalGate",
    "ConfigError",
    "CreateMissing",
    "PromotionConfig",
    "Rule",
    "ScanGate",
    "SignatureGate",
    "SigstoreIdentity",
    "SourceSpec",
    "TargetRegistry",
    "TargetSpec",
    "load_config",
    "parse_config",
]

TRIGGER_PUSH = "push"
TRIGGER_REQUEST = "request"
TRIGGERS = (TRIGGER_PUSH, TRIGGER_REQUEST)
DEFAULT_TRIGGER = TRIGGER_PUSH
DEFAULT_SOURCE_TAGS = ("*",)
DEFAULT_TARGET_TAGS = ("{tag}",)
RULE_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
# Cross-account and cross-region targets: the keys that name another registry, and their forms.
_REGISTRY_KEYS = frozenset({"account", "region", "role"})
ACCOUNT_ID_PATTERN = re.compile(r"\d{12}")
REGION_PATTERN = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}")
ROLE_ARN_PATTERN = re.compile(r"arn:aws(-[a-z-]+)?:iam::(?P<account>\d{12}):role/[\w+=,.@/-]{1,512}")
# Who may request a rule (`requesters:`): an account id, or an IAM role or user ARN in a named
# account whose name may hold the IAM wildcards `*` and `?` (`role/ci-*`). The account is never a
# wildcard: it is what the bus policy grants, and "any account" is nobody's intent.
REQUESTER_ARN_PATTERN = re.compile(
    r"arn:aws(-[a-z-]+)?:iam::(?P<account>\d{12}):(root|(role|user)/[\w+=,.@/*?-]{1,512})"
)

_TOP_KEYS = frozenset({"rules", "defaults"})
# `defaults:` hold what every rule takes unless it says otherwise (today: `protect`).
_DEFAULTS_KEYS = frozenset({"protect"})
_RULE_KEYS = frozenset({"name", "source", "trigger", "targets", "require", "requesters", "protect"})
_SOURCE_KEYS = frozenset({"repository", "tags", "restore_archived"})
_TARGET_KEYS = frozenset({"repository", "tags", "image_tag_mutability", "protect", "create_missing"})
# `create_missing: {...}` on a target: the promoter creates the target repository (CreateRepository)
# with these settings when it does not exist and no CREATE_ON_PUSH repository creation template
# covers it. Only an exact repository name in the promoter's own registry: IAM grants
# ecr:CreateRepository on that repository's ARN, never on a pattern.
_CREATE_MISSING_KEYS = frozenset({"image_tag_mutability", "scan_on_push", "encryption", "tags"})
_ENCRYPTION_KEYS = frozenset({"type", "kms_key"})
# ECR's encryptionType; KMS and KMS_DSSE take a KMS key (else ECR's AWS managed key for ECR).
DEFAULT_ENCRYPTION_TYPE = "AES256"
ENCRYPTION_TYPES = (DEFAULT_ENCRYPTION_TYPE, "KMS", "KMS_DSSE")
# A target repository is protected (a repository policy lets only the promoter and the break-glass
# principals write it) when its target says `protect: true`, else when its rule does, else when the
# top-level `defaults: {protect: true}` does. Off unless one of them says so.
DEFAULT_PROTECT = False
_REQUIRE_KEYS = frozenset({"scan", "signature", "approval"})
_APPROVAL_KEYS = frozenset({"approvers", "min", "requester_may_approve", "expires_after", "notify"})
SNS_TOPIC_ARN_PATTERN = re.compile(
    r"arn:aws(-[a-z-]+)?:sns:[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?"
)
_SCAN_KEYS = frozenset({"max_severity", "timeout_minutes"})
_SIGNATURE_KEYS = frozenset({"cosign", "sigstore", "notation"})
_COSIGN_KEYS = frozenset({"keys"})
_SIGSTORE_KEYS = frozenset({"identities"})
_IDENTITY_KEYS = frozenset({"issuer", "subject"})
# The typed forms of an identity, for the common CI issuers: each builds the exact issuer and the
# exact SAN Fulcio writes for that CI (sigstore/fulcio config/identity: GitHub Actions'
# `https://github.com/{job_workflow_ref}`, GitLab CI's `https://{ci_config_ref_uri}`).
_TYPED_IDENTITY_KEYS = frozenset({"github", "gitlab"})
_GITHUB_KEYS = frozenset({"repository", "workflow", "ref"})
_GITLAB_KEYS = frozenset({"project", "ref", "ci_config", "server"})
GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_SERVER = "https://github.com"
GITLAB_SERVER = "https://gitlab.com"
DEFAULT_GITLAB_CI_CONFIG = ".gitlab-ci.yml"
GITHUB_REPOSITORY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
GITHUB_WORKFLOW_PATTERN = re.compile(r"\.github/workflows/[A-Za-z0-9._-]+\.ya?ml")
GITLAB_PROJECT_PATTERN = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+")
GITLAB_CI_CONFIG_PATTERN = re.compile(r"[A-Za-z0-9._/-]+\.ya?ml")
HTTPS_SERVER_PATTERN = re.compile(r"https://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?")
# A branch or tag; `*` stands for any run of characters (`refs/tags/v*`).
GIT_REF_PATTERN = re.compile(r"refs/(heads|tags)/[A-Za-z0-9._/*+-]+")
_NOTATION_KEYS = frozenset({"signing_profiles", "trust_roots"})
# cosign's KMS key reference, for AWS: `awskms:///<key ARN>` (no endpoint between the slashes: the
# promoter calls the KMS of its own environment). Only key ARNs: IAM scopes kms:Verify to keys, and an
# alias ARN in a policy's Resource matches no key operation.
AWS_KMS_KEY_PREFIX = "awskms:///"
KMS_KEY_ARN_PATTERN = re.compile(
    r"arn:aws(-[a-z-]+)?:kms:[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}:\d{12}:key/[A-Za-z0-9-]{1,128}"
)
SIGNING_PROFILE_ARN_PATTERN = re.compile(
    r"arn:aws(-[a-z-]+)?:signer:[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}:\d{12}:"
    r"/signing-profiles/[A-Za-z0-9_]{2,64}(/[A-Za-z0-9]{10})?"
)
PEM_PUBLIC_KEY_LABEL = "PUBLIC KEY"
PEM_CERTIFICATE_LABEL = "CERTIFICATE"
# ECR's severities, most severe first; a scan gate lets through findings up to `max_severity`.
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")
# `max_severity: NONE`: the scan must be complete with no finding at all, of any severity.
NO_FINDINGS = "NONE"
MAX_SEVERITIES = (*SEVERITIES, NO_FINDINGS)
# How long a gated promotion waits for its scan to complete before giving up (`gate-timeout`).
DEFAULT_GATE_TIMEOUT_MINUTES = 60
MAX_GATE_TIMEOUT_MINUTES = 7 * 24 * 60
# ECR's imageTagMutability; an IMMUTABLE target cannot take a floating tag (it would never move).
MUTABLE = "MUTABLE"
IMMUTABLE = "IMMUTABLE"
TAG_MUTABILITIES = (MUTABLE, IMMUTABLE)

# Values used to try a template before any image exists: a rendered name that ECR would refuse
# for these is refused for every image. A wildcard in a source pattern stands for one character.
_SAMPLE_DIGEST = "sha256:" + "0123456789abcdef" * 4
_SAMPLE_VERSION = "1"
_SAMPLE_CAPTURE = "a1"


@dataclass(frozen=True)
class SourceSpec:
    """Which pushed images a rule takes: a repository name or glob, and tag patterns."""

    repository: str
    tags: tuple[str, ...] = DEFAULT_SOURCE_TAGS
    # An archived source image (ECR's archive storage class) is restored rather than reported.
    restore_archived: bool = False

    @cached_property
    def repository_pattern(self) -> NamePattern:
        return NamePattern(self.repository)

    @property
    def repository_glob(self) -> str:
        """The repository pattern as a glob (a regex widened to its literal skeleton, each capture
        a `*`): what IAM resources and EventBridge patterns are scoped to."""
        return self.repository_pattern.as_glob()

    @property
    def captures(self) -> tuple[str, ...]:
        """The named groups of a `re:` repository pattern: template fields for the targets."""
        return self.repository_pattern.capture_names

    @cached_property
    def tag_patterns(self) -> tuple[NamePattern, ...]:
        return tuple(NamePattern(tag) for tag in self.tags)

    def matches(self, repository: str, tag: str) -> bool:
        """Whether an image tagged `tag` in `repository` is taken by this source."""
        return self.repository_pattern.matches(repository) and any(p.matches(tag) for p in self.tag_patterns)


@dataclass(frozen=True)
class TargetRegistry:
    """The other registry a target lives in. `account` and `region` default to the promoter's own
    (None); `role` is assumed (STS) in `account` to write there, else the promoter's own role
    writes, which the target repository's policy must then allow."""

    account: str | None = None
    region: str | None = None
    role: str | None = None

    def to_dict(self) -> dict[str, str]:
        fields = (("account", self.account), ("region", self.region), ("role", self.role))
        return {key: value for key, value in fields if value}


@dataclass(frozen=True)
class TargetSpec:
    """Where a rule puts the image: a repository template and tag templates."""

    repository: str
    tags: tuple[str, ...] = DEFAULT_TARGET_TAGS
    registry: TargetRegistry | None = None  # None: the promoter's own registry
    image_tag_mutability: str = MUTABLE  # as the repository is configured in ECR
    # Resolved from the target, its rule and `defaults:` (DEFAULT_PROTECT): only the promoter and the
    # break-glass principals may write the repository (infra/protection.py puts the policy in place).
    protect: bool = DEFAULT_PROTECT
    # The settings the promoter creates the repository with when it is missing (`create_missing`);
    # None: a missing target is not created by the promoter.
    create_missing: CreateMissing | None = None


@dataclass(frozen=True)
class CreateMissing:
    """How the promoter creates a missing target repository (CreateRepository): tag mutability,
    scan on push, encryption (`AES256`, `KMS`, `KMS_DSSE`; a KMS key ARN, else ECR's AWS managed
    key) and resource tags."""

    image_tag_mutability: str = MUTABLE
    scan_on_push: bool = False
    encryption_type: str = DEFAULT_ENCRYPTION_TYPE
    kms_key: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """As the configuration spells it (every setting, defaults included)."""
        encryption: dict[str, str] = {"type": self.encryption_type}
        if self.kms_key:
            encryption["kms_key"] = self.kms_key
        return {
            "image_tag_mutability": self.image_tag_mutability,
            "scan_on_push": self.scan_on_push,
            "encryption": encryption,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CreateMissing:
        """From `to_dict` (an action carries it as JSON)."""
        encryption = data.get("encryption") or {}
        return cls(
            image_tag_mutability=data.get("image_tag_mutability", MUTABLE),
            scan_on_push=bool(data.get("scan_on_push", False)),
            encryption_type=encryption.get("type", DEFAULT_ENCRYPTION_TYPE),
            kms_key=encryption.get("kms_key"),
            tags=tuple(sorted((data.get("tags") or {}).items())),
        )


@dataclass(frozen=True)
class ScanGate:
    """`require: {scan: ...}`: promote only a scanned image with no finding above `max_severity`."""

    max_severity: str
    timeout_minutes: int = DEFAULT_GATE_TIMEOUT_MINUTES

    def blocking(self, counts: Mapping[str, int]) -> dict[str, int]:
        """The finding counts above the threshold (empty: the image may pass)."""
        if self.max_severity == NO_FINDINGS:
            above = SEVERITIES
        else:
            above = SEVERITIES[: SEVERITIES.index(self.max_severity)]
        return {s: int(counts[s]) for s in above if counts.get(s)}


@dataclass(frozen=True)
class SigstoreIdentity:
    """A keyless signer: the OIDC `issuer` and the certificate's `subject` (SAN), each exact or `re:`."""

    issuer: str
    subject: str


@dataclass(frozen=True)
class SignatureGate:
    """`require: {signature: ...}`: promote only an image that at least one listed verifier accepts.

    `cosign_keys`: PEM public keys and `awskms:///<key ARN>` references; `sigstore_identities`:
    keyless signers; `notation_signing_profiles` / `notation_trust_roots` (PEM certificates; empty:
    AWS Signer's roots, shipped with the verifier). `notation` says whether the rule accepts Notary
    Project signatures at all (a `notation:` block was written)."""

    cosign_keys: tuple[str, ...] = ()
    sigstore_identities: tuple[SigstoreIdentity, ...] = ()
    notation: bool = False
    notation_signing_profiles: tuple[str, ...] = ()
    notation_trust_roots: tuple[str, ...] = ()

    @property
    def kms_key_arns(self) -> tuple[str, ...]:
        """The KMS keys named by `awskms:///` (IAM grants kms:Verify on these only)."""
        return tuple(
            k[len(AWS_KMS_KEY_PREFIX) :] for k in self.cosign_keys if k.startswith(AWS_KMS_KEY_PREFIX)
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.cosign_keys:
            data["cosign"] = {"keys": list(self.cosign_keys)}
        if self.sigstore_identities:
            data["sigstore"] = {
                "identities": [{"issuer": i.issuer, "subject": i.subject} for i in self.sigstore_identities]
            }
        if self.notation:
            data["notation"] = {
                "signing_profiles": list(self.notation_signing_profiles),
                "trust_roots": list(self.notation_trust_roots),
            }
        return data


@dataclass(frozen=True)
class Rule:
    """One promotion rule: images matching `source` go to every target, on `trigger`."""

    name: str
    source: SourceSpec
    trigger: str
    targets: tuple[TargetSpec, ...]
    scan_gate: ScanGate | None = None
    signature_gate: SignatureGate | None = None
    approval_gate: ApprovalGate | None = None
    # Request rules: who may request this rule (account ids, IAM ARNs or ARN patterns), enforced by
    # the promotion bus's policy on the rule's own event source; () = the stack's trusted principals.
    requesters: tuple[str, ...] = ()

    @property
    def uses_semver(self) -> bool:
        return any(
            SEMVER_FIELDS.intersection(template_fields(t, self.source.captures))
            for target in self.targets
            for t in (target.repository, *target.tags)
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "source": {"repository": self.source.repository, "tags": list(self.source.tags)}
            | ({"restore_archived": True} if self.source.restore_archived else {}),
            "trigger": self.trigger,
            "targets": [
                _target_dict(t)
                | (
                    {"image_tag_mutability": t.image_tag_mutability}
                    if t.image_tag_mutability != MUTABLE
                    else {}
                )
                | ({"protect": True} if t.protect else {})
                | ({"create_missing": t.create_missing.to_dict()} if t.create_missing else {})
                for t in self.targets
            ],
        }
        require: dict[str, Any] = {}
        if self.scan_gate is not None:
            require["scan"] = {
                "max_severity": self.scan_gate.max_severity,
                "timeout_minutes": self.scan_gate.timeout_minutes,
            }
        if self.signature_gate is not None:
            require["signature"] = self.signature_gate.to_dict()
        if self.approval_gate is not None:
            require["approval"] = self.approval_gate.to_dict()
        if require:
            data["require"] = require
        if self.requesters:
            data["requesters"] = list(self.requesters)
        return data


@dataclass(frozen=True)
class PromotionConfig:
    """The validated rules, in the order written."""

    rules: tuple[Rule, ...]

    def rules_for(self, trigger: str) -> tuple[Rule, ...]:
        """The rules that fire on this trigger (`push` or `request`)."""
        return tuple(rule for rule in self.rules if rule.trigger == trigger)

    def rule(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)

    def gated_source_repository_globs(self) -> tuple[str, ...]:
        """Source repository patterns of the rules with a scan gate (IAM and the scan rules)."""
        return tuple(sorted({rule.source.repository_glob for rule in self.rules if rule.scan_gate}))

    def restore_archived_source_globs(self) -> tuple[str, ...]:
        """Source repository patterns of the rules that restore archived sources (IAM)."""
        restoring = (rule for rule in self.rules if rule.source.restore_archived)
        return tuple(sorted({rule.source.repository_glob for rule in restoring}))

    def signature_gated(self) -> bool:
        """Whether any rule has a signature gate (the verifiers then ship with the function)."""
        return any(rule.signature_gate for rule in self.rules)

    def signature_kms_key_arns(self) -> tuple[str, ...]:
        """The KMS keys of every signature gate (`awskms:///`), sorted: kms:Verify on these only."""
        return tuple(
            sorted(
                {
                    arn
                    for rule in self.rules
                    if rule.signature_gate
                    for arn in rule.signature_gate.kms_key_arns
                }
            )
        )

    def notation_gated(self) -> bool:
        """Whether any rule accepts Notation signatures (AWS Signer's revocation check is then asked)."""
        return any(rule.signature_gate and rule.signature_gate.notation for rule in self.rules)

    def approval_gated(self) -> bool:
        """Whether any rule requires approval (the approval channel, its event route and the sweep
        then exist)."""
        return any(rule.approval_gate for rule in self.rules)

    def approval_notify_topics(self) -> tuple[str, ...]:
        """The SNS topics approval gates notify, by ARN, sorted: sns:Publish on these only
        (`notify: alarm-topic` is the stack's own alarm topic, not listed)."""
        return tuple(
            sorted(
                {
                    rule.approval_gate.notify
                    for rule in self.rules
                    if rule.approval_gate and rule.approval_gate.notify not in (None, ALARM_TOPIC)
                }
            )
        )

    def notifies_alarm_topic(self) -> bool:
        """Whether some approval gate says `notify: alarm-topic` (the function then needs the alarm
        topic's ARN, ALARM_TOPIC_ARN, and sns:Publish on it)."""
        return any(rule.approval_gate and rule.approval_gate.notify == ALARM_TOPIC for rule in self.rules)

    def source_repository_globs(self) -> tuple[str, ...]:
        """Every source repository pattern, sorted, for IAM scoping (globs are IAM-compatible)."""
        return tuple(sorted({rule.source.repository_glob for rule in self.rules}))

    def target_repository_globs(self) -> tuple[str, ...]:
        """Every target repository as a glob (`{repository}` = the source glob, a capture `*`)."""
        return tuple(
            sorted(
                {
                    template_to_glob(target.repository, rule.source.repository_glob, "*")
                    for rule in self.rules
                    for target in rule.targets
                    if target.registry is None
                }
            )
        )

    def remote_targets(self) -> tuple[tuple[TargetRegistry, str], ...]:
        """Each other registry with a target repository glob in it, sorted (IAM, the target stack)."""
        found = {
            (target.registry, template_to_glob(target.repository, rule.source.repository_glob, "*"))
            for rule in self.rules
            for target in rule.targets
            if target.registry is not None
        }
        return tuple(sorted(found, key=lambda item: (repr(item[0]), item[1])))

    def protected_targets(self) -> tuple[tuple[TargetRegistry | None, str], ...]:
        """Each protected target repository (an exact name) with its registry (None: the promoter's
        own), once, sorted: the repositories whose policy the stack, or the target-account stack,
        manages."""
        found = {
            (target.registry, target.repository)
            for rule in self.rules
            for target in rule.targets
            if target.protect
        }
        return tuple(sorted(found, key=lambda item: (repr(item[0]), item[1])))

    def protects(self, repository: str, account: str | None = None, region: str | None = None) -> bool:
        """Whether the target repository in that registry (None: the promoter's own) is protected."""
        return any(
            name == repository
            and (registry.account if registry else None) == account
            and (registry.region if registry else None) == region
            for registry, name in self.protected_targets()
        )

    def created_target_repositories(self) -> tuple[str, ...]:
        """The target repositories the promoter creates when missing (`create_missing`): exact
        names in its own registry, sorted; IAM grants ecr:CreateRepository on these only."""
        return tuple(
            sorted({t.repository for rule in self.rules for t in rule.targets if t.create_missing})
        )

    def created_tagged_target_repositories(self) -> tuple[str, ...]:
        """Of `created_target_repositories`, those created with resource tags (ecr:TagResource)."""
        return tuple(
            sorted(
                {
                    t.repository
                    for rule in self.rules
                    for t in rule.targets
                    if t.create_missing is not None and t.create_missing.tags
                }
            )
        )

    def created_target_kms_keys(self) -> tuple[str, ...]:
        """The KMS keys missing targets are created with (`create_missing.encryption.kms_key`),
        sorted: ECR uses them for the new repository on the creator's behalf."""
        return tuple(
            sorted(
                {
                    t.create_missing.kms_key
                    for rule in self.rules
                    for t in rule.targets
                    if t.create_missing is not None and t.create_missing.kms_key
                }
            )
        )

    def protected_repositories(self) -> tuple[str, ...]:
        """The protected target repositories in the promoter's own registry, sorted."""
        return tuple(repository for registry, repository in self.protected_targets() if registry is None)

    def to_dict(self) -> dict[str, Any]:
        # Protection is resolved onto each target: the staged JSON needs no `defaults:`.
        return {"rules": [rule.to_dict() for rule in self.rules]}

    def to_json(self) -> str:
        """The configuration as JSON, for staging into the Lambda asset (`parse_config` reads it)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def load_config(path: str | Path) -> PromotionConfig:
    """Reads a YAML or JSON file; raises ConfigError, with the file and the line, when it cannot
    be read or is invalid."""
    path = Path(path)
    data = read_config_data(path)
    try:
        return parse_config(data)
    except ConfigError as exc:
        exc.path = str(path)
        raise


def parse_config(data: object) -> PromotionConfig:
    """Validates a configuration given as plain data (parsed JSON or YAML); a refusal carries the
    line of the offending rule or field when the data came from `config_file` (YAML)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"the configuration must be a mapping with 'rules', got {type(data).__name__}")
    try:
        _refuse_unknown_keys(data, _TOP_KEYS, rule=None, field=None)
    except ConfigError as exc:
        exc.line = line_of(data, exc.field)
        raise
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ConfigError("must be a non-empty list of rules", field="rules", line=line_of(data, "rules"))
    try:
        protect_default = _parse_defaults(data.get("defaults"))
    except ConfigError as exc:
        exc.line = line_of(data, exc.field) or line_of(data, "defaults")
        raise
    rules = []
    for index, raw in enumerate(raw_rules):
        try:
            rules.append(_parse_rule(raw, index, protect_default))
        except ConfigError as exc:
            exc.line = exc.line or line_of(raw, exc.field) or line_of(data, f"rules[{index}]")
            raise
    raw_by_name = {rule.name: raw for rule, raw in zip(rules, raw_rules, strict=True)}
    try:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ConfigError("duplicate rule name", rule=rule.name, field="name")
            seen.add(rule.name)
        config = PromotionConfig(tuple(rules))
        _refuse_cycles(config)
        _refuse_shared_target_tags(config)
    except ConfigError as exc:
        if exc.rule in raw_by_name:
            # The last rule of that name: a duplicate is reported where it is written again.
            exc.line = exc.line or line_of(raw_by_name[exc.rule], exc.field)
        raise
    return config


def _parse_defaults(raw: object) -> bool:
    """`defaults: {protect: true}`: what every rule takes unless it says otherwise."""
    if raw is None:
        return DEFAULT_PROTECT
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a mapping (e.g. {protect: true})", field="defaults")
    _refuse_unknown_keys(raw, _DEFAULTS_KEYS, rule=None, field="defaults")
    return _flag(raw, "protect", DEFAULT_PROTECT, None, "defaults.protect")


def _flag(raw: Mapping[Any, Any], key: str, default: bool, rule: str | None, field: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}", rule=rule, field=field)
    return value


def _parse_rule(raw: object, index: int, protect_default: bool = DEFAULT_PROTECT) -> Rule:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"rule #{index + 1} must be a mapping", field=f"rules[{index}]")
    name = raw.get("name")
    if not isinstance(name, str) or not RULE_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"rule #{index + 1}: name must be 1-64 lowercase letters, digits or '-', got {name!r}",
            field="name",
        )
    _refuse_unknown_keys(raw, _RULE_KEYS, rule=name, field=None)
    trigger = raw.get("trigger", DEFAULT_TRIGGER)
    if trigger not in TRIGGERS:
        raise ConfigError(
            f"must be one of {', '.join(TRIGGERS)}, got {trigger!r}", rule=name, field="trigger"
        )
    source = _parse_source(raw.get("source"), name)
    raw_targets = raw.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        raise ConfigError("must be a non-empty list", rule=name, field="targets")
    rule_protect = _flag(raw, "protect", protect_default, name, "protect")
    defaults = "rule's `protect: true`" if "protect" in raw else "`defaults: {protect: true}`"
    targets = tuple(
        _parse_target(t, name, i, source, (rule_protect, defaults)) for i, t in enumerate(raw_targets)
    )
    scan_gate, signature_gate, approval_gate = _parse_require(raw.get("require"), name)
    requesters = _parse_requesters(raw.get("requesters"), name, trigger)
    rule = Rule(
        name=name,
        source=source,
        trigger=trigger,
        targets=targets,
        scan_gate=scan_gate,
        signature_gate=signature_gate,
        approval_gate=approval_gate,
        requesters=requesters,
    )
    if rule.uses_semver and not any(can_match_semver(p) for p in source.tag_patterns):
        raise ConfigError(
            "targets use {major}/{minor}/{patch} but no source tag pattern can match a semantic version",
            rule=name,
            field="source.tags",
        )
    return rule


def _parse_source(raw: object, rule: str) -> SourceSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a mapping with 'repository' and 'tags'", rule=rule, field="source")
    _refuse_unknown_keys(raw, _SOURCE_KEYS, rule=rule, field="source")
    repository = raw.get("repository")
    try:
        pattern = check_pattern(repository, REPOSITORY_GLOB_CHARS, "repository")
    except ValueError as exc:
        raise ConfigError(str(exc), rule=rule, field="source.repository") from exc
    if pattern.is_regex:
        _check_captures(pattern, rule)
    if not any(c.isalnum() for c in pattern.as_glob()):
        raise ConfigError(
            f"{pattern.text!r} has no literal part: it names every repository of the account (the IAM "
            "grants would be 'repository/*', and a {repository} target any repository); spell the part "
            "the rule's repositories share, e.g. 'team/*'",
            rule=rule,
            field="source.repository",
        )
    if pattern.is_exact and not is_valid_repository(pattern.text):
        raise ConfigError(
            f"{pattern.text!r} is not a valid ECR repository name", rule=rule, field="source.repository"
        )
    tags = _string_list(raw.get("tags", list(DEFAULT_SOURCE_TAGS)), rule, "source.tags")
    for i, tag in enumerate(tags):
        try:
            check_pattern(tag, TAG_GLOB_CHARS, "tag")
        except ValueError as exc:
            raise ConfigError(str(exc), rule=rule, field=f"source.tags[{i}]") from exc
    restore = raw.get("restore_archived", False)
    if not isinstance(restore, bool):
        raise ConfigError("must be true or false", rule=rule, field="source.restore_archived")
    return SourceSpec(repository=pattern.text, tags=tags, restore_archived=restore)


def _parse_target(
    raw: object,
    rule: str,
    index: int,
    source: SourceSpec,
    protect_default: tuple[bool, str] = (DEFAULT_PROTECT, ""),
) -> TargetSpec:
    where = f"targets[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a mapping with 'repository' and 'tags'", rule=rule, field=where)
    _refuse_unknown_keys(raw, _TARGET_KEYS | _REGISTRY_KEYS, rule=rule, field=where)
    repository = raw.get("repository")
    if not isinstance(repository, str) or not repository:
        raise ConfigError("must be a non-empty string", rule=rule, field=f"{where}.repository")
    tags = _string_list(raw.get("tags", list(DEFAULT_TARGET_TAGS)), rule, f"{where}.tags")
    _check_template(repository, source, rule, f"{where}.repository", is_tag=False)
    for i, tag in enumerate(tags):
        _check_template(tag, source, rule, f"{where}.tags[{i}]", is_tag=True)
    mutability = raw.get("image_tag_mutability", MUTABLE)
    if mutability not in TAG_MUTABILITIES:
        raise ConfigError(
            f"must be one of {', '.join(TAG_MUTABILITIES)}, got {mutability!r}",
            rule=rule,
            field=f"{where}.image_tag_mutability",
        )
    registry = _parse_registry(raw, rule, where)
    protect = _flag(raw, "protect", protect_default[0], rule, f"{where}.protect")
    if protect and template_fields(repository, source.captures):
        # A policy is set on each repository by name: a repository a template names only later
        # (a new team, a new source) would be written unprotected, so protection names them all.
        given = "" if "protect" in raw else f" (by the {protect_default[1]})"
        raise ConfigError(
            f"a protected target{given} needs an exact repository name, got the template {repository!r}: "
            "a repository policy is put on each named repository, and one a template renders later would "
            "be left open; name the repositories, or set `protect: false` on this target",
            rule=rule,
            field=f"{where}.protect" if "protect" in raw else f"{where}.repository",
        )
    create_missing = None
    if "create_missing" in raw:
        create_missing = _parse_create_missing(raw, repository, registry, source, rule, where)
        if "image_tag_mutability" not in raw:
            mutability = create_missing.image_tag_mutability  # the repository will be so configured
    if mutability == IMMUTABLE and any(can_match_semver(p) for p in source.tag_patterns):
        for i, tag in enumerate(tags):
            if is_floating_template(tag):
                raise ConfigError(
                    f"floating tag {tag!r} in an IMMUTABLE repository could never move forward",
                    rule=rule,
                    field=f"{where}.tags[{i}]",
                )
    return TargetSpec(
        repository=repository,
        tags=tags,
        registry=registry,
        image_tag_mutability=mutability,
        protect=protect,
        create_missing=create_missing,
    )


def _parse_create_missing(
    raw: Mapping[Any, Any],
    repository: str,
    registry: TargetRegistry | None,
    source: SourceSpec,
    rule: str,
    where: str,
) -> CreateMissing:
    """`create_missing: {image_tag_mutability, scan_on_push, encryption: {type, kms_key}, tags}`
    (each optional: `{}` creates with ECR's defaults) on an exactly named target of the promoter's
    own registry."""
    field = f"{where}.create_missing"
    block = _mapping(raw["create_missing"], _CREATE_MISSING_KEYS, rule, field)
    if template_fields(repository, source.captures):
        raise ConfigError(
            f"needs an exact repository name, got the template {repository!r}: ecr:CreateRepository "
            "is granted on each named repository only, never on a pattern",
            rule=rule,
            field=field,
        )
    if registry is not None:
        raise ConfigError(
            "creates repositories in the promoter's own registry only (this target names an account, "
            "region or role): create the repository in its own account",
            rule=rule,
            field=field,
        )
    mutability = block.get("image_tag_mutability", raw.get("image_tag_mutability", MUTABLE))
    if mutability not in TAG_MUTABILITIES:
        raise ConfigError(
            f"must be one of {', '.join(TAG_MUTABILITIES)}, got {mutability!r}",
            rule=rule,
            field=f"{field}.image_tag_mutability",
        )
    if "image_tag_mutability" in raw and mutability != raw["image_tag_mutability"]:
        raise ConfigError(
            f"is {mutability!r} but the target says image_tag_mutability {raw['image_tag_mutability']!r}: "
            "say it once",
            rule=rule,
            field=f"{field}.image_tag_mutability",
        )
    scan_on_push = _flag(block, "scan_on_push", False, rule, f"{field}.scan_on_push")
    encryption = _mapping(block.get("encryption") or {}, _ENCRYPTION_KEYS, rule, f"{field}.encryption")
    encryption_type = encryption.get("type", DEFAULT_ENCRYPTION_TYPE)
    if encryption_type not in ENCRYPTION_TYPES:
        raise ConfigError(
            f"must be one of {', '.join(ENCRYPTION_TYPES)}, got {encryption_type!r}",
            rule=rule,
            field=f"{field}.encryption.type",
        )
    kms_key = encryption.get("kms_key")
    if kms_key is not None:
        if encryption_type == DEFAULT_ENCRYPTION_TYPE:
            raise ConfigError(
                "a KMS key needs encryption type KMS or KMS_DSSE",
                rule=rule,
                field=f"{field}.encryption.kms_key",
            )
        if not isinstance(kms_key, str) or not KMS_KEY_ARN_PATTERN.fullmatch(kms_key):
            raise ConfigError(
                f"must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), got {kms_key!r}",
                rule=rule,
                field=f"{field}.encryption.kms_key",
            )
    tags = block.get("tags") or {}
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and 1 <= len(k) <= 128 and isinstance(v, str) and len(v) <= 256
        for k, v in tags.items()
    ):
        raise ConfigError(
            "must map tag keys (1-128 characters) to string values (at most 256)",
            rule=rule,
            field=f"{field}.tags",
        )
    return CreateMissing(
        image_tag_mutability=mutability,
        scan_on_push=scan_on_push,
        encryption_type=encryption_type,
        kms_key=kms_key,
        tags=tuple(sorted(tags.items())),
    )


def _parse_require(
    raw: object, rule: str
) -> tuple[ScanGate | None, SignatureGate | None, ApprovalGate | None]:
    """`require: {scan: {...}, signature: {...}, approval: {...}}`: each gate, or None when absent
    (any of them may stand together: all must pass)."""
    if raw is None:
        return None, None, None
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            "must be a mapping with 'scan', 'signature' and/or 'approval'", rule=rule, field="require"
        )
    _refuse_unknown_keys(raw, _REQUIRE_KEYS, rule=rule, field="require")
    scan = _parse_scan(raw["scan"], rule) if "scan" in raw else None
    signature = _parse_signature(raw["signature"], rule) if "signature" in raw else None
    approval = _parse_approval(raw["approval"], rule) if "approval" in raw else None
    return scan, signature, approval


def _parse_approval(raw: object, rule: str) -> ApprovalGate:
    """`approval: {approvers: [ARN or ARN pattern, ...], min: 1, requester_may_approve: false,
    expires_after: 24h, notify: <SNS topic ARN> | alarm-topic}` (promoter.model.approvals). A gate
    no quorum could ever pass is refused: `min` above the distinct people its approvers can match
    (only exact caller ARNs bound that; a role or a pattern matches any number of people)."""
    where = "require.approval"
    block = _mapping(raw, _APPROVAL_KEYS, rule, where)
    if "approvers" not in block:
        raise ConfigError("must list the approvers (principal ARNs or ARN patterns)", rule=rule, field=where)
    approvers = _string_list(block["approvers"], rule, f"{where}.approvers")
    for i, entry in enumerate(approvers):
        if not APPROVER_PATTERN.fullmatch(entry):
            raise ConfigError(
                "must be an IAM principal ARN of a named account: arn:aws:iam::<account>:user/<name>, "
                ":role/<name> (each of its sessions a person), arn:aws:sts::<account>:assumed-role/<role>/"
                f"<session>, with '*' and '?' allowed after the type, got {entry!r}",
                rule=rule,
                field=f"{where}.approvers[{i}]",
            )
    if len(set(approvers)) != len(approvers):
        raise ConfigError("names an approver twice", rule=rule, field=f"{where}.approvers")
    least = block.get("min", DEFAULT_MIN_APPROVERS)
    if isinstance(least, bool) or not isinstance(least, int) or least < 1:
        raise ConfigError(
            f"must be a whole number of approvers, at least 1, got {least!r}", rule=rule, field=f"{where}.min"
        )
    most = most_approvers(approvers)
    if most is not None and least > most:
        raise ConfigError(
            f"min {least} can never be reached: the approvers name {most} person(s) exactly (list more, "
            "or a role or pattern whose sessions are the people)",
            rule=rule,
            field=f"{where}.min",
        )
    may_self_approve = _flag(block, "requester_may_approve", False, rule, f"{where}.requester_may_approve")
    expires = block.get("expires_after", DEFAULT_EXPIRES_AFTER)
    seconds = parse_duration(expires)
    if seconds is None or seconds > MAX_EXPIRES_AFTER_SECONDS:
        raise ConfigError(
            f"must be a duration like 30m, 24h or 7d: more than zero and at most {MAX_EXPIRES_AFTER}, "
            f"got {expires!r}",
            rule=rule,
            field=f"{where}.expires_after",
        )
    notify = block.get("notify")
    if notify is not None and (
        not isinstance(notify, str) or not (notify == ALARM_TOPIC or SNS_TOPIC_ARN_PATTERN.fullmatch(notify))
    ):
        raise ConfigError(
            f"must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>) or {ALARM_TOPIC!r}, "
            f"got {notify!r}",
            rule=rule,
            field=f"{where}.notify",
        )
    return ApprovalGate(
        approvers=approvers,
        min=least,
        requester_may_approve=may_self_approve,
        expires_after=seconds,
        notify=notify,
    )


def _parse_scan(scan: object, rule: str) -> ScanGate:
    """`scan: {max_severity: HIGH, timeout_minutes: 60}`."""
    if not isinstance(scan, Mapping):
        raise ConfigError("must be a mapping with 'max_severity'", rule=rule, field="require.scan")
    _refuse_unknown_keys(scan, _SCAN_KEYS, rule=rule, field="require.scan")
    severity = scan.get("max_severity")
    if severity not in MAX_SEVERITIES:
        raise ConfigError(
            f"must be one of {', '.join(MAX_SEVERITIES)}, got {severity!r}",
            rule=rule,
            field="require.scan.max_severity",
        )
    timeout = scan.get("timeout_minutes", DEFAULT_GATE_TIMEOUT_MINUTES)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int)
        or not 1 <= timeout <= MAX_GATE_TIMEOUT_MINUTES
    ):
        raise ConfigError(
            f"must be a whole number of minutes from 1 to {MAX_GATE_TIMEOUT_MINUTES}, got {timeout!r}",
            rule=rule,
            field="require.scan.timeout_minutes",
        )
    return ScanGate(max_severity=severity, timeout_minutes=timeout)


def _parse_signature(raw: object, rule: str) -> SignatureGate:
    """`signature: {cosign: {keys}, sigstore: {identities}, notation: {signing_profiles, trust_roots}}`:
    at least one verifier, each with something to verify against."""
    where = "require.signature"
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            "must be a mapping with at least one of 'cosign', 'sigstore', 'notation'", rule=rule, field=where
        )
    _refuse_unknown_keys(raw, _SIGNATURE_KEYS, rule=rule, field=where)
    keys: tuple[str, ...] = ()
    if "cosign" in raw:
        cosign = _mapping(raw["cosign"], _COSIGN_KEYS, rule, f"{where}.cosign")
        keys = _string_list(cosign.get("keys"), rule, f"{where}.cosign.keys")
        for i, key in enumerate(keys):
            _check_cosign_key(key, rule, f"{where}.cosign.keys[{i}]")
    identities: tuple[SigstoreIdentity, ...] = ()
    if "sigstore" in raw:
        sigstore = _mapping(raw["sigstore"], _SIGSTORE_KEYS, rule, f"{where}.sigstore")
        listed = sigstore.get("identities")
        if not isinstance(listed, list) or not listed:
            raise ConfigError(
                "must be a non-empty list of {issuer, subject}",
                rule=rule,
                field=f"{where}.sigstore.identities",
            )
        identities = tuple(
            _parse_identity(item, rule, f"{where}.sigstore.identities[{i}]") for i, item in enumerate(listed)
        )
    notation = "notation" in raw
    profiles: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()
    if notation:
        block = _mapping(raw["notation"] or {}, _NOTATION_KEYS, rule, f"{where}.notation")
        profiles = _optional_string_list(
            block.get("signing_profiles"), rule, f"{where}.notation.signing_profiles"
        )
        for i, arn in enumerate(profiles):
            if not SIGNING_PROFILE_ARN_PATTERN.fullmatch(arn):
                raise ConfigError(
                    f"must be an AWS Signer signing-profile ARN "
                    f"(arn:aws:signer:<region>:<account>:/signing-profiles/<name>), got {arn!r}",
                    rule=rule,
                    field=f"{where}.notation.signing_profiles[{i}]",
                )
        roots = _optional_string_list(block.get("trust_roots"), rule, f"{where}.notation.trust_roots")
        for i, pem in enumerate(roots):
            _check_pem(pem, PEM_CERTIFICATE_LABEL, rule, f"{where}.notation.trust_roots[{i}]")
        if not roots and not profiles:
            # AWS Signer's roots sign for every AWS customer: without a profile, anyone's would pass.
            raise ConfigError(
                "with AWS Signer's roots (no trust_roots), list the signing_profiles to accept",
                rule=rule,
                field=f"{where}.notation.signing_profiles",
            )
    return SignatureGate(
        cosign_keys=keys,
        sigstore_identities=identities,
        notation=notation,
        notation_signing_profiles=profiles,
        notation_trust_roots=roots,
    )


def _mapping(raw: object, allowed: frozenset[str], rule: str, field: str) -> Mapping[Any, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"must be a mapping with {', '.join(sorted(allowed))}", rule=rule, field=field)
    _refuse_unknown_keys(raw, allowed, rule=rule, field=field)
    return raw


def _optional_string_list(raw: object, rule: str, field: str) -> tuple[str, ...]:
    return () if raw is None or raw == [] else _string_list(raw, rule, field)


def _parse_identity(raw: object, rule: str, field: str) -> SigstoreIdentity:
    """`{issuer, subject}` (each exact or `re:`), or a typed form: `{github: {repository, workflow,
    ref}}`, `{gitlab: {project, ref, ci_config, server}}`."""
    item = _mapping(raw, _IDENTITY_KEYS | _TYPED_IDENTITY_KEYS, rule, field)
    typed = sorted(_TYPED_IDENTITY_KEYS.intersection(item))
    if typed:
        if len(item) != 1:
            raise ConfigError(
                f"{typed[0]} builds the issuer and the subject: give it alone, without "
                f"{', '.join(k for k in sorted(item) if k != typed[0])}",
                rule=rule,
                field=field,
            )
        if typed[0] == "github":
            return _github_identity(item["github"], rule, f"{field}.github")
        return _gitlab_identity(item["gitlab"], rule, f"{field}.gitlab")
    values = []
    for key in ("issuer", "subject"):
        value = item.get(key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"must be a non-empty string, got {value!r}", rule=rule, field=f"{field}.{key}")
        if value.startswith(REGEX_PREFIX):
            try:
                regex = check_regex(value)
            except ValueError as exc:
                raise ConfigError(str(exc), rule=rule, field=f"{field}.{key}") from exc
            too_wide = too_wide_identity(regex, key)
            if too_wide is not None:
                raise ConfigError(
                    f"{value!r} matches every {key} ({too_wide}): signers with certificates from the "
                    "public Sigstore would pass; name the exact identity (or anchor and escape the regex: "
                    r"'re:https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v.*'), "
                    "or use the typed form {github: {repository, workflow, ref}}",
                    rule=rule,
                    field=f"{field}.{key}",
                )
        values.append(value)
    return SigstoreIdentity(*values)


def _typed_value(
    block: Mapping[Any, Any], key: str, pattern: re.Pattern[str], form: str, rule: str, field: str
) -> str:
    value = block.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(f"must be {form}, got {value!r}", rule=rule, field=f"{field}.{key}")
    return value


def _ci_subject(prefix: str, ref: str) -> str:
    """The SAN `<prefix>@<ref>`: exact, or for a ref with `*` an escaped regex where only the `*`
    varies (`refs/tags/v*` -> `...@refs/tags/v.*`)."""
    if "*" not in ref:
        return f"{prefix}@{ref}"
    return REGEX_PREFIX + re.escape(f"{prefix}@") + ".*".join(re.escape(part) for part in ref.split("*"))


def _github_identity(raw: object, rule: str, field: str) -> SigstoreIdentity:
    """GitHub Actions: issuer `https://token.actions.githubusercontent.com`, SAN
    `https://github.com/<repository>/<workflow>@<ref>` (the workflow file that ran, at that ref)."""
    block = _mapping(raw, _GITHUB_KEYS, rule, field)
    repository = _typed_value(
        block, "repository", GITHUB_REPOSITORY_PATTERN, "'owner/repository'", rule, field
    )
    workflow = _typed_value(
        block, "workflow", GITHUB_WORKFLOW_PATTERN, "'.github/workflows/<file>.yml'", rule, field
    )
    ref = _typed_value(
        block, "ref", GIT_REF_PATTERN, "'refs/heads/<branch>' or 'refs/tags/<tag>'", rule, field
    )
    return SigstoreIdentity(
        GITHUB_ACTIONS_ISSUER, _ci_subject(f"{GITHUB_SERVER}/{repository}/{workflow}", ref)
    )


def _gitlab_identity(raw: object, rule: str, field: str) -> SigstoreIdentity:
    """GitLab CI: issuer the GitLab server (`https://gitlab.com` unless `server`), SAN
    `<server>/<project>//<ci_config>@<ref>` (the pipeline definition that ran, at that ref)."""
    block = _mapping(raw, _GITLAB_KEYS, rule, field)
    project = _typed_value(block, "project", GITLAB_PROJECT_PATTERN, "'group/project'", rule, field)
    ref = _typed_value(
        block, "ref", GIT_REF_PATTERN, "'refs/heads/<branch>' or 'refs/tags/<tag>'", rule, field
    )
    ci_config = (
        _typed_value(block, "ci_config", GITLAB_CI_CONFIG_PATTERN, "a '.yml' path", rule, field)
        if "ci_config" in block
        else DEFAULT_GITLAB_CI_CONFIG
    )
    server = (
        _typed_value(block, "server", HTTPS_SERVER_PATTERN, "'https://<host>'", rule, field)
        if "server" in block
        else GITLAB_SERVER
    )
    return SigstoreIdentity(server, _ci_subject(f"{server}/{project}//{ci_config}", ref))


def _check_cosign_key(key: str, rule: str, field: str) -> None:
    """A PEM public key, or `awskms:///` and a KMS key ARN."""
    if key.startswith("awskms://"):
        arn = key[len(AWS_KMS_KEY_PREFIX) :] if key.startswith(AWS_KMS_KEY_PREFIX) else ""
        if not KMS_KEY_ARN_PATTERN.fullmatch(arn):
            raise ConfigError(
                f"a KMS key is 'awskms:///' and a key ARN (arn:aws:kms:<region>:<account>:key/<id>; "
                f"no endpoint, no alias), got {key!r}",
                rule=rule,
                field=field,
            )
        return
    _check_pem(key, PEM_PUBLIC_KEY_LABEL, rule, field)


def _check_pem(text: str, label: str, rule: str, field: str) -> None:
    """Refuses what is not one PEM block of `label` that `cryptography` can load."""
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    stripped = text.strip()
    if not (stripped.startswith(begin) and stripped.endswith(end)) or stripped.count("-----BEGIN") != 1:
        raise ConfigError(f"must be one PEM block '{begin}' ... '{end}'", rule=rule, field=field)
    try:  # the verifiers' own dependency: shipped with the function whenever a rule has this gate
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError as exc:
        raise ConfigError(
            "checking a signature gate needs 'cryptography' (pip install 'ecr-image-promoter[signatures]')",
            rule=rule,
            field=field,
        ) from exc
    try:
        if label == PEM_CERTIFICATE_LABEL:
            x509.load_pem_x509_certificate(stripped.encode())
        else:
            load_pem_public_key(stripped.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not a readable PEM {label.lower()}: {exc}", rule=rule, field=field) from exc


def _parse_requesters(raw: object, rule: str, trigger: str) -> tuple[str, ...]:
    """`requesters: ["210987654321", "arn:aws:iam::210987654321:role/release-*"]`; () when absent."""
    if raw is None:
        return ()
    if trigger != TRIGGER_REQUEST:
        raise ConfigError(
            "only a request rule has requesters (a push rule fires on ECR's own events)",
            rule=rule,
            field="requesters",
        )
    requesters = _string_list(raw, rule, "requesters")
    for index, requester in enumerate(requesters):
        if not (ACCOUNT_ID_PATTERN.fullmatch(requester) or REQUESTER_ARN_PATTERN.fullmatch(requester)):
            raise ConfigError(
                "must be a 12-digit account id or an IAM role or user ARN of a named account "
                f"(arn:aws:iam::<account>:role/<name>, '*' and '?' allowed in the name), got {requester!r}",
                rule=rule,
                field=f"requesters[{index}]",
            )
    if len(set(requesters)) != len(requesters):
        raise ConfigError("names a requester twice", rule=rule, field="requesters")
    return requesters


def requester_account(requester: str) -> str:
    """The account a requester (account id or IAM ARN) belongs to."""
    match = REQUESTER_ARN_PATTERN.fullmatch(requester)
    return match["account"] if match else requester


def _target_dict(target: TargetSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"repository": target.repository, "tags": list(target.tags)}
    return data | (target.registry.to_dict() if target.registry else {})


def _parse_registry(raw: Mapping[Any, Any], rule: str, where: str) -> TargetRegistry | None:
    """`account`, `region`, `role` of a target in another registry; None when none is given."""
    values: dict[str, str] = {}
    for key, pattern, form in (
        ("account", ACCOUNT_ID_PATTERN, "a 12-digit AWS account id"),
        ("region", REGION_PATTERN, "an AWS region such as eu-west-1"),
        ("role", ROLE_ARN_PATTERN, "an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
    ):
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ConfigError(f"must be {form}, got {value!r}", rule=rule, field=f"{where}.{key}")
        values[key] = value
    if not values:
        return None
    role_match = ROLE_ARN_PATTERN.fullmatch(values.get("role", ""))
    if role_match and "account" not in values:
        raise ConfigError("a role needs the account it is in", rule=rule, field=f"{where}.account")
    if role_match and role_match["account"] != values["account"]:
        raise ConfigError(
            f"role {values['role']} is in account {role_match['account']}, not {values['account']}",
            rule=rule,
            field=f"{where}.role",
        )
    return TargetRegistry(**values)


def _check_template(template: str, source: SourceSpec, rule: str, field: str, *, is_tag: bool) -> None:
    """Refuses a template that cannot be filled, that lets the pusher choose the repository, or
    that renders a name ECR would refuse."""
    try:
        fields = template_fields(template, source.captures)
    except TemplateError as exc:
        raise ConfigError(str(exc), rule=rule, field=field) from exc
    what = "tag" if is_tag else "repository name"
    chosen_by_pusher = sorted(TAG_DERIVED_FIELDS.intersection(fields))
    if not is_tag and chosen_by_pusher:
        named = ", ".join("{" + name + "}" for name in chosen_by_pusher)
        raise ConfigError(
            f"{named} comes from the pushed tag or digest, so whoever may push a tag would choose the "
            "repository written to (and its IAM grant would cover every repository); a target "
            "repository may use {repository} and the named groups of a 're:' source repository",
            rule=rule,
            field=field,
        )
    if not is_tag:
        _refuse_segments_named_by_source(template, source, rule, field)
    if "digest" in fields:
        raise ConfigError(
            f"{{digest}} renders 'sha256:...' and ':' is not allowed in an ECR {what}; use {{short_digest}}",
            rule=rule,
            field=field,
        )
    if (
        is_tag
        and "repository" in fields
        and (not source.repository_pattern.is_exact or "/" in source.repository)
    ):
        raise ConfigError(
            "{repository} can render a '/', which is not allowed in an ECR tag", rule=rule, field=field
        )
    # Try the template on a name each source pattern could match (for semver fields, on one that
    # could be a version): if ECR refuses that rendering, it refuses the rule's every image.
    tag_pattern = next(
        (p for p in source.tag_patterns if can_match_semver(p) or SEMVER_FIELDS.isdisjoint(fields)),
        source.tag_patterns[0],
    )
    rendered = template.format(
        **dict.fromkeys(source.captures, _SAMPLE_CAPTURE),
        tag=_sample(tag_pattern),
        repository=_sample(source.repository_pattern, wildcard="a1"),
        digest=_SAMPLE_DIGEST,
        short_digest=_SAMPLE_DIGEST.split(":", 1)[1][:SHORT_DIGEST_HEX_CHARS],
        major=_SAMPLE_VERSION,
        minor=_SAMPLE_VERSION,
        patch=_SAMPLE_VERSION,
    )
    valid = is_valid_tag(rendered) if is_tag else is_valid_repository(rendered)
    if not valid:
        raise ConfigError(
            f"template {template!r} renders {rendered!r} for a matching image: not a valid ECR {what}",
            rule=rule,
            field=field,
        )


def _refuse_segments_named_by_source(template: str, source: SourceSpec, rule: str, field: str) -> None:
    """Refuses a target repository whose whole name, or a whole '/'-segment of it, is a named
    capture (`{name}`, `svc/{team}/api`): whoever may name a matching source repository would pick
    where the image goes, and the IAM grant would be `repository/*` there. Beside a literal part
    of its own (`svc/{team}-staging`) a capture only fills in a name the rule spells."""
    segments = bare_segments(template)
    for text, names in segments:
        captured = [name for name in names if name in source.captures]
        if not captured:
            continue
        named = ", ".join("{" + name + "}" for name in captured)
        where = "the whole target repository name" if text == template else f"the whole path segment {text!r}"
        raise ConfigError(
            f"{named} would form {where}: whoever may name a matching source repository would choose "
            "the repository written to (and its IAM grant would cover every repository there); give "
            "the segment a literal part of its own, as in 'svc/{" + captured[0] + "}-staging'",
            rule=rule,
            field=field,
        )


def _sample(pattern: NamePattern, wildcard: str = "1") -> str:
    """A plausible name matching the pattern: each `*` stands for `wildcard` (a repository name
    needs two characters), each `?` for '1'; a regex by its literal skeleton (`as_glob`), or 'x'
    when that is all wildcards."""
    glob = pattern.as_glob()
    if pattern.is_regex and not glob.strip("*?"):
        return "x"
    return glob.replace("*", wildcard).replace("?", "1")


def _string_list(raw: object, rule: str, field: str) -> tuple[str, ...]:
    if isinstance(raw, str) or not isinstance(raw, list) or not raw:
        raise ConfigError(f"must be a non-empty list of strings, got {raw!r}", rule=rule, field=field)
    for item in raw:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"must hold only non-empty strings, got {item!r}", rule=rule, field=field)
    return tuple(raw)


def _refuse_unknown_keys(
    raw: Mapping[Any, Any], allowed: frozenset[str], *, rule: str | None, field: str | None
) -> None:
    unknown = sorted(str(key) for key in raw if key not in allowed)
    if unknown:
        closest = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        hint = f"did you mean {closest[0]!r}? " if closest else ""
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} ({hint}allowed: {', '.join(sorted(allowed))})",
            rule=rule,
            field=f"{field}.{unknown[0]}" if field else unknown[0],
        )


def _check_captures(pattern: NamePattern, rule: str) -> None:
    """A named group of a source repository regex becomes a template field: it must not shadow
    a built-in one."""
    for name in pattern.capture_names:
        if name in TEMPLATE_FIELDS:
            raise ConfigError(
                f"named group {name!r} would shadow the template field {{{name}}}; rename the group",
                rule=rule,
                field="source.repository",
            )


def template_to_glob(template: str, repository_glob: str, tag_glob: str) -> str:
    """The glob of every name a template can render: {repository} and {tag} become the source's
    patterns, every other field (a named capture too) `*`."""
    captures = {name for _literal, name, _spec, _conversion in _formatter_parse(template) if name}
    return template.format(
        **dict.fromkeys(captures - TEMPLATE_FIELDS, "*"),
        repository=repository_glob,
        tag=tag_glob,
        digest="*",
        short_digest="*",
        major="*",
        minor="*",
        patch="*",
    )


def _feeds(producer: Rule, consumer: Rule) -> bool:
    """Whether an image `producer` puts could trigger `consumer` (every PutImage is a PUSH event)."""
    if consumer.trigger != TRIGGER_PUSH:
        return False
    for target in producer.targets:
        if target.registry is not None:
            continue  # another registry: its pushes are events of another account or region
        repo_glob = template_to_glob(target.repository, producer.source.repository_glob, "*")
        if not patterns_overlap(NamePattern(repo_glob), consumer.source.repository_pattern):
            continue
        for source_tag in producer.source.tag_patterns:
            for template in target.tags:
                produced = NamePattern(
                    template_to_glob(template, producer.source.repository_glob, source_tag.as_glob())
                )
                if any(patterns_overlap(produced, taken) for taken in consumer.source.tag_patterns):
                    return True
    return False


def _refuse_cycles(config: PromotionConfig) -> None:
    """Refuses rules whose targets feed back into their own source chain (self-loops included)."""
    # Only push rules can be fed, and a target with an exact name only feeds rules whose source
    # could be that name: an index keeps a configuration of a thousand rules from costing a
    # million comparisons.
    by_exact_source: dict[str, list[Rule]] = {}
    patterned: list[Rule] = []
    for rule in config.rules_for(TRIGGER_PUSH):
        if rule.source.repository_pattern.is_exact:
            by_exact_source.setdefault(rule.source.repository, []).append(rule)
        else:
            patterned.append(rule)

    def could_feed(producer: Rule) -> list[Rule]:
        globs = {
            template_to_glob(t.repository, producer.source.repository_glob, "*")
            for t in producer.targets
            if t.registry is None
        }
        if any(WILDCARDS.intersection(glob) for glob in globs):
            return [*patterned, *(r for rules in by_exact_source.values() for r in rules)]
        return [*patterned, *(r for glob in sorted(globs) for r in by_exact_source.get(glob, ()))]

    order = {rule.name: index for index, rule in enumerate(config.rules)}
    edges = {
        rule.name: sorted((other.name for other in could_feed(rule) if _feeds(rule, other)), key=order.get)
        for rule in config.rules
    }
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for nxt in edges[name]:
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise ConfigError(
                    "targets feed back into the rule's own source chain: "
                    + " -> ".join(cycle)
                    + " (every PutImage emits a PUSH event)",
                    rule=nxt,
                    field="targets",
                )
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[name] = 2

    for rule in config.rules:
        if rule.name not in state:
            visit(rule.name)


def _formatter_parse(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    import string

    return list(string.Formatter().parse(template))


@dataclass(frozen=True)
class _TagWrite:
    """One tag template of one target, with the globs of what it can write."""

    rule: str
    field: str
    registry: tuple[str | None, str | None]  # (account, region); None = the promoter's own
    repository_glob: str
    template: str
    tag_globs: tuple[str, ...]


def _tag_writes(config: PromotionConfig) -> list[_TagWrite]:
    writes = []
    for rule in config.rules:
        source_glob = rule.source.repository_glob
        for index, target in enumerate(rule.targets):
            registry = (target.registry.account, target.registry.region) if target.registry else (None, None)
            repository_glob = template_to_glob(target.repository, source_glob, "*")
            for tag_index, template in enumerate(target.tags):
                globs = tuple(
                    sorted(
                        {
                            template_to_glob(template, source_glob, p.as_glob())
                            for p in rule.source.tag_patterns
                        }
                    )
                )
                writes.append(
                    _TagWrite(
                        rule.name,
                        f"targets[{index}].tags[{tag_index}]",
                        registry,
                        repository_glob,
                        template,
                        globs,
                    )
                )
    return writes


def _template_regex(template: str) -> str:
    """A regex of what a template can render: semver fields are numbers, {short_digest} hex, any
    other field anything. Used only to rule out a literal tag that no rendering can spell."""
    parts = []
    for literal, name, _spec, _conversion in _formatter_parse(template):
        parts.append(re.escape(literal))
        if name in SEMVER_FIELDS:
            parts.append("(0|[1-9][0-9]*)")
        elif name == "short_digest":
            parts.append(f"[0-9a-f]{{{SHORT_DIGEST_HEX_CHARS}}}")
        elif name:
            parts.append(".+")
    return "".join(parts)


def _can_write_same_tag(a: _TagWrite, b: _TagWrite) -> bool:
    if a.registry != b.registry or not globs_overlap(a.repository_glob, b.repository_glob):
        return False
    if not any(globs_overlap(x, y) for x in a.tag_globs for y in b.tag_globs):
        return False
    # `latest` against `{major}.{minor}`: the globs (`*.*`) say maybe, the numbers say never.
    for literal, other in ((a, b), (b, a)):
        if "{" in literal.template:
            continue
        try:
            renderings = LinearRegex(_template_regex(other.template))
        except UnsupportedRegexError:
            continue  # a template too long for the automaton: the globs' "maybe" stands
        if not renderings.matches(literal.template):
            return False
    return True


def _refuse_shared_target_tags(config: PromotionConfig) -> None:
    """Refuses two targets (of one rule or of two) that can write the same tag of the same
    repository in the same registry: the last event would win and reconcile would flap. The tags
    of one target may coincide (`{tag}` and `latest` for a push of `latest`): one plan writes
    them once."""
    writes = _tag_writes(config)
    # Writes to an exactly named repository are compared with the writes to that name and with the
    # patterned ones only (an index: a thousand rules must not cost a million comparisons).
    by_exact: dict[tuple[tuple[str | None, str | None], str], list[int]] = {}
    patterned: list[int] = []
    for index, write in enumerate(writes):
        if WILDCARDS.intersection(write.repository_glob):
            patterned.append(index)
        else:
            by_exact.setdefault((write.registry, write.repository_glob), []).append(index)
    for later_index, later in enumerate(writes):
        if WILDCARDS.intersection(later.repository_glob):
            candidates = range(later_index)
        else:
            same_name = by_exact.get((later.registry, later.repository_glob), [])
            candidates = sorted(i for i in (*same_name, *patterned) if i < later_index)
        for earlier in (writes[i] for i in candidates):
            same_target = (
                earlier.rule == later.rule and earlier.field.split(".")[0] == later.field.split(".")[0]
            )
            if same_target or not _can_write_same_tag(earlier, later):
                continue
            registry = "/".join(part for part in later.registry if part) or "this registry"
            raise ConfigError(
                f"{later.template!r} in {later.repository_glob} ({registry}) can write the same tag as rule "
                f"{earlier.rule!r} {earlier.field} {earlier.template!r}: two targets writing one tag "
                "fight (the last event wins, reconcile flaps); give each its own tags or repository",
                rule=later.rule,
                field=later.field,
            )
