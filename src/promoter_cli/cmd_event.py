"""`promoter event push | request`: the EventBridge events the promoter receives, without writing JSON.

    promoter event push app-dev:sha-1a2b3c4 > push.json && promoter plan push.json
    promoter event request app-staging:v1.4.0 --rule staging-to-prod | promoter handle -

`push` prints ECR's `ECR Image Action` (PUSH, SUCCESS) event; the digest is read from the registry
(DescribeImages) unless `--digest` gives it. `request` prints an `Image Promotion Requested` event
as `promoter request` would post it; a request by tag stays by tag (the promoter resolves it when
it handles the request, as on AWS). Exit codes: 0 printed, 1 the image is not in the registry (or
the registry could not be read), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from promoter import settings
from promoter.model.events import ECR_IMAGE_ACTION, ECR_SOURCE, PUSH_ACTION, SUCCESS_RESULT
from promoter.model.templates import is_digest
from promoter_cli.cmd_engine import EXIT_BAD_INPUT, EXIT_NOT_ALL_PROMOTED, EXIT_OK
from promoter_cli.cmd_release import parse_image, requester
from promoter_cli.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `event` with its `push` and `request` kinds."""
    event = sub.add_parser(
        "event", help="print an EventBridge event (a push or a promotion request) for plan/handle/tests"
    )
    kinds = event.add_subparsers(dest="kind", required=True, metavar="KIND")

    push = kinds.add_parser("push", help="ECR's PUSH event for an image tag")
    push.add_argument("image", metavar="REPO:TAG")
    push.add_argument("--digest", metavar="D", help="the pushed digest (default: read from the registry)")
    push.set_defaults(func=cmd_event_push)

    request = kinds.add_parser("request", help="an 'Image Promotion Requested' event")
    request.add_argument("image", metavar="REPO:TAG|REPO@DIGEST")
    request.add_argument("--rule", metavar="R", help="only this request rule (default: every match)")
    request.add_argument(
        "--rule-source",
        action="store_true",
        help="the rule's own source (<source>.rule.<R>), for a rule with requesters:; needs --rule",
    )
    request.add_argument("--reason", default="", metavar="TEXT", help="why (kept in the history)")
    request.add_argument(
        "--requested-by",
        default=None,
        metavar="WHO",
        help="default: $PROMOTER_REQUESTED_BY, else CI actor or user@host (printed offline, no STS call: "
        "give your principal ARN for an approval gate to know you, as promoter request does by default)",
    )
    request.set_defaults(func=cmd_event_request)


def envelope(detail_type: str, source: str, detail: dict[str, Any], account: str = "") -> dict[str, Any]:
    """An EventBridge event as a rule's target receives it (a fresh id, now, this region)."""
    import boto3

    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": boto3.session.Session().region_name or "",
        "resources": [],
        "detail": detail,
    }


def cmd_event_push(args: argparse.Namespace) -> int:
    try:
        repository, tag, by_digest = parse_image(args.image)
    except ValueError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    if by_digest:
        return _fail(EXIT_BAD_INPUT, "a push event is for a tag: give REPO:TAG (and --digest D)")
    if args.digest is not None and not is_digest(args.digest):
        return _fail(EXIT_BAD_INPUT, f"--digest {args.digest!r} is not a sha256 digest")
    detail: dict[str, Any] = {
        "result": SUCCESS_RESULT,
        "repository-name": repository,
        "image-digest": args.digest,
        "action-type": PUSH_ACTION,
        "image-tag": tag,
    }
    account = ""
    if args.digest is None:
        found = _describe_tag(repository, tag)
        if isinstance(found, str):
            return _fail(EXIT_NOT_ALL_PROMOTED, found)
        detail["image-digest"] = found["imageDigest"]
        if found.get("imageManifestMediaType"):
            detail["manifest-media-type"] = found["imageManifestMediaType"]
        account = found.get("registryId", "")
    print_json(envelope(ECR_IMAGE_ACTION, ECR_SOURCE, detail, account))
    return EXIT_OK


def cmd_event_request(args: argparse.Namespace) -> int:
    if args.rule_source and not args.rule:
        return _fail(EXIT_BAD_INPUT, "--rule-source needs --rule R: the source names the rule")
    try:
        repository, tag, digest = parse_image(args.image)
    except ValueError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    detail: dict[str, Any] = {
        "repository-name": repository,
        "requested-by": requester(args.requested_by),
        "reason": args.reason,
        "metadata": {},
    }
    detail["image-digest" if digest else "image-tag"] = digest or tag
    if args.rule:
        detail["rule"] = args.rule
    source = settings.rule_request_source(args.rule) if args.rule_source else settings.request_event_source()
    print_json(envelope(settings.REQUEST_DETAIL_TYPE, source, detail))
    return EXIT_OK


def _describe_tag(repository: str, tag: str) -> dict[str, Any] | str:
    """The tag's image details (DescribeImages), or why they could not be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    from promoter.aws.registry import make_ecr_client

    try:
        details = make_ecr_client().describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])[
            "imageDetails"
        ]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return f"{repository}:{tag} is not in the registry ({code})"
        return f"cannot read {repository}:{tag}: {exc}"
    except BotoCoreError as exc:
        return f"cannot read {repository}:{tag}: {exc}"
    if not details:
        return f"{repository}:{tag} is not in the registry"
    return details[0]


def _fail(code: int, message: str) -> int:
    print(f"promoter: {message}", file=sys.stderr)
    return code
