"""`promoter attestation policy`: the admission policy that admits only images the promoter attested.

The promoter attaches to every promoted digest, in the target repository, a Sigstore bundle v0.3
(an OCI 1.1 referrer) holding a DSSE-signed in-toto Statement with the SLSA VSA predicate
(`promoter.model.attestation`), signed by the stack's KMS key, with no transparency-log entry. The
policies written here require, for every image of the configuration's target repositories: an
attestation of that predicate type whose signature the stack's public key verifies (the subject
digest checked by the controller), `verificationResult` PASSED, our `verifier.id`, and, when asked,
a rule's level (`ECR_PROMOTER_RULE_<rule>`, which also narrows the images to that rule's targets)
or any level the promoter writes (`ECR_PROMOTER_GATE_SCAN`, ...).

Three documents, one per controller, each checked against its CRD's published schema in the tests
(`tests/fixtures/crds`); the versions each needs, and why, are the `*_VERSIONS` texts below, which
the written policy carries as a comment. What was read where (upstream source at the tags named):
- Kyverno `ImageValidatingPolicy` (`policies.kyverno.io/v1`): its cosign attestor reads Sigstore
  bundles stored as referrers since 1.18.0 (`pkg/image/verifiers/ivpol/cosign/verifier.go`,
  `GetBundles` then `NewBundleFormat`); `extractPayload` keeps one payload per predicate type
  (kyverno/sdk `verifiedIntotoPayloads[type]`, the last verified).
- Kyverno `ClusterPolicy` (`kyverno.io/v1`), `verifyImages[].type: SigstoreBundle`: a public key
  attestor for bundles only from 1.19.0 (`pkg/image/verifiers/cpol/cosign/sigstore.go`,
  `verify.WithKey()`); every statement of the type must meet the conditions.
- Sigstore policy-controller `ClusterImagePolicy` (`policy.sigstore.dev/v1beta1`): up to v0.15.1
  (and its main branch of 2026-08-18) `checkOptsFromAuthority` refuses `signatureFormat: bundle`
  for anything but a keyless authority ("when using the new bundle format, the authority must be
  keyless", sigstore/policy-controller#1958), so the policy written for it is the right shape for
  our format and key but denies every image it covers until the controller verifies key-signed
  bundles. `render_policy` says so in the policy and the command on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promoter import settings
from promoter.model.attestation import (
    LEVEL_PREFIX,
    PASSED,
    VERIFIER_ID,
    VSA_PREDICATE_TYPE,
    load_public_key,
    rule_level,
)
from promoter.model.config import PromotionConfig, Rule, template_to_glob

KYVERNO = "kyverno"
POLICY_CONTROLLER = "policy-controller"
CONTROLLERS = (KYVERNO, POLICY_CONTROLLER)
IMAGE_VALIDATING_POLICY = "imagevalidatingpolicy"
CLUSTER_POLICY = "clusterpolicy"
KYVERNO_APIS = (IMAGE_VALIDATING_POLICY, CLUSTER_POLICY)

POLICY_NAME = "ecr-image-promoter-attestation"
# Kubernetes object names: DNS-1123 labels (policies are also named in webhook configurations).
MAX_POLICY_NAME_CHARS = 63
ATTESTOR_NAME = "promoter"
ATTESTATION_NAME = "vsa"
RULE_NAME = "require-promotion-attestation"
# The longest an admission webhook may take (Kubernetes caps timeoutSeconds at 30).
WEBHOOK_TIMEOUT_SECONDS = 30
# Where the promoter writes: ECR private registries (the policy's images).
ECR_HOST = "{account}.dkr.ecr.{region}.amazonaws.com"
# The promoter signs with KMS ECC_NIST_P256 / ECDSA_SHA_256.
SIGNATURE_HASH = "sha256"

# Every image of a pod, as Kyverno's built-in extractors name them (pods and the pod controllers
# its autogen covers); `images` holds only those matchImageReferences selects.
_IVP_IMAGES = "(images.containers + images.initContainers + images.ephemeralContainers)"

KYVERNO_IVP_VERSIONS = (
    "Kyverno 1.18.0 or later: the first release whose ImageValidatingPolicy reads Sigstore bundles "
    "stored as OCI referrers. 1.19.0 adds a verification cache (--imageVerifyCacheEnabled, on by "
    "default, keyed by the image reference as written, 60m TTL): kyverno#17105 (a cache hit broke "
    "extractPayload) is fixed in 1.19.0; kyverno#17130 (a cache hit returns an unverified payload, "
    "fix kyverno#17164, in no release as of 1.19.0) is on the referrer/Notary attestation path, "
    "not the cosign in-toto path this policy uses. To rule the cache out, run the admission "
    "controller with --imageVerifyCacheEnabled=false."
)
KYVERNO_CLUSTER_POLICY_VERSIONS = (
    "Kyverno 1.19.0 or later: the first release whose verifyImages type SigstoreBundle takes a "
    "public key. useCache is off: on a cache hit Kyverno skips the attestation conditions "
    "(kyverno#17173, fixed on main after 1.19.0)."
)
POLICY_CONTROLLER_VERSIONS = (
    "NOT YET USABLE: Sigstore policy-controller up to v0.15.1 refuses signatureFormat: bundle for a "
    "key authority (sigstore/policy-controller#1958), so this policy denies every image it covers "
    "until a release verifies key-signed Sigstore bundles. Use the Kyverno policy meanwhile "
    "(promoter attestation policy --for kyverno). Do not set the controller's enable-oci11: up to "
    "v0.15.1 attestations found through the referrers API are not signature-checked."
)


class PolicyInputError(ValueError):
    """What was asked for cannot make a policy (unknown rule, a level the promoter never writes, no
    repositories, a key that is not the promoter's kind): bad input, exit 2."""


@dataclass(frozen=True)
class PolicyRequest:
    """What a policy requires: images of `repositories` (`<registry host>/<repository glob>`) carry
    an attestation signed by `public_key_pem` with every level of `levels`; `name` is the object's."""

    repositories: tuple[str, ...]
    public_key_pem: str
    levels: tuple[str, ...] = ()
    name: str = POLICY_NAME
    rule: str | None = None


def ecr_host(account: str, region: str) -> str:
    return ECR_HOST.format(account=account, region=region)


def target_repositories(
    config: PromotionConfig, account: str, region: str, rule: str | None = None
) -> tuple[str, ...]:
    """Every target repository of the configuration (of `rule` only, when given) as
    `<account>.dkr.ecr.<region>.amazonaws.com/<repository>`, a pattern's repository as a glob
    (`*` for each variable part), sorted, once; a target in another account or region is named in
    its own registry. Raises PolicyInputError for a rule the configuration does not have."""
    rules = config.rules if rule is None else (known_rule(config, rule),)
    repositories = set()
    for each in rules:
        for target in each.targets:
            registry = target.registry
            host = ecr_host(
                (registry.account if registry else None) or account,
                (registry.region if registry else None) or region,
            )
            repositories.add(
                f"{host}/{template_to_glob(target.repository, each.source.repository_glob, '*')}"
            )
    return tuple(sorted(repositories))


def known_rule(config: PromotionConfig, name: str) -> Rule:
    """The rule named `name`. Raises PolicyInputError naming the rules there are."""
    rule = config.rule(name)
    if rule is None:
        names = ", ".join(r.name for r in config.rules)
        raise PolicyInputError(f"no rule named {name!r} in the configuration (rules: {names})")
    return rule


def required_levels(config: PromotionConfig, rule: str | None, level: str | None) -> tuple[str, ...]:
    """The `verifiedLevels` a policy requires: the rule's level and `level`, each once. Raises
    PolicyInputError for a level the promoter never writes (not `ECR_PROMOTER_...`, or the level
    of a rule the configuration does not have): a policy requiring it would deny every image."""
    levels: list[str] = []
    if rule is not None:
        levels.append(rule_level(known_rule(config, rule).name))
    if level is not None:
        if not level.startswith(LEVEL_PREFIX) or level == LEVEL_PREFIX:
            raise PolicyInputError(
                f"--level {level!r}: the promoter writes only its own levels, "
                f"{rule_level('<rule>')} and {LEVEL_PREFIX}GATE_<GATE> (e.g. {LEVEL_PREFIX}GATE_SCAN)"
            )
        rule_levels = {rule_level(r.name) for r in config.rules}
        if level.startswith(rule_level("")) and level not in rule_levels:
            raise PolicyInputError(
                f"--level {level!r} names no rule of the configuration (rule levels: "
                f"{', '.join(sorted(rule_levels))})"
            )
        if level not in levels:
            levels.append(level)
    return tuple(levels)


def public_key_pem_checked(text: str) -> str:
    """The PEM as a policy carries it, after checking it is an ECDSA P-256 public key (the kind KMS
    ECC_NIST_P256 gives). Raises PolicyInputError otherwise."""
    try:
        load_public_key(text)
    except ValueError as exc:
        raise PolicyInputError(str(exc)) from exc
    return text.strip() + "\n"


def policy_name(rule: str | None, level: str | None) -> str:
    """`ecr-image-promoter-attestation`, with the rule and level it is narrowed to, as a DNS-1123 label
    (lower case, `-` for anything else, at most 63 characters)."""
    parts = [rule or "", level[len(LEVEL_PREFIX) :] if level else ""]
    name = "-".join([POLICY_NAME, *(part for part in parts if part)])
    name = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    return name[:MAX_POLICY_NAME_CHARS].strip("-")


def kyverno_image_references(repository: str) -> list[str]:
    """Kyverno's globs (`*` also crosses `/`) for every reference to an image of `repository`: by tag,
    by digest, and bare (a bare name would otherwise escape the policy)."""
    return [repository, f"{repository}:*", f"{repository}@*"]


def policy_controller_globs(repository: str) -> list[str]:
    """policy-controller's globs (`*` stays within a path segment, `**` crosses `/`; it names an image
    with its tag, `:latest` when none): by tag and by digest, a repository pattern's `*` widened."""
    repository = repository.replace("*", "**")
    return [f"{repository}:*", f"{repository}@*"]


def _cel(text: str) -> str:
    """A CEL (and CUE) string literal: JSON's double-quoted form is valid in both."""
    return json.dumps(text)


def image_validating_policy(request: PolicyRequest) -> dict[str, Any]:
    """Kyverno's `ImageValidatingPolicy` (policies.kyverno.io/v1)."""
    payload = f"extractPayload(image, attestations.{ATTESTATION_NAME}).predicate"
    validations = [
        {
            "expression": f"{_IVP_IMAGES}.all(image, verifyAttestationSignatures(image, "
            f"attestations.{ATTESTATION_NAME}, [attestors.{ATTESTOR_NAME}]) > 0)",
            "message": "the image carries no promotion attestation signed by the ECR Image Promoter's key",
        },
        {
            "expression": f"{_IVP_IMAGES}.all(image, {payload}.verificationResult == {_cel(PASSED)})",
            "message": f"the promotion attestation's verificationResult is not {PASSED}",
        },
        {
            "expression": f"{_IVP_IMAGES}.all(image, {payload}.verifier.id == {_cel(VERIFIER_ID)})",
            "message": f"the promotion attestation's verifier is not {VERIFIER_ID}",
        },
    ]
    validations += [
        {
            "expression": f"{_IVP_IMAGES}.all(image, {_cel(level)} in {payload}.verifiedLevels)",
            "message": f"the promotion attestation's verifiedLevels do not include {level}",
        }
        for level in request.levels
    ]
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": request.name, "annotations": _annotations(request)},
        "spec": {
            "validationActions": ["Deny"],
            "failurePolicy": "Fail",
            "webhookConfiguration": {"timeoutSeconds": WEBHOOK_TIMEOUT_SECONDS},
            "evaluation": {"background": {"enabled": False}},
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods"],
                    }
                ]
            },
            "matchImageReferences": [
                {"glob": glob}
                for repository in request.repositories
                for glob in kyverno_image_references(repository)
            ],
            # ECR answers Kyverno with its own credentials (IRSA or EKS Pod Identity).
            "credentials": {"providers": ["amazon"]},
            # Admitted pods name the digest that was verified, never a tag that could move.
            "validationConfigurations": {"mutateDigest": True, "verifyDigest": True, "required": True},
            "attestors": [
                {
                    "name": ATTESTOR_NAME,
                    "cosign": {
                        "key": {"data": request.public_key_pem, "hashAlgorithm": SIGNATURE_HASH},
                        # No transparency log: the key is in KMS and only the promoter signs.
                        "ctlog": {"insecureIgnoreTlog": True, "insecureIgnoreSCT": True},
                    },
                }
            ],
            "attestations": [{"name": ATTESTATION_NAME, "intoto": {"type": VSA_PREDICATE_TYPE}}],
            "validations": validations,
        },
    }


def cluster_policy(request: PolicyRequest) -> dict[str, Any]:
    """Kyverno's older `ClusterPolicy` (kyverno.io/v1) with `verifyImages[].attestations[]`."""
    conditions: list[dict[str, Any]] = [
        {"key": "{{ verificationResult }}", "operator": "Equals", "value": PASSED},
        {"key": "{{ verifier.id }}", "operator": "Equals", "value": VERIFIER_ID},
    ]
    conditions += [
        {"key": "{{ verifiedLevels }}", "operator": "AnyIn", "value": [level]} for level in request.levels
    ]
    key = {
        "publicKeys": request.public_key_pem,
        "signatureAlgorithm": SIGNATURE_HASH,
        "rekor": {"ignoreTlog": True},
        "ctlog": {"ignoreSCT": True},
    }
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": request.name, "annotations": _annotations(request)},
        "spec": {
            "background": False,
            "webhookConfiguration": {"failurePolicy": "Fail", "timeoutSeconds": WEBHOOK_TIMEOUT_SECONDS},
            "rules": [
                {
                    "name": RULE_NAME,
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [
                        {
                            "type": "SigstoreBundle",
                            "imageReferences": [
                                ref
                                for repository in request.repositories
                                for ref in kyverno_image_references(repository)
                            ],
                            "failureAction": "Enforce",
                            "mutateDigest": True,
                            "verifyDigest": True,
                            "required": True,
                            "useCache": False,
                            "imageRegistryCredentials": {"providers": ["amazon"]},
                            "attestations": [
                                {
                                    "name": ATTESTATION_NAME,
                                    "type": VSA_PREDICATE_TYPE,
                                    "attestors": [{"count": 1, "entries": [{"keys": key}]}],
                                    "conditions": [{"all": conditions}],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    }


def cue_policy(levels: Sequence[str]) -> str:
    """The CUE the policy-controller unifies each attestation's statement with: ours, PASSED, with
    every level of `levels` among `verifiedLevels`."""
    lines = []
    if levels:
        lines += ['import "list"', ""]
    lines += [
        f"predicateType: {_cel(VSA_PREDICATE_TYPE)}",
        f"predicate: verificationResult: {_cel(PASSED)}",
        f"predicate: verifier: id: {_cel(VERIFIER_ID)}",
    ]
    if levels:
        lines.append("predicate: verifiedLevels: [...string]")
        lines += [
            f"ecrImagePromoterLevel{i}: true & list.Contains(predicate.verifiedLevels, {_cel(level)})"
            for i, level in enumerate(levels)
        ]
    return "\n".join(lines) + "\n"


def cluster_image_policy(request: PolicyRequest) -> dict[str, Any]:
    """Sigstore policy-controller's `ClusterImagePolicy` (policy.sigstore.dev/v1beta1)."""
    return {
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": request.name, "annotations": _annotations(request)},
        "spec": {
            "mode": "enforce",
            "images": [
                {"glob": glob}
                for repository in request.repositories
                for glob in policy_controller_globs(repository)
            ],
            "authorities": [
                {
                    "name": ATTESTOR_NAME,
                    # No `ctlog`: a key authority without one skips the transparency log.
                    "key": {"data": request.public_key_pem, "hashAlgorithm": SIGNATURE_HASH},
                    "signatureFormat": "bundle",
                    "attestations": [
                        {
                            "name": ATTESTATION_NAME,
                            "predicateType": VSA_PREDICATE_TYPE,
                            "policy": {"type": "cue", "data": cue_policy(request.levels)},
                        }
                    ],
                }
            ],
        },
    }


def _annotations(request: PolicyRequest) -> dict[str, str]:
    annotations = {
        "ecr-image-promoter.dev/predicate-type": VSA_PREDICATE_TYPE,
        "ecr-image-promoter.dev/verifier": VERIFIER_ID,
    }
    if request.rule is not None:
        annotations["ecr-image-promoter.dev/rule"] = request.rule
    if request.levels:
        annotations["ecr-image-promoter.dev/levels"] = ",".join(request.levels)
    return annotations


def build_policy(
    controller: str, request: PolicyRequest, kyverno_api: str = IMAGE_VALIDATING_POLICY
) -> dict[str, Any]:
    """The policy document for `controller` (`kyverno` with `kyverno_api`, or `policy-controller`)."""
    if controller == POLICY_CONTROLLER:
        return cluster_image_policy(request)
    if kyverno_api == CLUSTER_POLICY:
        return cluster_policy(request)
    return image_validating_policy(request)


def versions_note(controller: str, kyverno_api: str = IMAGE_VALIDATING_POLICY) -> str:
    if controller == POLICY_CONTROLLER:
        return POLICY_CONTROLLER_VERSIONS
    return KYVERNO_CLUSTER_POLICY_VERSIONS if kyverno_api == CLUSTER_POLICY else KYVERNO_IVP_VERSIONS


def multiple_attestations_note(controller: str, kyverno_api: str, levels: Sequence[str]) -> str | None:
    """What a level check means when a digest carries several of our attestations (one per target
    tag, and those carried from the source repository), or None without a level check."""
    if not levels:
        return None
    if controller == POLICY_CONTROLLER:
        return "The levels are checked on each attestation: one that has them is enough."
    if kyverno_api == CLUSTER_POLICY:
        return (
            "Kyverno checks the levels on every attestation of the digest: an image that also carries "
            "another rule's attestation (carried from its source repository) is denied."
        )
    return (
        "Kyverno's extractPayload returns one attestation per predicate type (the last verified): "
        "when a digest carries another rule's attestation too (carried from its source repository), "
        "the level check may read that one and deny."
    )


def render_policy(document: dict[str, Any], comments: Sequence[str]) -> str:
    """The policy as YAML, after `comments` as `#` lines (each wrapped at 100 columns); multi-line
    strings (the PEM, the CUE) as literal blocks, so it reads as people write policies."""
    import textwrap

    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _string)
    header = [
        line
        for comment in comments
        for line in (textwrap.wrap(comment, 98, break_long_words=False, break_on_hyphens=False) or [""])
    ]
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000)
    return "".join(f"# {line}".rstrip() + "\n" for line in header) + "---\n" + body


# --- the command ----------------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds `policy` to `promoter attestation`'s sub-commands; the caller adds `--stack` and sets
    `func` to `cmd_policy`."""
    policy = commands.add_parser(
        "policy",
        help="write an admission policy (Kyverno, Sigstore policy-controller) that admits only images "
        "the promoter attested",
    )
    policy.add_argument(
        "--for", dest="controller", required=True, choices=CONTROLLERS, help="the admission controller"
    )
    policy.add_argument(
        "--kyverno-api",
        choices=KYVERNO_APIS,
        default=IMAGE_VALIDATING_POLICY,
        help=f"with --for {KYVERNO}: the policy kind (default: {IMAGE_VALIDATING_POLICY}, Kyverno 1.18+; "
        f"{CLUSTER_POLICY}: the older ClusterPolicy with verifyImages, Kyverno 1.19+)",
    )
    policy.add_argument(
        "--rule", metavar="R", help="only the rule's target repositories, and require the rule's level"
    )
    policy.add_argument(
        "--level",
        metavar="L",
        help=f"require this level among the attestation's verifiedLevels (e.g. {LEVEL_PREFIX}GATE_SCAN)",
    )
    policy.add_argument(
        "--config",
        default=settings.DEFAULT_CONFIG_FILE,
        metavar="PATH",
        help=f"promotion rules, YAML or JSON (default: ./{settings.DEFAULT_CONFIG_FILE}): their target "
        "repositories are the policy's images",
    )
    key = policy.add_mutually_exclusive_group()
    key.add_argument(
        "--key",
        metavar="PEM|ARN",
        help="the public key: a PEM file or text, or a KMS key ARN (default: the stack's attestation key, "
        "as `promoter attestation key` finds it)",
    )
    key.add_argument("--key-arn", metavar="ARN", help="the KMS key whose public key to use")
    return policy


def caller_registry() -> tuple[str, str]:
    """(account, region) of the credentials in use: the promoter's own registry."""
    import boto3

    session = boto3.session.Session()
    account = session.client("sts").get_caller_identity()["Account"]
    return str(account), str(session.region_name)


def cmd_policy(args: argparse.Namespace) -> int:
    """Writes the policy to stdout (YAML, a comment naming the controller versions it needs first).
    Exit 0 written, 1 the key could not be read from KMS, 2 bad input."""
    from promoter.exceptions import AttestationError, ConfigError
    from promoter.model.config import load_config

    # The attestation command's own helpers: how its key is found, and how a refusal is said.
    from promoter_cli.cmd_attestation import BadInput, _fail, _kms_failed, public_key_pem
    from promoter_cli.cmd_engine import EXIT_BAD_INPUT, EXIT_OK

    if args.controller != KYVERNO and args.kyverno_api != IMAGE_VALIDATING_POLICY:
        return _fail(EXIT_BAD_INPUT, f"--kyverno-api is for --for {KYVERNO} only")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(EXIT_BAD_INPUT, f"invalid configuration: {exc}")
    try:
        levels = required_levels(config, args.rule, args.level)
        given = args.key if args.key is not None else args.key_arn
        pem, key_source = public_key_pem(args, given)
        pem = public_key_pem_checked(pem)
        account, region = caller_registry()
        repositories = target_repositories(config, account, region, args.rule)
    except (PolicyInputError, BadInput) as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    except AttestationError as exc:
        return _kms_failed(exc)  # exit 1; no region or credentials go up to main (exit 2)
    if not repositories:
        return _fail(EXIT_BAD_INPUT, f"{args.config}: no target repositories, nothing for a policy to cover")
    request = PolicyRequest(
        repositories=repositories,
        public_key_pem=pem,
        levels=levels,
        name=policy_name(args.rule, args.level),
        rule=args.rule,
    )
    document = build_policy(args.controller, request, args.kyverno_api)
    comments = [
        f"Admits only images of these repositories that carry the ECR Image Promoter's attestation "
        f"({VSA_PREDICATE_TYPE}) signed by the key from {key_source}; written by "
        f"`promoter attestation policy` from {args.config}.",
        versions_note(args.controller, args.kyverno_api),
    ]
    if note := multiple_attestations_note(args.controller, args.kyverno_api, levels):
        comments.append(note)
    if args.controller == POLICY_CONTROLLER:
        print(f"promoter: warning: {POLICY_CONTROLLER_VERSIONS}", file=sys.stderr)
    sys.stdout.write(render_policy(document, comments))
    return EXIT_OK
