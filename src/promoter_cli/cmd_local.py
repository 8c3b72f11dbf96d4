"""`promoter local`: the local AWS in the foreground (ECR on a real registry, moto for the rest).

When it is ready it prints how to use it: the environment to paste into another shell, the
registry host and the `skopeo` lines to log in and push. The rest of the CLI needs only the first
of those variables: with `AWS_ENDPOINT_URL` on this machine it fills in the region and keys the
local AWS accepts (`local_aws_defaults`).

With `--config PATH` it creates the repositories the rules name and runs the promoter as the stack
does (`local_promoter`): a push into a source repository is promoted by itself, a request on the
promotion bus is answered, and each handled event prints a line. `--no-promoter` only creates the
repositories (events then wait for `promoter handle` or `promoter reconcile`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import os
import shlex
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from promoter_cli.cmd_local_credentials import EXAMPLE_PRINCIPAL, add_credentials_command
from promoter_cli.cmd_local_scans import add_scan_findings_command

if TYPE_CHECKING:
    from promoter.model.config import PromotionConfig
    from promoter.model.patterns import NamePattern

DEFAULT_PORT = 4566
SAMPLE_IMAGE_TAG = "latest"
SAMPLE_IMAGE_PLATFORMS = ("linux/amd64", "linux/arm64")
SAMPLE_LAYER_BYTES = 64 * 1024
READY_LINE = "local AWS ready at {endpoint}"
# Where the promoter keeps its staged configuration and log under `--data DIR`.
PROMOTER_DATA_DIR = "promoter"
# Credentials the local AWS accepts (any key id is its default account; a 12-digit key id is that
# account, see local_aws.accounts): what the CLI uses when the user chose none.
LOCAL_ACCESS_KEY_ID = "local"
LOCAL_SECRET_ACCESS_KEY = "local"
# Environment variables that say the user chose credentials: then the CLI adds none.
CREDENTIAL_ENV_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "local",
        help="run the local AWS (ECR + /v2 registry + DynamoDB/SQS/EventBridge/STS) on one port",
        description="Serve everything the promoter talks to on one loopback port; point boto3 at it "
        "with AWS_ENDPOINT_URL. Stops cleanly on Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (0 = any free; {DEFAULT_PORT})")
    parser.add_argument("--data", type=Path, default=None, help="keep state here (default: a temp dir)")
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="OP=N",
        help="limit an ECR operation to N calls/s, e.g. PutImage=10 (repeatable)",
    )
    parser.add_argument(
        "--latency",
        default=None,
        metavar="aws|OP=MS[,...]",
        help="add AWS-like latency in the server: 'aws' (published figures, see BENCHMARKS.md), "
        "OP=MS items (PutImage=200, ECR=50, Registry.PATCH=80, DynamoDB=10, blob_mbps=85), or "
        "'aws,OP=MS' to override the preset",
    )
    parser.add_argument("--account", default=None, help="account id (default 123456789012)")
    parser.add_argument("--region", default=None, help="default region (default us-east-1)")
    parser.add_argument(
        "--config",
        default=None,
        metavar="PATH",
        help="create the repositories this promotion configuration names exactly (sources and targets "
        "in the home registry), so you can push right away, and run the promoter on them as the stack "
        "does (EventBridge -> SQS -> the Lambda handler): pushes and requests are promoted by themselves",
    )
    parser.add_argument(
        "--create",
        action="append",
        default=[],
        metavar="NAME[,NAME...]",
        help="with --config: also create these repositories, each one a rule's pattern stands for "
        "(e.g. team/api for a source team/*, release/team/api for a target release/{repository}); "
        "repeatable",
    )
    parser.add_argument(
        "--no-promoter",
        action="store_true",
        help="with --config: create the repositories only; run no promoter (events then wait for "
        "`promoter handle` or `promoter reconcile`)",
    )
    parser.set_defaults(func=run_local)
    add_credentials_command(parser)
    add_scan_findings_command(parser)

    sample = sub.add_parser(
        "sample-image",
        help="write a small multi-platform image as an OCI layout directory, to push with skopeo",
        description="Builds a small image (one layer per platform, an index over them) and writes it "
        "as an OCI image layout: `skopeo copy --all oci:DIR:TAG docker://...` pushes it. No Docker needed.",
    )
    sample.add_argument("directory", type=Path, metavar="DIR", help="where to write the layout (created)")
    sample.add_argument(
        "--tag", default=SAMPLE_IMAGE_TAG, help=f"the tag inside the layout (default {SAMPLE_IMAGE_TAG})"
    )
    sample.add_argument(
        "--platforms",
        default=",".join(SAMPLE_IMAGE_PLATFORMS),
        metavar="OS/ARCH,...",
        help=f"default {','.join(SAMPLE_IMAGE_PLATFORMS)}",
    )
    sample.set_defaults(func=cmd_sample_image)


def is_loopback_endpoint(url: str) -> bool:
    """Whether an endpoint URL points at this machine (127.0.0.0/8, ::1, localhost)."""
    host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_aws_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to add so that `AWS_ENDPOINT_URL=http://127.0.0.1:PORT` alone reaches the local
    AWS: its region unless one is set (env or the default profile's config file), the local keys
    unless credentials are chosen in the environment. Nothing for any other endpoint: real AWS
    keeps botocore's own resolution and errors."""
    endpoint = environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint or not is_loopback_endpoint(endpoint):
        return {}
    added: dict[str, str] = {}
    if not (environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION") or _configured_region()):
        from local_aws import DEFAULT_REGION

        added["AWS_DEFAULT_REGION"] = DEFAULT_REGION
    if not any(environ.get(name) for name in CREDENTIAL_ENV_VARS):
        added["AWS_ACCESS_KEY_ID"] = LOCAL_ACCESS_KEY_ID
        added["AWS_SECRET_ACCESS_KEY"] = LOCAL_SECRET_ACCESS_KEY
    return added


def aws_region_default(environ: Mapping[str, str]) -> dict[str, str]:
    """botocore reads the region from AWS_DEFAULT_REGION only, never AWS_REGION, which the AWS CLI
    v2, most SDKs and CI credential actions set: the CLI takes AWS_REGION alone as the region."""
    if environ.get("AWS_REGION") and not environ.get("AWS_DEFAULT_REGION"):
        return {"AWS_DEFAULT_REGION": environ["AWS_REGION"]}
    return {}


def _configured_region() -> str | None:
    """The region of the default profile in ~/.aws/config (files only: no network call)."""
    import botocore.session

    return botocore.session.Session().get_config_variable("region")


def usage_lines(endpoint: str, registry_host: str, region: str, password: str) -> list[str]:
    """What to paste to use the local AWS: the environment, the registry login and a push."""
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": region,  # the AWS CLI v2 and most SDKs
        "AWS_DEFAULT_REGION": region,  # boto3 (botocore reads only this one)
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
    }
    return [
        "# In another shell, for the promoter CLI, boto3 and the AWS CLI:",
        "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()),
        f"# The registry (ECR's /v2 API over plain HTTP; user AWS, GetAuthorizationToken's password): "
        f"{registry_host}",
        f"skopeo login --tls-verify=false -u AWS -p {shlex.quote(password)} {registry_host}",
        f"skopeo copy --all --dest-tls-verify=false oci:IMAGE_DIR:TAG docker://{registry_host}/REPOSITORY:TAG",
        "# These keys act as the account's administrator; to act as another principal:",
        f"#   promoter local credentials --principal {EXAMPLE_PRINCIPAL}",
    ]


@dataclass(frozen=True)
class RepositoryPattern:
    """A home-registry repository a rule names by a pattern, not a name: `promoter local` cannot
    create what it stands for, only the names asked for with `--create`."""

    glob: str  # the source's pattern as a glob, or a target template's
    rule: str
    role: str  # "source" or "target"
    pattern: NamePattern  # matches the names it stands for
    image_tag_mutability: str


def repository_patterns(config: PromotionConfig) -> list[RepositoryPattern]:
    """The sources and targets of `config` in the home registry that are patterns or templates."""
    from promoter.model.config import MUTABLE, template_to_glob
    from promoter.model.patterns import NamePattern

    found: list[RepositoryPattern] = []
    for rule in config.rules:
        source = rule.source
        if not source.repository_pattern.is_exact:
            found.append(
                RepositoryPattern(
                    source.repository_glob, rule.name, "source", source.repository_pattern, MUTABLE
                )
            )
        for target in rule.targets:
            if target.registry is None and "{" in target.repository:
                glob = template_to_glob(target.repository, source.repository_glob, "*")
                found.append(
                    RepositoryPattern(
                        glob, rule.name, "target", NamePattern(glob), target.image_tag_mutability
                    )
                )
    return found


def parse_create(values: list[str], config: PromotionConfig) -> dict[str, str]:
    """`--create` values (comma-separated, repeatable) -> {name: tag mutability}. Raises ValueError
    naming a repository that no pattern of the configuration stands for."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    patterns = repository_patterns(config)
    wanted: dict[str, str] = {}
    for name in names:
        covering = [p for p in patterns if p.pattern.matches(name)]
        if not covering:
            globs = ", ".join(sorted({p.glob for p in patterns})) or "none"
            raise ValueError(
                f"--create {name}: no rule's repository pattern stands for it (the configuration's "
                f"patterns: {globs})"
            )
        wanted[name] = covering[0].image_tag_mutability
    return wanted


def pattern_lines(config: PromotionConfig, created: list[str], endpoint: str) -> list[str]:
    """For each repository pattern: the names created for it, or how to create the ones it stands for."""
    lines = []
    for p in repository_patterns(config):
        mine = [name for name in created if p.pattern.matches(name)]
        lines.append(
            f"#   {p.glob} ({p.role} of rule {p.rule}): "
            + (f"created {', '.join(mine)}" if mine else "a pattern: nothing created for it")
        )
    if lines:
        example = f"aws --endpoint-url {endpoint} ecr create-repository --repository-name NAME"
        lines = [
            "# Patterns in the configuration (create the repositories they stand for before pushing: "
            "restart with --create NAME[,NAME...], or now: " + example + "):",
            *lines,
        ]
    return lines


def create_configured_repositories(
    config: PromotionConfig,
    endpoint: str,
    region: str,
    extra: Mapping[str, str] | None = None,
    account: str | None = None,
) -> list[str]:
    """Creates the repositories `config` names exactly in the home registry (sources and targets
    without templates; another account's or region's targets are left alone) and the `extra` ones
    (name: tag mutability, from `--create`); returns their names. With `account`, the protected
    targets get the stack's protection (promoter_cli.local_protection)."""
    import boto3

    wanted: dict[str, str] = dict(extra or {})
    for rule in config.rules:
        if rule.source.repository_pattern.is_exact:
            wanted.setdefault(rule.source.repository, "MUTABLE")
        for target in rule.targets:
            if target.registry is None and "{" not in target.repository:
                wanted[target.repository] = target.image_tag_mutability
    ecr = boto3.client(
        "ecr",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
    )
    for name, mutability in sorted(wanted.items()):
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=name, imageTagMutability=mutability)
    if account is not None:
        from promoter_cli.local_protection import protect_local_repositories

        protect_local_repositories(ecr, config, account)
    return sorted(wanted)


def port_in_use_message(port: int) -> str:
    """What to say when the port is taken: which one, and a port that is free now (or 0: any)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    return f"port {port} is in use: pass --port {free} (free now), or --port 0 for any free port"


def run_local(args: argparse.Namespace) -> int:
    from local_aws import DEFAULT_ACCOUNT, DEFAULT_REGION, LocalAws, RegistryNotInstalledError
    from local_aws.faults import parse_rate
    from local_aws.latency import parse_latency
    from local_aws.registry import RegistryStartError

    try:
        rates = dict(parse_rate(spec) for spec in args.rate)
        latency = parse_latency(args.latency) if args.latency is not None else None
    except ValueError as exc:
        print(f"promoter local: {exc}", file=sys.stderr)
        return 2
    account = args.account or DEFAULT_ACCOUNT
    if not (len(account) == 12 and account.isdigit()):
        print(f"promoter local: --account must be 12 digits, got {account!r}", file=sys.stderr)
        return 2
    if args.no_promoter and args.config is None:
        print(
            "promoter local: --no-promoter goes with --config (without it no promoter runs)", file=sys.stderr
        )
        return 2
    from promoter.exceptions import ConfigError
    from promoter.model.config import load_config

    if args.create and args.config is None:
        print("promoter local: --create goes with --config (its rules' patterns say what may be created)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        config = load_config(args.config) if args.config is not None else None
    except ConfigError as exc:
        print(f"promoter local: invalid configuration {args.config}: {exc}", file=sys.stderr)
        return 2
    try:
        extra = parse_create(args.create, config) if config is not None else {}
    except ValueError as exc:
        print(f"promoter local: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    local = LocalAws(
        port=args.port,
        data_dir=args.data,
        rates=rates,
        account=account,
        region=args.region or DEFAULT_REGION,
        latency=latency,
        persist=args.data is not None,  # the tables, queues and buses too, as the images
    )
    try:
        local.start()
    except RegistryNotInstalledError as exc:
        print(f"promoter local: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"promoter local: {port_in_use_message(args.port)}", file=sys.stderr)
        else:
            print(f"promoter local: could not start: {exc}", file=sys.stderr)
        return 1
    except RegistryStartError as exc:
        print(f"promoter local: could not start: {exc}", file=sys.stderr)
        return 1
    terminal = sys.stdout  # the promoter sends the handler's own output to its log file
    promoter = None
    try:
        created = (
            create_configured_repositories(config, local.endpoint, local.region, extra, local.account)
            if config is not None
            else []
        )
        lines = usage_lines(local.endpoint, local.registry_host, local.region, local.password)
        if config is not None:
            lines.append(f"# Created from {args.config}: {', '.join(created) or 'no repository'}")
            lines += pattern_lines(config, created, local.endpoint)
        if config is not None and not args.no_promoter:
            from promoter_cli.local_promoter import LocalPromoter

            work_dir = args.data / PROMOTER_DATA_DIR if args.data is not None else None
            promoter = LocalPromoter(local, config, work_dir, terminal)
            promoter.start()
            lines += promoter.ready_lines()
        lines.append("# Ctrl-C stops it.")
        print(READY_LINE.format(endpoint=local.endpoint), file=terminal, flush=True)
        print("\n".join(lines), file=terminal, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        if promoter is not None:
            promoter.stop()
        local.stop()
    return 0


def cmd_sample_image(args: argparse.Namespace) -> int:
    """Writes the sample image's OCI layout; prints its digest and how to push it."""
    from local_aws import images

    platforms = tuple(p.strip() for p in args.platforms.split(",") if p.strip())
    if not platforms or any(p.count("/") != 1 for p in platforms):
        print(
            f"promoter sample-image: --platforms takes OS/ARCH,..., got {args.platforms!r}", file=sys.stderr
        )
        return 2
    if args.directory.exists() and any(args.directory.iterdir()):
        print(f"promoter sample-image: {args.directory} exists and is not empty", file=sys.stderr)
        return 2
    image = images.multi_arch(platforms, layer_size=SAMPLE_LAYER_BYTES, attestations=False)
    images.write_oci_layout(args.directory, image, tag=args.tag)
    print(f"wrote {args.directory} ({len(platforms)} platform(s)), digest {image.digest}")
    # The local AWS's registry is its endpoint's host:port (`promoter local` prints both).
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    host = urlsplit(endpoint).netloc if endpoint and is_loopback_endpoint(endpoint) else "HOST"
    print(
        f"push it: skopeo copy --all --dest-tls-verify=false oci:{args.directory}:{args.tag} "
        f"docker://{host}/REPOSITORY:TAG"
    )
    return 0
