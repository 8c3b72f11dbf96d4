"""`promoter attestation`: the promotion attestations (issue 19) for people and deploy pipelines.

- `promoter attestation key [--key-arn ARN] [--stack NAME]`: the PEM public key of the stack's
  attestation key (KMS GetPublicKey), what cosign, Kyverno and the policy-controller verify with.
- `promoter attestation verify IMAGE [--key PEM|ARN] [--rule R] [--json]`: reads the referrers of
  the image's digest in its repository, and checks every attestation of ours among them as a
  consumer must (`promoter.model.attestation.verify_bundle`): the DSSE signature with the key, the
  subject digest, the predicate type, the verifier, the resourceUri (the tag when IMAGE names one,
  else any tag of the repository), PASSED, and the rule when given. IMAGE is `REPOSITORY:TAG`,
  `REPOSITORY@DIGEST` or a full registry URI (`<account>.dkr.ecr.<region>.amazonaws.com/REPO:TAG`).
  Attestations of ours whose target is another repository were carried along from an earlier hop
  (dev -> staging -> prod copies staging's into prod): listed as "carried from <target>", not
  checked, not counted.
Exit codes: 0 every attestation found for this repository (this tag, when IMAGE names one) holds
(at least one), 1 none found or one fails (or the key cannot be read from KMS), 2 bad input (IMAGE,
--key, no key to use).

Which key, first found wins: `--key` (a PEM file, the PEM text, or a KMS key ARN/alias); the stack's
output `AttestationPublicKeyArn` with `--stack`; `ATTESTATION_KEY_ARN`; against the local AWS, the
key the local stack creates (`settings.LOCAL_ATTESTATION_KEY_ALIAS`).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promoter import settings
from promoter.model import attestation as vsa
from promoter.model.config import AWS_KMS_KEY_PREFIX
from promoter.model.templates import is_digest, is_valid_repository, is_valid_tag
from promoter_cli import attestation_policy
from promoter_cli.cmd_engine import EXIT_BAD_INPUT, EXIT_NOT_ALL_PROMOTED, EXIT_OK
from promoter_cli.output import add_json_flag, print_json, printable, short_digest

if TYPE_CHECKING:
    from promoter.aws.registry import EcrRegistry
    from promoter.workflows.attest import Attestor

LOG = logging.getLogger(__name__)

# An attestation's bundle is a few KB; a referrer's layer far bigger than this is not ours to read.
MAX_BUNDLE_BYTES = 1024 * 1024
# `<account>.dkr.ecr.<region>.amazonaws.com[.cn]`: ECR's registry host (ECR user guide, "Registry").
ECR_HOST = re.compile(
    r"(?P<account>[0-9]{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?"
)
KMS_KEY_REFERENCE = re.compile(
    r"arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+|alias/.+|(mrk-)?[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"
)
PEM_BEGIN = "-----BEGIN"


class BadInput(ValueError):
    """What the user gave cannot be used (exit 2)."""


@dataclass(frozen=True)
class ImageReference:
    """IMAGE as given: the registry host (None: the caller's), the repository, a tag or a digest."""

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `attestation` with its `key`, `verify` and `policy` sub-commands."""
    parser = sub.add_parser("attestation", help="the signed promotion attestations: the key, verification")
    commands = parser.add_subparsers(dest="attestation_command", required=True, metavar="SUBCOMMAND")

    key = commands.add_parser(
        "key", help="print the public key (PEM) that verifies the promoter's attestations"
    )
    key.add_argument(
        "--key-arn",
        metavar="ARN",
        help="the KMS key (default: the stack's, ATTESTATION_KEY_ARN, or the local one)",
    )
    _add_stack(key)
    key.set_defaults(func=cmd_key)

    verify = commands.add_parser(
        "verify", help="check the promoter's attestations of an image (exit 0 only when all hold)"
    )
    verify.add_argument(
        "image", metavar="IMAGE", help="REPOSITORY:TAG, REPOSITORY@DIGEST or a full registry URI"
    )
    verify.add_argument(
        "--key",
        metavar="PEM|ARN",
        help="a PEM public key (file or text) or a KMS key ARN (default: as `attestation key` finds it)",
    )
    verify.add_argument("--rule", metavar="R", help="require an attestation of this rule")
    add_json_flag(verify)
    _add_stack(verify)
    verify.set_defaults(func=cmd_verify)

    # `promoter attestation policy --for kyverno|policy-controller` (issue 19 item 6): the admission
    # policy, written by promoter_cli.attestation_policy; its key found as `verify` finds it.
    policy = attestation_policy.add_parser(commands)
    _add_stack(policy)
    policy.set_defaults(func=attestation_policy.cmd_policy)


def _add_stack(parser: argparse.ArgumentParser) -> None:
    # `main` points the process at the stack's outputs (promoter_cli.resources.use_stack), the key
    # among them (AttestationPublicKeyArn -> ATTESTATION_KEY_ARN), as for every stack command.
    parser.add_argument("--stack", metavar="NAME", help="use the deployed stack's attestation key")


# --- the key ------------------------------------------------------------------------------------


def default_key_arn(args: argparse.Namespace) -> str:
    """The KMS key to read when none is named: the stack's (`--stack`, through ATTESTATION_KEY_ARN),
    ATTESTATION_KEY_ARN's, on the local AWS the local stack's. Raises BadInput when there is none."""
    from promoter_cli.cmd_local import is_loopback_endpoint

    if arn := settings.attestation_key_arn():
        return arn
    if getattr(args, "stack", None):
        raise BadInput(
            f"stack {args.stack!r} has no output {settings.OUTPUT_ATTESTATION_KEY} "
            "(deployed before attestations?): pass --key"
        )
    if is_loopback_endpoint(os.environ.get("AWS_ENDPOINT_URL", "")):
        return settings.LOCAL_ATTESTATION_KEY_ALIAS
    raise BadInput(
        "no attestation key: pass --stack NAME (its AttestationPublicKeyArn), --key, "
        f"or set {settings.ATTESTATION_KEY_ENV}"
    )


def break_glass_attestor() -> Attestor | None:
    """The attestor of a person's promotion (no rule's configuration; a signature that fails lets it
    go on unattested, said at ERROR): on the key ATTESTATION_KEY_ARN names; else, against the local
    AWS, on the local stack's key (found by its alias, or made under it as `promoter local` makes
    it), the key `promoter attestation key` and `verify` read there; else None, and the engine says
    once that promotions are not attested (a real stack's key comes from ATTESTATION_KEY_ARN)."""
    from promoter.workflows.attest import Attestor, attestor_from_environment
    from promoter_cli.cmd_local import is_loopback_endpoint

    if settings.attestation_key_arn() or not is_loopback_endpoint(os.environ.get("AWS_ENDPOINT_URL", "")):
        return attestor_from_environment(None, required=False)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from local_aws.stack_route import attestation_key
    from promoter.aws.attestations import KmsAttestationSigner

    try:
        key = attestation_key(boto3.client("kms"))
    except (BotoCoreError, ClientError) as exc:
        LOG.error("the local attestation key could not be read or made: not attested (%s)", exc)
        return None
    return Attestor(KmsAttestationSigner(key), key, config_bytes=None, required=False)


def kms_public_key(key_arn: str) -> str:
    """PEM of a KMS key (GetPublicKey). Raises AttestationError (KMS refused: the key named)."""
    from promoter.aws.attestations import KmsAttestationSigner

    return KmsAttestationSigner(key_arn).public_key_pem()


def public_key_pem(args: argparse.Namespace, given: str | None = None) -> tuple[str, str]:
    """(PEM, where it came from) for `given` (`--key`: a PEM file, PEM text, or a KMS key ARN, alias
    or id, also as cosign's `awskms:///<ARN>`) or the default key. Raises BadInput,
    AttestationError (KMS)."""
    if given is None:
        arn = default_key_arn(args)
        return kms_public_key(arn), arn
    if given.lstrip().startswith(PEM_BEGIN):
        return given, "the PEM given"
    path = Path(given)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"--key {given}: {exc}") from exc
    key = given.removeprefix(AWS_KMS_KEY_PREFIX)  # cosign's spelling of a KMS key works too
    if KMS_KEY_REFERENCE.fullmatch(key):
        return kms_public_key(key), key
    raise BadInput(f"--key {given!r} is neither a PEM file, PEM text nor a KMS key ARN")


def cmd_key(args: argparse.Namespace) -> int:
    from promoter.exceptions import AttestationError

    try:
        pem, _ = public_key_pem(args, args.key_arn) if args.key_arn else public_key_pem(args)
    except BadInput as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    except AttestationError as exc:
        return _kms_failed(exc)
    sys.stdout.write(pem)
    return EXIT_OK


# --- verify -------------------------------------------------------------------------------------


def parse_image(image: str) -> ImageReference:
    """IMAGE as `REPOSITORY:TAG`, `REPOSITORY@DIGEST`, or either behind a registry host (ECR's, or a
    `host:port` / `localhost` one). A first path segment that is no such host is part of the
    repository (ECR names may hold dots and slashes). Raises BadInput."""
    rest, at, digest = image.partition("@")
    first, slash, remainder = rest.partition("/")
    registry = None
    if slash and (ECR_HOST.fullmatch(first) or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    head, slash, name = rest.rpartition("/")
    name, colon, tag_text = name.partition(":")
    repository, tag = head + slash + name, (tag_text if colon else None)
    if at and not is_digest(digest):
        raise BadInput(f"{image!r}: {digest!r} is not a sha256 digest")
    if not at and tag is None:
        raise BadInput(f"{image!r} names no tag and no digest: give REPOSITORY:TAG or REPOSITORY@DIGEST")
    if not is_valid_repository(repository):
        raise BadInput(f"{image!r}: {repository!r} is not a valid ECR repository name")
    if tag is not None and not is_valid_tag(tag):
        raise BadInput(f"{image!r}: {tag!r} is not a valid ECR tag")
    return ImageReference(registry, repository, tag, digest if at else None)


def registry_for(reference: ImageReference) -> EcrRegistry:
    """The registry IMAGE lives in: the caller's, or the account and region its ECR host names.
    Raises BadInput for a non-ECR host that is not the caller's registry."""
    from promoter.aws.registry import EcrRegistry, make_ecr_client

    own = EcrRegistry(make_ecr_client())
    if reference.registry is None or reference.registry == own.registry_host():
        return own
    host = ECR_HOST.fullmatch(reference.registry)
    if host is None:
        raise BadInput(f"registry {reference.registry!r} is not ECR's nor this one's ({own.registry_host()})")
    from promoter.aws.remote import TargetRegistries

    return TargetRegistries().registry_for(host["account"], host["region"], None)


@dataclass(frozen=True)
class Checked:
    """One attestation of ours found for the image: verified, or the reason it is refused."""

    digest: str
    annotations: dict[str, str]
    verified: vsa.VerifiedAttestation | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        head = {"attestation": self.digest, "verified": self.verified is not None}
        if self.verified is None:
            return {**head, "reason": self.reason, "annotations": self.annotations}
        return {**head, **self.verified.as_dict()}


def check_attestation(
    registry: EcrRegistry,
    repository: str,
    digest: str,
    notes: dict[str, str],
    pem: str,
    subject_digest: str,
    resource: str,
    rule: str | None,
) -> Checked:
    """Reads one referrer (its manifest, then its bundle layer) and verifies it. Never raises for
    what the registry holds: a refusal is the Checked's reason."""
    from promoter.exceptions import RegistryError

    try:
        manifest = registry.get_manifests(repository, [digest]).get(digest)
        if manifest is None:
            return Checked(digest, notes, reason="listed as a referrer but its manifest is not there")
        document = manifest.document
        layers = [d for d in document.get("layers") or () if isinstance(d, dict)]
        if document.get("artifactType") != vsa.BUNDLE_MEDIA_TYPE or len(layers) != 1:
            return Checked(digest, notes, reason="not a Sigstore bundle manifest (artifactType, one layer)")
        subject = document.get("subject") if isinstance(document.get("subject"), dict) else {}
        if subject.get("digest") != subject_digest:
            return Checked(digest, notes, reason=f"its manifest's subject is {subject.get('digest')}")
        bundle = registry.read_blob(repository, str(layers[0].get("digest")), MAX_BUNDLE_BYTES)
    except RegistryError as exc:
        return Checked(digest, notes, reason=f"cannot be read: {exc}")
    try:
        verified = vsa.verify_bundle(bundle, pem, subject_digest=subject_digest, resource=resource, rule=rule)
    except vsa.AttestationRefusedError as exc:
        return Checked(digest, notes, reason=exc.reason)
    return Checked(digest, notes, verified=verified)


def cmd_verify(args: argparse.Namespace) -> int:
    from promoter.exceptions import (
        AttestationError,
        ImageNotFoundError,
        PromoterError,
        RepositoryNotFoundError,
    )

    try:
        reference = parse_image(args.image)
        pem, key_source = public_key_pem(args, args.key)
        vsa.load_public_key(pem)  # a key that cannot verify is bad input, said before any read
        registry = registry_for(reference)
    except BadInput as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    except ValueError as exc:
        return _fail(EXIT_BAD_INPUT, f"--key: {exc}")
    except AttestationError as exc:
        return _kms_failed(exc)
    repository = reference.repository
    try:
        host = registry.registry_host()
        digest = reference.digest
        if digest is None:
            found = registry.get_manifests(repository, [str(reference.tag)])
            if not found:
                return _fail(EXIT_NOT_ALL_PROMOTED, f"no image {repository}:{reference.tag}")
            digest = next(iter(found.values())).digest
        resource = f"{host}/{repository}" + (f":{reference.tag}" if reference.tag else "")
        listed = registry.referrer_annotations(repository, digest, vsa.BUNDLE_MEDIA_TYPE)
        # A promotion copies the source's referrers, our attestations of earlier hops among them
        # (`app-staging`'s in `app-prod`): they attest another repository, are listed as carried
        # and never checked against this one. One with no target is checked (fails closed).
        carried = {
            d: notes
            for d, notes in listed.items()
            if vsa.is_our_attestation(notes) and is_carried(notes, f"{host}/{repository}")
        }
        target = resource if reference.tag else None
        ours = {
            d: notes
            for d, notes in listed.items()
            if d not in carried and vsa.is_our_attestation(notes, args.rule, target)
        }
        checked = [
            check_attestation(registry, repository, d, notes, pem, digest, resource, args.rule)
            for d, notes in sorted(ours.items())
        ]
    except (RepositoryNotFoundError, ImageNotFoundError) as exc:
        return _fail(EXIT_NOT_ALL_PROMOTED, str(exc))
    except PromoterError as exc:
        return _fail(EXIT_NOT_ALL_PROMOTED, f"cannot read the attestations of {args.image}: {exc}")
    holds = bool(checked) and all(c.verified is not None for c in checked)
    if args.json:
        print_json(
            {
                "image": args.image,
                "digest": digest,
                "resource": resource,
                "rule": args.rule,
                "key": key_source,
                "verified": holds,
                "attestations": [c.as_dict() for c in checked],
                "carried": [carried_as_dict(d, notes) for d, notes in sorted(carried.items())],
            }
        )
    else:
        _print_checked(checked, f"{repository}@{short_digest(digest)}", key_source)
        _print_carried(carried, f"{repository}@{short_digest(digest)}")
    if not checked:
        others = sorted(
            {
                n.get(vsa.ANNOTATION_TARGET, "?")
                for d, n in listed.items()
                if vsa.is_our_attestation(n) and d not in carried
            }
        )
        wanted = " ".join(part for part in (resource, f"rule {args.rule}" if args.rule else "") if part)
        elsewhere = f" (there are attestations for: {', '.join(others)})" if others else ""
        return _fail(
            EXIT_NOT_ALL_PROMOTED, f"no attestation of the promoter for {wanted} @ {digest}{elsewhere}"
        )
    if not holds:
        failed = sum(1 for c in checked if c.verified is None)
        return _fail(
            EXIT_NOT_ALL_PROMOTED, f"{failed} of {len(checked)} attestation(s) of {args.image} do not hold"
        )
    return EXIT_OK


def is_carried(annotations: dict[str, str], repository: str) -> bool:
    """True when one of our attestations names a target in another repository than `repository`
    (`registry/repository`): an earlier hop's, copied along with the image's referrers."""
    target = annotations.get(vsa.ANNOTATION_TARGET)
    return bool(target) and vsa.resource_repository(str(target)) != repository


def carried_as_dict(digest: str, annotations: dict[str, str]) -> dict[str, Any]:
    """A carried attestation as `verify --json` lists it (read from its annotations, not checked)."""
    return {
        "attestation": digest,
        "carried_from": annotations.get(vsa.ANNOTATION_TARGET),
        "rule": annotations.get(vsa.ANNOTATION_RULE),
    }


def _print_carried(carried: dict[str, dict[str, str]], image: str) -> None:
    for digest, notes in sorted(carried.items()):
        sys.stdout.write(
            f"carried  attestation {digest} of {image}: carried from "
            f"{printable(str(notes.get(vsa.ANNOTATION_TARGET)))} (another repository's; not checked)\n"
        )


def _print_checked(checked: list[Checked], image: str, key_source: str) -> None:
    out = sys.stdout
    for item in checked:
        if item.verified is None:
            out.write(f"REFUSED  attestation {item.digest} of {image}: {printable(str(item.reason))}\n")
            continue
        v = item.verified
        out.write(f"verified attestation {item.digest} of {image}\n")
        rows = [
            ("target", v.resource_uri),
            ("rule", v.rule or ""),
            ("gates", ", ".join(v.gates) or "none"),
            ("requester", v.requester or "unknown"),
            ("trigger", v.trigger or ""),
            ("source", v.source or ""),
            ("time", v.time_verified),
            ("policy", f"{v.policy_digest} ({v.policy_uri})"),
            ("levels", ", ".join(v.verified_levels)),
            ("inputs", str(len(v.input_attestations))),
            ("verifier", f"{v.verifier_id} {' '.join(f'{k} {x}' for k, x in v.verifier_version.items())}"),
            ("key", key_source),
        ]
        for label, value in rows:
            out.write(f"  {label:<10} {printable(value)}\n")


def _kms_failed(exc: Exception) -> int:
    """KMS could not give the key: exit 1 naming it; no region, no credentials or a local AWS not
    started go up to `main`, which says them as for every command (exit 2)."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError

    if isinstance(exc.__cause__, NoRegionError | NoCredentialsError | EndpointConnectionError):
        raise exc.__cause__
    return _fail(EXIT_NOT_ALL_PROMOTED, str(exc))


def _fail(code: int, message: str) -> int:
    print(f"promoter: {printable(message)}", file=sys.stderr)
    return code
