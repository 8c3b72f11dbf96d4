"""The ECR JSON API with ECR's semantics, on top of the Store (metadata) and the registry (bytes).

Each operation takes the request's parsed JSON and returns the response dict, or raises one of
`errors`. Manifest puts from the JSON API and from `/v2/` share `put_manifest`, so both paths obey
the same tag rules and both emit the PUSH event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_aws import creation_templates as rct
from local_aws import errors as e
from local_aws import policy
from local_aws.blob_host import BlobHost
from local_aws.events import DETAIL_TYPE_IMAGE_ACTION, EventSink, image_action_detail
from local_aws.manifests import (
    DIGEST_RE,
    INDEX_MEDIA_TYPES,
    REPOSITORY_RE,
    SUPPORTED_MEDIA_TYPES,
    TAG_RE,
    ManifestError,
    ParsedManifest,
    convert_manifest,
    parse_manifest,
    sha256_digest,
    wildcard_match,
)
from local_aws.principals import parse_principal, root_of
from local_aws.pull_times import (
    MAX_EXCLUSIONS,
    exclusions,
    last_pull,
    principal_arn,
    record_pull,
    save_exclusions,
)
from local_aws.registry import RegistryPool, RegistryProcess
from local_aws.scanning import (
    DETAIL_TYPE_IMAGE_SCAN,
    REGISTRY_SCANNING_SETTING,
    SCAN_COMPLETE,
    load_configuration,
    parse_scanning_configuration,
    scan_event_detail,
    scans_on_push,
    severity_counts,
)
from local_aws.store import ACTIVATING, ACTIVE, ARCHIVED, ImageRecord, RepositoryRecord, Scope, Store, now

LOG = logging.getLogger(__name__)
MIB = 1024 * 1024
# ECR quotas page: parts 5-10 MiB except the last; the service model caps a part at 20 MiB.
MIN_PART_BYTES = 5 * MIB
MAX_PART_BYTES = 20 * MIB
RETURNED_PART_SIZE = 10 * MIB
MAX_LAYER_DIGESTS_PER_CHECK = 100
MAX_IMAGE_IDS = 100
# The largest manifest ECR takes (service model: imageManifest, 1-4194304), on both APIs.
MAX_MANIFEST_BYTES = 4 * MIB
TOKEN_TTL_SECONDS = 12 * 3600
MUTABILITIES = ("MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION")
# The account settings ECR names, with the values the current service model accepts (older
# documents also list CLAIR and V1, which ECR has retired) and what an account starts with.
ACCOUNT_SETTINGS = {
    "BASIC_SCAN_TYPE_VERSION": ("AWS_NATIVE",),
    "REGISTRY_POLICY_SCOPE": ("V2",),
    "BLOB_MOUNTING": ("ENABLED", "DISABLED"),
}
ACCOUNT_SETTING_DEFAULTS = {
    "BASIC_SCAN_TYPE_VERSION": "AWS_NATIVE",
    "REGISTRY_POLICY_SCOPE": "V2",
    "BLOB_MOUNTING": "DISABLED",
}
# The ECR actions a repository policy decides here (issue 18): what writes or deletes images, and
# policy changes. Reads are not checked (a cross-account read works as before).
POLICY_CHECKED_ACTIONS = frozenset(
    {
        "PutImage",
        "InitiateLayerUpload",
        "UploadLayerPart",
        "CompleteLayerUpload",
        "BatchDeleteImage",
        "SetRepositoryPolicy",
        "DeleteRepositoryPolicy",
    }
)
REPOSITORY_POLICY_SETTING = "repository-policy/"  # + repository name, in the store's settings
# ECR's limit on a repository policy's text (SetRepositoryPolicy, policyText: 0-10240).
MAX_POLICY_TEXT_CHARS = 10240
# Pages (service model): DescribeImages, ListImages, DescribeRepositories and
# DescribeImageScanFindings answer 100 items without maxResults and take 1-1000 with it;
# ListImageReferrers answers 20 and takes 1-50.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
REFERRERS_DEFAULT_PAGE_SIZE = 20
REFERRERS_MAX_PAGE_SIZE = 50
STORAGE_CLASSES = ("STANDARD", "ARCHIVE")
STATUS_FILTERS = (ACTIVE, ARCHIVED, ACTIVATING, "ANY")
# How long a restore from the archive stays ACTIVATING. ECR says "within 20 minutes"; the local
# one takes a minute unless the control API sets another period (tests set 0 or finish restores).
DEFAULT_RESTORE_SECONDS = 60.0
# The JSON API's pushes into a repository that may not exist yet: a CREATE_ON_PUSH creation template
# creates it (`EcrService.create_on_push`); `/v2/` does the same for a manifest PUT and an upload.
CREATE_ON_PUSH_OPERATIONS = frozenset({"PutImage", "InitiateLayerUpload"})


@dataclass
class _Upload:
    scope: Scope
    repo: str
    location: str
    received: int = 0
    last_part_size: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class PutResult:
    """What a manifest put stored; `created` is False when it was already there (no-op)."""

    image: ImageRecord
    tag: str | None
    created: bool


class EcrService:
    """All ECR operations; `call(op, scope, params)` is the single entry from the HTTP layer."""

    def __init__(
        self,
        store: Store,
        registries: RegistryPool,
        events: EventSink,
        endpoint: Callable[[Scope], str],
        password: str,
        blob_host: BlobHost,
    ) -> None:
        self.store = store
        self.registries = registries
        self.events = events
        self._endpoint = endpoint
        self.password = password
        # Where blob downloads go (a pre-signed URL on another host, as ECR's go to S3).
        self.blob_host = blob_host
        self.restore_seconds = DEFAULT_RESTORE_SECONDS
        self._uploads: dict[str, _Upload] = {}
        self._uploads_lock = threading.Lock()
        self._repo_locks: dict[tuple[Scope, str], threading.Lock] = {}
        self._repo_locks_lock = threading.Lock()

    # ---------------------------------------------------------------------------- dispatch
    def call(
        self, op: str, scope: Scope, params: dict[str, Any], principal: policy.Principal | None = None
    ) -> dict[str, Any]:
        """`principal` is the caller (None: the administrator of `scope`'s account); a repository
        policy decides its image writes (`authorize`)."""
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise e.UnknownOperationException(f"Operation {op} is not supported by the local ECR")
        caller = principal or root_of(scope.account)
        if op == "GetAuthorizationToken":
            return handler(scope, params, caller)
        if op in CREATE_ON_PUSH_OPERATIONS and isinstance(params.get("repositoryName"), str):
            self.create_on_push(scope, params["repositoryName"])
        if isinstance(params.get("repositoryName"), str):
            self.authorize(scope, params["repositoryName"], op, caller)
        if op == "BatchGetImage":  # a pull records its time unless the caller is excluded
            return handler(scope, params, caller)
        return handler(scope, params)

    @staticmethod
    def supports(op: str) -> bool:
        return hasattr(EcrService, f"op_{op}")

    # ---------------------------------------------------------------------------- helpers
    def endpoint_for(self, scope: Scope) -> str:
        """The registry endpoint (`/v2/`, download URLs) of one account and region."""
        return self._endpoint(scope)

    def registry_for(self, scope: Scope) -> RegistryProcess:
        """The docker-registry holding this account and region's blobs and manifests."""
        return self.registries.get(scope.account, scope.region)

    def password_for(self, scope: Scope) -> str:
        """The registry password of one account and region (a token opens only its own registry)."""
        if (scope.account, scope.region) == self.registries.home:
            return self.password
        scope_id = f"{scope.account}/{scope.region}".encode()
        return hmac.new(self.password.encode(), scope_id, hashlib.sha256).hexdigest()

    def token_password(self, scope: Scope, principal: policy.Principal) -> str:
        """The registry password GetAuthorizationToken hands `principal` for `scope`: the
        registry's own password for the account's administrator (as before principals existed),
        else the principal's ARN and a MAC over it, so `/v2/` knows who pushes."""
        if principal == root_of(scope.account):
            return self.password_for(scope)
        arn = base64.b32encode(principal.arn.encode()).decode().rstrip("=")
        return f"{arn}.{self._token_mac(scope, principal.arn)}"

    def principal_of_password(self, scope: Scope, password: str) -> policy.Principal | None:
        """Who holds a registry password of `scope` (see `token_password`); None if it is none."""
        if hmac.compare_digest(password, self.password_for(scope)):
            return root_of(scope.account)
        encoded, _, mac = password.partition(".")
        try:
            arn = base64.b32decode(encoded + "=" * (-len(encoded) % 8)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not hmac.compare_digest(mac, self._token_mac(scope, arn)):
            return None
        try:
            return parse_principal(arn)
        except ValueError:
            return None

    def _token_mac(self, scope: Scope, arn: str) -> str:
        return hmac.new(self.password_for(scope).encode(), arn.encode(), hashlib.sha256).hexdigest()

    def authorize(self, scope: Scope, repo: str, action: str, principal: policy.Principal) -> None:
        """Raises AccessDeniedException unless `principal` may do `action` (an ECR operation name)
        on the repository, by its repository policy (`local_aws.policy.allows`). Only the actions
        in POLICY_CHECKED_ACTIONS are checked; a repository that does not exist is left to the
        operation to report."""
        if action not in POLICY_CHECKED_ACTIONS:
            return
        document = self.store.setting(scope, REPOSITORY_POLICY_SETTING + repo, "")
        arn = f"arn:aws:ecr:{scope.region}:{scope.account}:repository/{repo}"
        if policy.allows(document or None, principal, f"ecr:{action}", arn, scope.account):
            return
        why = "with an explicit deny in a resource-based policy"
        if policy.evaluate(document or None, principal, f"ecr:{action}", arn) is not policy.Decision.DENY:
            why = "because no resource-based policy allows the ecr:" + action + " action"
        raise e.AccessDeniedException(
            f"User: {principal.session_arn or principal.arn} is not authorized to perform: "
            f"ecr:{action} on resource: {arn} {why}"
        )

    def repo_lock(self, scope: Scope, repo: str) -> threading.Lock:
        with self._repo_locks_lock:
            return self._repo_locks.setdefault((scope, repo), threading.Lock())

    def require_repo(self, scope: Scope, params: dict[str, Any]) -> RepositoryRecord:
        name = _required_str(params, "repositoryName")
        _check_registry_id(scope, params)
        rec = self.store.repository(scope, name)
        if rec is None:
            raise e.RepositoryNotFoundException(
                f"The repository with name '{name}' does not exist in the registry with id '{scope.account}'"
            )
        return rec

    def repository_json(self, scope: Scope, rec: RepositoryRecord) -> dict[str, Any]:
        host = self.endpoint_for(scope).split("://", 1)[-1]
        out: dict[str, Any] = {
            "repositoryArn": f"arn:aws:ecr:{scope.region}:{scope.account}:repository/{rec.name}",
            "registryId": scope.account,
            "repositoryName": rec.name,
            "repositoryUri": f"{host}/{rec.name}",
            "createdAt": rec.created_at,
            "imageTagMutability": rec.mutability,
            "imageScanningConfiguration": {"scanOnPush": rec.scan_on_push},
            "encryptionConfiguration": {"encryptionType": rec.encryption},
        }
        if rec.filters:
            out["imageTagMutabilityExclusionFilters"] = [
                {"filterType": "WILDCARD", "filter": f} for f in rec.filters
            ]
        return out

    @staticmethod
    def tag_is_immutable(rec: RepositoryRecord, tag: str) -> bool:
        """ECR's four modes; exclusion filters are wildcards (`*`), not regexes."""
        matched = any(wildcard_match(f, tag) for f in rec.filters)
        if rec.mutability == "IMMUTABLE":
            return True
        if rec.mutability == "IMMUTABLE_WITH_EXCLUSION":
            return not matched
        if rec.mutability == "MUTABLE_WITH_EXCLUSION":
            return matched
        return False

    # ---------------------------------------------------------------------------- repositories
    def op_CreateRepository(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        name = _required_str(p, "repositoryName")
        _check_registry_id(scope, p)
        if not (2 <= len(name) <= 256) or not REPOSITORY_RE.match(name):
            raise e.InvalidParameterException(
                f"Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular "
                f"expression '{REPOSITORY_RE.pattern}' and have length between 2 and 256' (got {name!r})"
            )
        mutability, filters = _mutability(p)
        scan = p.get("imageScanningConfiguration") or {}
        enc = (p.get("encryptionConfiguration") or {}).get("encryptionType", "AES256")
        rec = RepositoryRecord(
            name=name,
            created_at=now(),
            mutability=mutability,
            filters=filters,
            scan_on_push=bool(scan.get("scanOnPush", False)),
            encryption=str(enc),
        )
        tags = p.get("tags") or []
        if not isinstance(tags, list) or not all(
            isinstance(t, dict) and isinstance(t.get("Key"), str) for t in tags
        ):
            raise e.InvalidParameterException("Invalid parameter at 'tags': a list of {Key, Value}")
        if not self.store.add_repository(scope, rec):
            raise e.RepositoryAlreadyExistsException(
                f"The repository with name '{name}' already exists in the registry with id '{scope.account}'"
            )
        if tags:  # tagged on create, as ListTagsForResource then reads them
            self.store.set_setting(scope, rct.RESOURCE_TAGS_SETTING + name, json.dumps(tags))
        return {"repository": self.repository_json(scope, rec)}

    # ---------------------------------------------------------------------------- creation templates
    def _templates(self, scope: Scope) -> dict[str, dict[str, Any]]:
        return rct.load(self.store.setting(scope, rct.TEMPLATES_SETTING, ""))

    def _save_template(self, scope: Scope, p: dict[str, Any], *, new: bool) -> dict[str, Any]:
        prefix = rct.prefix_of(p)
        with self.repo_lock(scope, ""):
            templates = self._templates(scope)
            old = templates.get(prefix)
            if new and old is not None:
                raise e.TemplateAlreadyExistsException(
                    f"The repository creation template '{prefix}' already exists"
                )
            if not new and old is None:
                raise e.TemplateNotFoundException(
                    f"The repository creation template '{prefix}' does not exist"
                )
            template = rct.template_fields(p, old)
            if new or "imageTagMutability" in p:
                mutability, filters = _mutability(p)
                template["imageTagMutability"] = mutability
                template["imageTagMutabilityExclusionFilters"] = [
                    {"filterType": "WILDCARD", "filter": f} for f in filters
                ]
            stamp = now()
            template.update(prefix=prefix, updatedAt=stamp, createdAt=(old or {}).get("createdAt", stamp))
            templates[prefix] = template
            self.store.set_setting(scope, rct.TEMPLATES_SETTING, json.dumps(templates))
        return {"registryId": scope.account, "repositoryCreationTemplate": template}

    def op_CreateRepositoryCreationTemplate(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        return self._save_template(scope, p, new=True)

    def op_UpdateRepositoryCreationTemplate(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        return self._save_template(scope, p, new=False)

    def op_DeleteRepositoryCreationTemplate(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        prefix = rct.prefix_of(p)
        with self.repo_lock(scope, ""):
            templates = self._templates(scope)
            template = templates.pop(prefix, None)
            if template is None:
                raise e.TemplateNotFoundException(
                    f"The repository creation template '{prefix}' does not exist"
                )
            self.store.set_setting(scope, rct.TEMPLATES_SETTING, json.dumps(templates))
        return {"registryId": scope.account, "repositoryCreationTemplate": template}

    def op_DescribeRepositoryCreationTemplates(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        templates = self._templates(scope)
        prefixes = p.get("prefixes")
        if prefixes is not None:
            wanted = [rct.prefix_of({"prefix": x}) for x in prefixes]
            found = [templates[x] for x in wanted if x in templates]
        else:
            found = [templates[x] for x in sorted(templates)]
        page, token = _paginate(found, p)
        out: dict[str, Any] = {"registryId": scope.account, "repositoryCreationTemplates": page}
        if token:
            out["nextToken"] = token
        return out

    def create_on_push(self, scope: Scope, name: str) -> RepositoryRecord | None:
        """Creates `name` with the settings of the CREATE_ON_PUSH template that covers it, when it
        does not exist and one does (`local_aws.creation_templates`); the repository, or None."""
        existing = self.store.repository(scope, name)
        if existing is not None or not (2 <= len(name) <= 256) or not REPOSITORY_RE.match(name):
            return existing
        template = rct.template_for(self._templates(scope), name, rct.CREATE_ON_PUSH)
        if template is None:
            return None
        filters = tuple(f["filter"] for f in template.get("imageTagMutabilityExclusionFilters") or ())
        rec = RepositoryRecord(
            name=name,
            created_at=now(),
            mutability=template.get("imageTagMutability", "MUTABLE"),
            filters=filters,
            scan_on_push=False,
            encryption=str((template.get("encryptionConfiguration") or {}).get("encryptionType", "AES256")),
        )
        if self.store.add_repository(scope, rec):  # else a concurrent push created it first
            for setting, key in (
                (REPOSITORY_POLICY_SETTING, "repositoryPolicy"),
                (rct.LIFECYCLE_POLICY_SETTING, "lifecyclePolicy"),
            ):
                if template.get(key):
                    self.store.set_setting(scope, setting + name, template[key])
            if template.get("resourceTags"):
                self.store.set_setting(
                    scope, rct.RESOURCE_TAGS_SETTING + name, json.dumps(template["resourceTags"])
                )
        return self.store.repository(scope, name)

    def op_GetLifecyclePolicy(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        text = self.store.setting(scope, rct.LIFECYCLE_POLICY_SETTING + rec.name, "")
        if not text:
            raise e.LifecyclePolicyNotFoundException(
                f"Lifecycle policy does not exist for the repository with name '{rec.name}' in the registry "
                f"with id '{scope.account}'"
            )
        return {"registryId": scope.account, "repositoryName": rec.name, "lifecyclePolicyText": text}

    def op_ListTagsForResource(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        arn = _required_str(p, "resourceArn")
        prefix = f"arn:aws:ecr:{scope.region}:{scope.account}:repository/"
        name = arn.removeprefix(prefix)
        if not arn.startswith(prefix) or self.store.repository(scope, name) is None:
            raise e.RepositoryNotFoundException(f"The repository '{arn}' does not exist")
        return {"tags": json.loads(self.store.setting(scope, rct.RESOURCE_TAGS_SETTING + name, "") or "[]")}

    def op_DescribeRepositories(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        _check_registry_id(scope, p)
        names = p.get("repositoryNames")
        if names is not None:
            _no_paging_with(p, "repositoryNames")
            if not isinstance(names, list) or not names:
                raise e.InvalidParameterException("repositoryNames must be a non-empty list")
            recs = []
            for name in names:
                rec = self.store.repository(scope, str(name))
                if rec is None:
                    raise e.RepositoryNotFoundException(
                        f"The repository with name '{name}' does not exist in the registry with id "
                        f"'{scope.account}'"
                    )
                recs.append(rec)
        else:
            recs = self.store.repositories(scope)
        page, token = _paginate(recs, p)
        out: dict[str, Any] = {"repositories": [self.repository_json(scope, r) for r in page]}
        if token:
            out["nextToken"] = token
        return out

    def op_DeleteRepository(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        with self.repo_lock(scope, rec.name):
            images = self.store.images(scope, rec.name)
            if images and not p.get("force"):
                raise e.RepositoryNotEmptyException(
                    f"The repository with name '{rec.name}' in registry with id '{scope.account}' cannot be "
                    "deleted because it still contains images"
                )
            for img in images:
                self.registry_for(scope).delete_manifest(rec.name, img.digest)
            self.store.delete_repository(scope, rec.name)
            self.store.set_setting(scope, REPOSITORY_POLICY_SETTING + rec.name, "")
        return {"repository": self.repository_json(scope, rec)}

    def op_SetRepositoryPolicy(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        text = _required_str(p, "policyText")
        if len(text) > MAX_POLICY_TEXT_CHARS:
            raise e.InvalidParameterException("Invalid parameter at 'policyText': longer than 10240")
        try:
            policy.evaluate(text, root_of(scope.account), "ecr:PutImage", "arn:aws:ecr:::repository/x")
        except policy.PolicyError as exc:
            raise e.InvalidParameterException(f"Invalid parameter at 'PolicyText': {exc}") from exc
        self.store.set_setting(scope, REPOSITORY_POLICY_SETTING + rec.name, text)
        return {"registryId": scope.account, "repositoryName": rec.name, "policyText": text}

    def op_GetRepositoryPolicy(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        text = self.store.setting(scope, REPOSITORY_POLICY_SETTING + rec.name, "")
        if not text:
            raise e.RepositoryPolicyNotFoundException(
                f"Repository policy does not exist for the repository with name '{rec.name}' in the "
                f"registry with id '{scope.account}'"
            )
        return {"registryId": scope.account, "repositoryName": rec.name, "policyText": text}

    def op_DeleteRepositoryPolicy(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        found = self.op_GetRepositoryPolicy(scope, p)
        self.store.set_setting(scope, REPOSITORY_POLICY_SETTING + found["repositoryName"], "")
        return found

    def op_PutImageTagMutability(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        mutability, filters = _mutability(p, required=True)
        self.store.set_mutability(scope, rec.name, mutability, filters)
        out: dict[str, Any] = {
            "registryId": scope.account,
            "repositoryName": rec.name,
            "imageTagMutability": mutability,
        }
        if filters:
            out["imageTagMutabilityExclusionFilters"] = [
                {"filterType": "WILDCARD", "filter": f} for f in filters
            ]
        return out

    # ---------------------------------------------------------------------------- images
    def op_PutImage(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        manifest = _required_str(p, "imageManifest")
        tag = _optional_str(p, "imageTag")
        digest = _optional_str(p, "imageDigest")
        media_type = _optional_str(p, "imageManifestMediaType")
        if tag is not None and not TAG_RE.match(tag):
            raise e.InvalidParameterException(f"Invalid parameter at 'imageTag': {tag!r} is not a valid tag")
        result = self.put_manifest(
            scope,
            rec,
            manifest.encode("utf-8"),
            tag=tag,
            given_digest=digest,
            media_type=media_type,
            from_registry_api=False,
        )
        image_id: dict[str, str] = {"imageDigest": result.image.digest}
        if tag:
            image_id["imageTag"] = tag
        return {
            "image": {
                "registryId": scope.account,
                "repositoryName": rec.name,
                "imageId": image_id,
                "imageManifest": manifest,
                "imageManifestMediaType": result.image.media_type,
            }
        }

    def put_manifest(
        self,
        scope: Scope,
        rec: RepositoryRecord,
        raw: bytes,
        *,
        tag: str | None,
        given_digest: str | None,
        media_type: str | None,
        from_registry_api: bool,
    ) -> PutResult:
        """ECR's PutImage rules in ECR's order; the registry validates blobs and children."""
        if len(raw) > MAX_MANIFEST_BYTES:
            raise manifest_too_large()
        parsed = self._parse(raw, given_digest, media_type)
        with self.repo_lock(scope, rec.name):
            rec = self.store.repository(scope, rec.name) or rec
            existing = self.store.image(scope, rec.name, parsed.digest)
            current = self.store.tag_digest(scope, rec.name, tag) if tag else None
            # Re-pushing an archived image restores it at once (ECR user guide, "Restoring").
            archived = existing is not None and existing.status != ACTIVE
            if not archived and existing is not None and (tag is None or current == parsed.digest):
                if from_registry_api:
                    return PutResult(existing, tag, created=False)
                what = f"tag '{tag}'" if tag else f"digest '{parsed.digest}'"
                raise e.ImageAlreadyExistsException(
                    f"Image with digest '{parsed.digest}' and {what} already exists in the repository with "
                    f"name '{rec.name}' in registry with id '{scope.account}'"
                )
            if tag and current is not None and current != parsed.digest and self.tag_is_immutable(rec, tag):
                raise e.ImageTagAlreadyExistsException(
                    f"The image tag '{tag}' already exists in the '{rec.name}' repository and cannot be "
                    "overwritten because the tag is immutable."
                )
            if parsed.children:
                missing = [c for c in parsed.children if self.store.image(scope, rec.name, c) is None]
                if missing:
                    raise e.ReferencedImagesNotFoundException(
                        f"Some of the referenced images were not found: {', '.join(missing)}"
                    )
            if archived:
                self.store.activate(scope, rec.name, parsed.digest, now())
            if existing is None:
                self._store_in_registry(scope, rec.name, parsed, raw)
            image = ImageRecord(
                repo=rec.name,
                digest=parsed.digest,
                manifest=raw,
                media_type=parsed.media_type,
                config_media_type=parsed.config_media_type,
                artifact_type=parsed.artifact_type,
                subject=parsed.subject,
                size=self._image_size(scope, rec.name, parsed),
                pushed_at=now(),
                tags=(),
            )
            self.store.put_image(scope, image, parsed.blobs + parsed.children)
            if tag:
                self.store.set_tag(scope, rec.name, tag, parsed.digest)
            stored = self.store.image(scope, rec.name, parsed.digest)
        assert stored is not None
        self.events.emit(
            scope,
            DETAIL_TYPE_IMAGE_ACTION,
            image_action_detail(
                rec.name, parsed.digest, "PUSH", tag, parsed.media_type, parsed.config_media_type
            ),
        )
        if parsed.subject:  # an OCI 1.1 referrer: ECR announces it apart (events/ecr-referrer-action.json)
            self.events.emit(
                scope, DETAIL_TYPE_REFERRER_ACTION, referrer_action_detail(rec.name, stored, "PUSH")
            )
        # Basic scanning scans images, not the lists and indexes over them.
        if parsed.media_type not in INDEX_MEDIA_TYPES and scans_on_push(
            self.scanning_configuration(scope), rec.name, rec.scan_on_push
        ):
            self.complete_scan(scope, rec.name, parsed.digest)
        return PutResult(stored, tag, created=True)

    def _image_size(self, scope: Scope, repo: str, parsed: ParsedManifest) -> int:
        """imageSizeInBytes: an image's config and layers; a list's or index's largest child
        (service model, ImageDetail), the children being in the repository already."""
        if not parsed.children:
            return parsed.layer_sizes or parsed.size
        sizes = [child.size for c in parsed.children if (child := self.store.image(scope, repo, c))]
        return max(sizes, default=0)

    @staticmethod
    def _parse(raw: bytes, given_digest: str | None, media_type: str | None) -> ParsedManifest:
        if media_type is not None and media_type not in SUPPORTED_MEDIA_TYPES:
            raise e.InvalidParameterException(
                f"Invalid parameter at 'imageManifestMediaType': unsupported media type '{media_type}'"
            )
        try:
            parsed = parse_manifest(raw, media_type)
        except ManifestError as exc:
            if given_digest and not DIGEST_RE.match(given_digest):
                raise e.InvalidParameterException(
                    f"Invalid parameter at 'imageDigest': {given_digest!r}"
                ) from exc
            raise e.InvalidParameterException(str(exc)) from exc
        if given_digest is not None and given_digest != parsed.digest:
            raise e.ImageDigestDoesNotMatchException(
                f"Provided digest '{given_digest}' does not match the digest of the image manifest "
                f"'{parsed.digest}'"
            )
        return parsed

    def _store_in_registry(self, scope: Scope, repo: str, parsed: ParsedManifest, raw: bytes) -> None:
        """Stores the manifest in the registry behind. Its refusals are answered in ECR's words:
        the registry's own text is logged, never handed to the client (ECR is not that server)."""
        resp = self.registry_for(scope).put_manifest(repo, parsed.digest, raw, parsed.media_type)
        if resp.status in (200, 201):
            return
        codes = resp.error_codes()
        LOG.info("the registry refused %s@%s: %s %r", repo, parsed.digest, resp.status, resp.body[:500])
        if "MANIFEST_BLOB_UNKNOWN" in codes or "BLOB_UNKNOWN" in codes:
            if parsed.media_type in INDEX_MEDIA_TYPES:
                raise e.ReferencedImagesNotFoundException(
                    f"Some of the referenced images were not found: {', '.join(parsed.children)}"
                )
            raise e.LayersNotFoundException(
                f"Layers with digests {list(parsed.blobs)} required for pushing image into repository "
                f"with name '{repo}' in registry with id '{scope.account}' were not found"
            )
        if "DIGEST_INVALID" in codes:
            raise e.ImageDigestDoesNotMatchException(
                f"The digest of the image manifest does not match '{parsed.digest}'"
            )
        if "MANIFEST_INVALID" in codes or "MANIFEST_UNVERIFIED" in codes or "TAG_INVALID" in codes:
            raise e.InvalidParameterException(
                "Invalid parameter at 'ImageManifest': the image manifest is invalid"
            )
        LOG.error("the registry answered %s to %s@%s: %r", resp.status, repo, parsed.digest, resp.body[:500])
        raise e.ServerException(f"The registry could not store the image manifest (status {resp.status})")

    def resolve(
        self, scope: Scope, repo: str, image_id: Any
    ) -> tuple[ImageRecord | None, dict[str, str] | None]:
        """An imageId -> (image, None) or (None, failure dict) as BatchGetImage/BatchDeleteImage report."""
        if not isinstance(image_id, dict):
            return None, _failure({}, "MissingDigestAndTag", "Missing image digest and tag")
        digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
        if not digest and not tag:
            return None, _failure(image_id, "MissingDigestAndTag", "Missing image digest and tag")
        if digest and (not isinstance(digest, str) or not DIGEST_RE.match(digest)):
            return None, _failure(
                image_id,
                "InvalidImageDigest",
                "Invalid request parameters: image digest "
                "should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'",
            )
        if tag and (not isinstance(tag, str) or not TAG_RE.match(tag)):
            return None, _failure(image_id, "InvalidImageTag", "Invalid request parameters: image tag")
        if tag:
            tagged = self.store.tag_digest(scope, repo, tag)
            if tagged is None:
                return None, _failure(image_id, "ImageNotFound", "Requested image not found")
            if digest and digest != tagged:
                return None, _failure(
                    image_id,
                    "ImageTagDoesNotMatchDigest",
                    "Invalid request parameters: image tag does not match digest",
                )
            digest = tagged
        image = self.store.image(scope, repo, digest)
        if image is None:
            return None, _failure(image_id, "ImageNotFound", "Requested image not found")
        return image, None

    def op_BatchGetImage(
        self, scope: Scope, p: dict[str, Any], principal: policy.Principal | None = None
    ) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        ids = _image_ids(p)
        accepted = p.get("acceptedMediaTypes")
        if accepted is not None and (not isinstance(accepted, list) or not accepted):
            raise e.InvalidParameterException("acceptedMediaTypes must be a non-empty list")
        images, failures, seen = [], [], set()
        for image_id in ids:
            key = (
                (image_id.get("imageDigest"), image_id.get("imageTag"))
                if isinstance(image_id, dict)
                else None
            )
            if key in seen:
                continue
            seen.add(key)
            image, failure = self.resolve(scope, rec.name, image_id)
            if failure:
                failures.append(failure)
                continue
            assert image is not None
            if image.status != ACTIVE:
                failures.append(_failure(image_id, "ImageNotFound", archived_reason(image)))
                continue
            served = self.negotiate(image, accepted, by_tag=not image_id.get("imageDigest"))
            if served is None:
                failures.append(_failure(image_id, "ImageNotFound", unaccepted_reason(image, accepted or [])))
                continue
            raw, media_type = served
            record_pull(self.store, scope, rec.name, image.digest, principal or root_of(scope.account))
            echo = {"imageDigest": sha256_digest(raw)}
            if image_id.get("imageTag"):
                echo["imageTag"] = image_id["imageTag"]
            images.append(
                {
                    "registryId": scope.account,
                    "repositoryName": rec.name,
                    "imageId": echo,
                    "imageManifest": raw.decode("utf-8"),
                    "imageManifestMediaType": media_type,
                }
            )
        return {"images": images, "failures": failures}

    @staticmethod
    def negotiate(
        image: ImageRecord, accepted: list[str] | None, *, by_tag: bool
    ) -> tuple[bytes, str] | None:
        """The manifest as a client accepting `accepted` gets it: as stored when accepted (or when
        the client names no type), converted between Docker v2 and OCI when asked for by tag and
        ECR can convert it (new bytes, new digest), else None: by digest ECR never converts."""
        if not accepted or image.media_type in accepted:
            return image.manifest, image.media_type
        return convert_manifest(image.manifest, accepted, image.media_type) if by_tag else None

    def op_DescribeImages(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        status, image_status = _image_filter(p)
        if p.get("imageIds") is not None:
            _no_paging_with(p, "imageIds")
            images = []
            for image_id in _image_ids(p):
                image, failure = self.resolve(scope, rec.name, image_id)
                if failure:
                    raise e.ImageNotFoundException(
                        f"The image with imageId {image_id} does not exist within the repository with name "
                        f"'{rec.name}' in the registry with id '{scope.account}'"
                    )
                if image not in images:
                    images.append(image)
        else:
            images = [
                i
                for i in self.store.images(scope, rec.name)
                if (status == "ANY" or (status == "TAGGED") == bool(i.tags))
                and image_status in ("ANY", i.status)
            ]
        page, token = _paginate(images, p)
        out: dict[str, Any] = {"imageDetails": [self._detail(scope, i) for i in page]}
        if token:
            out["nextToken"] = token
        return out

    def _detail(self, scope: Scope, image: ImageRecord) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "registryId": scope.account,
            "repositoryName": image.repo,
            "imageDigest": image.digest,
            "imageSizeInBytes": image.size,
            "imagePushedAt": image.pushed_at,
            "imageManifestMediaType": image.media_type,
            "imageStatus": image.status,
        }
        if image.last_archived_at is not None:
            detail["lastArchivedAt"] = image.last_archived_at
        if image.last_activated_at is not None:
            detail["lastActivatedAt"] = image.last_activated_at
        pulled = last_pull(self.store, scope, image.repo, image.digest)
        if pulled is not None:
            detail["lastRecordedPullTime"] = pulled
        if image.tags:
            detail["imageTags"] = list(image.tags)
        if image.config_media_type:
            detail["artifactMediaType"] = image.config_media_type
        if image.subject:
            detail["subjectManifestDigest"] = image.subject
        if self.store.findings(scope, image.repo, image.digest) is not None:
            detail["imageScanStatus"] = dict(SCAN_COMPLETE)
        return detail

    def op_ListImages(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        status, image_status = _image_filter(p)
        ids: list[dict[str, str]] = []
        for image in self.store.images(scope, rec.name):
            if image_status not in ("ANY", image.status):
                continue
            if image.tags and status in ("TAGGED", "ANY"):
                ids.extend({"imageDigest": image.digest, "imageTag": t} for t in image.tags)
            elif not image.tags and status in ("UNTAGGED", "ANY"):
                ids.append({"imageDigest": image.digest})
        page, token = _paginate(ids, p)
        out: dict[str, Any] = {"imageIds": page}
        if token:
            out["nextToken"] = token
        return out

    def op_BatchDeleteImage(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        """By tag: untag, and (ECR API reference) delete the image when that was its last tag.

        By digest: delete the image and all its tags, unless an index in the repository lists it.
        """
        rec = self.require_repo(scope, p)
        deleted, failures, events = [], [], []
        with self.repo_lock(scope, rec.name):
            for image_id in _image_ids(p):
                image, failure = self.resolve(scope, rec.name, image_id)
                if failure:
                    failures.append(failure)
                    continue
                assert image is not None
                tag = image_id.get("imageTag")
                remove_image = not tag or set(image.tags) == {tag}
                if remove_image and self._listed_by_index(scope, rec.name, image.digest):
                    failures.append(
                        _failure(
                            image_id,
                            "ImageReferencedByManifestList",
                            "Requested image is referenced by a manifest list",
                        )
                    )
                    continue
                if tag:
                    self.store.remove_tag(scope, rec.name, tag)
                    events.append((image, tag))
                if remove_image:
                    if not tag:
                        events.extend((image, t) for t in image.tags)
                        if not image.tags:
                            events.append((image, None))
                    self.store.remove_image(scope, rec.name, image.digest)
                    self.registry_for(scope).delete_manifest(rec.name, image.digest)
                echo = {"imageDigest": image.digest}
                if tag:
                    echo["imageTag"] = tag
                deleted.append(echo)
        for image, tag in events:
            self.events.emit(
                scope,
                DETAIL_TYPE_IMAGE_ACTION,
                image_action_detail(
                    rec.name, image.digest, "DELETE", tag, image.media_type, image.config_media_type
                ),
            )
        return {"imageIds": deleted, "failures": failures}

    def untag(self, scope: Scope, repo: str, tag: str) -> None:
        """Removes one tag and nothing else (the registry API's DELETE of a manifest by tag): the
        image stays, untagged if that was its last tag. Emits the DELETE event for the tag."""
        with self.repo_lock(scope, repo):
            digest = self.store.tag_digest(scope, repo, tag)
            image = self.store.image(scope, repo, digest) if digest else None
            if image is None:
                return
            self.store.remove_tag(scope, repo, tag)
        self.events.emit(
            scope,
            DETAIL_TYPE_IMAGE_ACTION,
            image_action_detail(repo, image.digest, "DELETE", tag, image.media_type, image.config_media_type),
        )

    def _listed_by_index(self, scope: Scope, repo: str, digest: str) -> bool:
        return any(
            image.media_type in INDEX_MEDIA_TYPES and digest in _children(image.manifest)
            for image in self.store.images(scope, repo)
        )

    def op_ListImageReferrers(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        subject = (p.get("subjectId") or {}).get("imageDigest")
        if not isinstance(subject, str) or not DIGEST_RE.match(subject):
            raise e.InvalidParameterException("subjectId.imageDigest must be a sha256 digest")
        wanted = (p.get("filter") or {}).get("artifactTypes")
        # Without an artifactStatus filter only ACTIVE referrers are listed (service model).
        status_filter = (p.get("filter") or {}).get("artifactStatus") or ACTIVE
        if status_filter not in STATUS_FILTERS:
            raise e.InvalidParameterException(f"Invalid artifactStatus {status_filter!r}")
        refs = []
        for ref in self.referrer_descriptors(scope, rec.name, subject, wanted or ()):
            image = self.store.image(scope, rec.name, ref["digest"])
            status = image.status if image else ACTIVE
            if status_filter in ("ANY", status):
                refs.append({**ref, "artifactStatus": status})
        page, token = _paginate(refs, p, REFERRERS_DEFAULT_PAGE_SIZE, REFERRERS_MAX_PAGE_SIZE)
        out: dict[str, Any] = {"referrers": page}
        if token:
            out["nextToken"] = token
        return out

    def referrer_descriptors(
        self, scope: Scope, repo: str, subject: str, artifact_types: tuple[str, ...] | list[str] = ()
    ) -> list[dict[str, Any]]:
        """OCI descriptors of the manifests whose `subject` is `subject`, oldest first.

        One answer for ListImageReferrers and for the registry's `GET /v2/<name>/referrers/<digest>`:
        `artifactType` is the manifest's own, else its config's media type (OCI 1.1); an empty
        `artifact_types` keeps every referrer.
        """
        refs = []
        for image in self.store.referrers(scope, repo, subject):
            artifact_type = image.artifact_type or image.config_media_type
            if artifact_types and artifact_type not in artifact_types:
                continue
            ref: dict[str, Any] = {
                "mediaType": image.media_type,
                "digest": image.digest,
                "size": len(image.manifest),
            }
            if artifact_type:
                ref["artifactType"] = artifact_type
            annotations = _annotations(image.manifest)
            if annotations:
                ref["annotations"] = annotations
            refs.append(ref)
        return refs

    # ---------------------------------------------------------------------------- layers
    def op_BatchCheckLayerAvailability(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        digests = p.get("layerDigests")
        if not isinstance(digests, list) or not 1 <= len(digests) <= MAX_LAYER_DIGESTS_PER_CHECK:
            raise e.InvalidParameterException(
                f"layerDigests must hold 1 to {MAX_LAYER_DIGESTS_PER_CHECK} digests"
            )
        layers, failures = [], []
        for digest in digests:
            if not isinstance(digest, str) or not DIGEST_RE.match(digest):
                failures.append(
                    {
                        "layerDigest": str(digest),
                        "failureCode": "InvalidLayerDigest",
                        "failureReason": "Invalid layer digest",
                    }
                )
                continue
            resp = self.registry_for(scope).request("HEAD", f"/v2/{rec.name}/blobs/{digest}")
            layer: dict[str, Any] = {"layerDigest": digest}
            statuses = self.store.blob_statuses(scope, rec.name, digest)
            if resp.status == 200 and statuses and ACTIVE not in statuses:
                # Only archived images reference it: present, but not to be pulled or mounted.
                layer["layerAvailability"] = ARCHIVED
                layer["layerSize"] = int(resp.headers.get("content-length", 0))
            elif resp.status == 200:
                layer["layerAvailability"] = "AVAILABLE"
                layer["layerSize"] = int(resp.headers.get("content-length", 0))
                layer["mediaType"] = "application/vnd.docker.container.image.rootfs.diff+x-gzip"
            else:
                layer["layerAvailability"] = "UNAVAILABLE"
            layers.append(layer)
        return {"layers": layers, "failures": failures}

    def op_GetDownloadUrlForLayer(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        digest = _required_str(p, "layerDigest")
        if not DIGEST_RE.match(digest):
            raise e.InvalidParameterException(f"Invalid parameter at 'layerDigest': {digest!r}")
        if not self.registry_for(scope).has_blob(rec.name, digest):
            raise e.LayersNotFoundException(f"The specified layer {digest} does not exist in '{rec.name}'")
        if not self.store.blob_referenced(scope, rec.name, digest):
            raise e.LayerInaccessibleException(
                "The specified layer is not available because it is not associated with an image. "
                "Unassociated image layers may be cleaned up at any time."
            )
        if ACTIVE not in self.store.blob_statuses(scope, rec.name, digest):
            raise e.LayerInaccessibleException(
                f"The specified layer {digest} belongs to archived images only; restore one to download it"
            )
        return {"downloadUrl": self.blob_host.presigned_url(scope, rec.name, digest), "layerDigest": digest}

    def op_InitiateLayerUpload(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        resp = self.registry_for(scope).request("POST", f"/v2/{rec.name}/blobs/uploads/")
        if resp.status != 202:
            raise e.ServerException(f"registry could not open an upload: {resp.status}")
        upload_id = str(uuid.uuid4())
        with self._uploads_lock:
            self._uploads[upload_id] = _Upload(scope=scope, repo=rec.name, location=resp.headers["location"])
        return {"uploadId": upload_id, "partSize": RETURNED_PART_SIZE}

    def _upload(self, scope: Scope, repo: str, p: dict[str, Any]) -> tuple[str, _Upload]:
        upload_id = _required_str(p, "uploadId")
        with self._uploads_lock:
            upload = self._uploads.get(upload_id)
        if upload is None or upload.scope != scope or upload.repo != repo:
            raise e.UploadNotFoundException(f"Upload with id '{upload_id}' is not found in '{repo}'")
        return upload_id, upload

    def op_UploadLayerPart(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        upload_id, upload = self._upload(scope, rec.name, p)
        first, last = p.get("partFirstByte"), p.get("partLastByte")
        if not isinstance(first, int) or not isinstance(last, int):
            raise e.InvalidParameterException("partFirstByte and partLastByte are required integers")
        try:
            blob = base64.b64decode(_required_str(p, "layerPartBlob"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise e.InvalidParameterException("layerPartBlob is not valid base64") from exc
        with upload.lock:

            def bad(reason: str) -> e.InvalidLayerPartException:
                return e.InvalidLayerPartException(
                    reason, upload_id=upload_id, last_valid_byte=upload.received - 1
                )

            if first != upload.received:
                raise bad(
                    f"The part's first byte {first} is not consecutive to the last byte received "
                    f"{upload.received - 1}"
                )
            if last - first + 1 != len(blob) or not blob:
                raise bad(f"The byte range {first}-{last} does not match the part's {len(blob)} bytes")
            if len(blob) > MAX_PART_BYTES:
                raise bad(f"A layer part must be at most {MAX_PART_BYTES} bytes")
            if 0 <= upload.last_part_size < MIN_PART_BYTES:
                raise bad(
                    f"The previous part ({upload.last_part_size} bytes) was smaller than "
                    f"{MIN_PART_BYTES} bytes, which only the last part may be"
                )
            resp = self.registry_for(scope).request(
                "PATCH",
                upload.location,
                blob,
                {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{first}-{last}",
                    "Content-Length": str(len(blob)),
                },
            )
            if resp.status != 202:
                raise e.ServerException(f"registry rejected the part: {resp.status} {resp.body[:200]!r}")
            upload.location = resp.headers.get("location", upload.location)
            upload.received += len(blob)
            upload.last_part_size = len(blob)
            received = upload.received
        return {
            "registryId": scope.account,
            "repositoryName": rec.name,
            "uploadId": upload_id,
            "lastByteReceived": received - 1,
        }

    def op_CompleteLayerUpload(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        upload_id, upload = self._upload(scope, rec.name, p)
        digests = p.get("layerDigests")
        if not isinstance(digests, list) or len(digests) != 1 or not isinstance(digests[0], str):
            raise e.InvalidParameterException("layerDigests must hold exactly one digest")
        digest = digests[0]
        with upload.lock:
            if upload.received == 0:
                raise e.EmptyUploadException(f"The upload {upload_id} contains no layer parts")
            if not DIGEST_RE.match(digest):
                raise e.InvalidLayerException(f"Invalid layer digest {digest!r}")
            if self.registry_for(scope).has_blob(rec.name, digest):
                self._forget_upload(upload_id, upload)
                raise e.LayerAlreadyExistsException(
                    f"The layer '{digest}' already exists in the repository with name '{rec.name}'"
                )
            sep = "&" if "?" in upload.location else "?"
            resp = self.registry_for(scope).request(
                "PUT", f"{upload.location}{sep}digest={digest}", b"", {"Content-Length": "0"}
            )
            if resp.status == 400 and "DIGEST_INVALID" in resp.error_codes():
                self._forget_upload(upload_id, upload)
                raise e.InvalidLayerException(
                    f"The layer digest calculated for the upload does not match the given digest {digest}"
                )
            if resp.status != 201:
                raise e.ServerException(f"registry could not complete the upload: {resp.status}")
            with self._uploads_lock:
                self._uploads.pop(upload_id, None)
        return {
            "registryId": scope.account,
            "repositoryName": rec.name,
            "uploadId": upload_id,
            "layerDigest": digest,
        }

    def _forget_upload(self, upload_id: str, upload: _Upload) -> None:
        self.registry_for(upload.scope).request("DELETE", upload.location)
        with self._uploads_lock:
            self._uploads.pop(upload_id, None)

    # ---------------------------------------------------------------------------- account, auth
    def op_GetAuthorizationToken(
        self, scope: Scope, p: dict[str, Any], principal: policy.Principal | None = None
    ) -> dict[str, Any]:
        # `registryIds` (as on ECR): one entry per named registry, with that registry's endpoint;
        # none named: the caller's own. The token says who asked (`token_password`).
        scopes = [Scope(str(r), scope.region) for r in p.get("registryIds") or ()] or [scope]
        caller = principal or root_of(scope.account)
        return {
            "authorizationData": [
                {
                    "authorizationToken": base64.b64encode(
                        f"AWS:{self.token_password(s, caller)}".encode()
                    ).decode(),
                    "expiresAt": time.time() + TOKEN_TTL_SECONDS,
                    "proxyEndpoint": self.endpoint_for(s),
                }
                for s in scopes
            ]
        }

    def op_GetAccountSetting(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        name = _setting_name(p)
        return {"name": name, "value": self.store.setting(scope, name, ACCOUNT_SETTING_DEFAULTS[name])}

    def op_PutAccountSetting(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        name, value = _setting_name(p), _required_str(p, "value")
        if value not in ACCOUNT_SETTINGS[name]:
            raise e.InvalidParameterException(
                f"Invalid value {value!r} for {name}; expected one of {ACCOUNT_SETTINGS[name]}"
            )
        self.store.set_setting(scope, name, value)
        return {"name": name, "value": value}

    def blob_mounting_enabled(self, scope: Scope) -> bool:
        return (
            self.store.setting(scope, "BLOB_MOUNTING", ACCOUNT_SETTING_DEFAULTS["BLOB_MOUNTING"]) == "ENABLED"
        )

    # ---------------------------------------------------------------------------- pull times
    def op_RegisterPullTimeUpdateExclusion(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        """The principal's pulls stop updating images' lastRecordedPullTime (`local_aws.pull_times`)."""
        arn = principal_arn(p.get("principalArn"))
        with self.repo_lock(scope, ""):
            excluded = exclusions(self.store, scope)
            if arn in excluded:
                raise e.ExclusionAlreadyExistsException(f"The principal '{arn}' is already excluded")
            if len(excluded) >= MAX_EXCLUSIONS:
                raise e.LimitExceededException(
                    f"The registry already has {MAX_EXCLUSIONS} pull time update exclusions"
                )
            excluded[arn] = now()
            save_exclusions(self.store, scope, excluded)
        return {"principalArn": arn, "createdAt": excluded[arn]}

    def op_DeregisterPullTimeUpdateExclusion(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        arn = principal_arn(p.get("principalArn"))
        with self.repo_lock(scope, ""):
            excluded = exclusions(self.store, scope)
            if excluded.pop(arn, None) is None:
                raise e.ExclusionNotFoundException(f"The principal '{arn}' is not excluded")
            save_exclusions(self.store, scope, excluded)
        return {"principalArn": arn}

    def op_ListPullTimeUpdateExclusions(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        page, token = _paginate(sorted(exclusions(self.store, scope)), p)
        out: dict[str, Any] = {"pullTimeUpdateExclusions": page}
        if token:
            out["nextToken"] = token
        return out

    # ---------------------------------------------------------------------------- storage class
    def op_UpdateImageStorageClass(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        """ARCHIVE moves an ACTIVE image to the archive at once; STANDARD restores an archived one,
        ACTIVATING for `restore_seconds` (ECR: up to 20 minutes) before it can be pulled again.
        Asking for the class an image is already in (or heading to) is
        `ImageStorageClassUpdateNotSupportedException` (inferred: the model says only "not
        supported"). Emits `ECR Image Action` UPDATE_STORAGE_CLASS (events/ecr-archive.json)."""
        rec = self.require_repo(scope, p)
        target = p.get("targetStorageClass")
        if target not in STORAGE_CLASSES:
            raise e.InvalidParameterException(
                f"Invalid parameter at 'targetStorageClass': {target!r} is not one of {STORAGE_CLASSES}"
            )
        with self.repo_lock(scope, rec.name):
            image, failure = self.resolve(scope, rec.name, p.get("imageId"))
            if failure or image is None:
                raise e.ImageNotFoundException(
                    f"The image with imageId {p.get('imageId')} does not exist within the repository "
                    f"with name '{rec.name}' in the registry with id '{scope.account}'"
                )
            if (target == "ARCHIVE") == (image.status == ARCHIVED) or (
                target == "STANDARD" and image.status == ACTIVATING
            ):
                raise e.ImageStorageClassUpdateNotSupportedException(
                    f"The image {image.digest} is {image.status}; it cannot move to {target}"
                )
            if target == "ARCHIVE":
                self.store.archive(scope, rec.name, image.digest, now())
            elif self.restore_seconds <= 0:
                self.store.activate(scope, rec.name, image.digest, now())
            else:
                self.store.restore(scope, rec.name, image.digest, now() + self.restore_seconds)
            stored = self.store.image(scope, rec.name, image.digest)
        assert stored is not None
        self.events.emit(
            scope,
            DETAIL_TYPE_IMAGE_ACTION,
            storage_class_detail(rec.name, stored, target),
        )
        if stored.subject:
            detail = {
                **referrer_action_detail(rec.name, stored, "UPDATE_STORAGE_CLASS"),
                "target-storage-class": target,
            }
            self.events.emit(scope, DETAIL_TYPE_REFERRER_ACTION, detail)
        image_id: dict[str, str] = {"imageDigest": stored.digest}
        if isinstance(p.get("imageId"), dict) and p["imageId"].get("imageTag"):
            image_id["imageTag"] = p["imageId"]["imageTag"]
        return {
            "registryId": scope.account,
            "repositoryName": rec.name,
            "imageId": image_id,
            "imageStatus": stored.status,
        }

    # ---------------------------------------------------------------------------- scanning
    def scanning_configuration(self, scope: Scope) -> dict[str, Any]:
        """The registry's scanning configuration (`local_aws.scanning`); ECR's default without one."""
        return load_configuration(self.store.setting(scope, REGISTRY_SCANNING_SETTING, ""))

    def op_PutRegistryScanningConfiguration(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        configuration = parse_scanning_configuration(p)
        self.store.set_setting(scope, REGISTRY_SCANNING_SETTING, json.dumps(configuration))
        return {"registryScanningConfiguration": configuration}

    def op_GetRegistryScanningConfiguration(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        return {"registryId": scope.account, "scanningConfiguration": self.scanning_configuration(scope)}

    def complete_scan(
        self, scope: Scope, repo: str, digest: str, findings: list[dict[str, Any]] | None = None
    ) -> bool:
        """A basic scan of `repo@digest` finishes: with `findings` when given, else with those set
        for the image before (none if none were). When the image is in the repository its scan
        event (`ECR Image Scan`) is sent and True returned; findings for an image not pushed yet
        are kept for its scan."""
        if findings is not None:
            self.store.set_findings(scope, repo, digest, findings)
        image = self.store.image(scope, repo, digest)
        if image is None:
            return False
        reported = self.store.findings(scope, repo, digest)
        if reported is None:
            reported = []
            self.store.set_findings(scope, repo, digest, reported)
        detail = scan_event_detail(repo, digest, image.tags, severity_counts(reported))
        self.events.emit(scope, DETAIL_TYPE_IMAGE_SCAN, detail)
        return True

    def op_StartImageScan(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        image, failure = self.resolve(scope, rec.name, p.get("imageId"))
        if failure:
            raise e.ImageNotFoundException(f"The image {p.get('imageId')} does not exist in '{rec.name}'")
        assert image is not None
        self.complete_scan(scope, rec.name, image.digest)
        return {
            "registryId": scope.account,
            "repositoryName": rec.name,
            "imageId": p["imageId"],
            "imageScanStatus": dict(SCAN_COMPLETE),
        }

    def op_DescribeImageScanFindings(self, scope: Scope, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.require_repo(scope, p)
        image, failure = self.resolve(scope, rec.name, p.get("imageId"))
        if failure:
            raise e.ImageNotFoundException(f"The image {p.get('imageId')} does not exist in '{rec.name}'")
        assert image is not None
        findings = self.store.findings(scope, rec.name, image.digest)
        if findings is None:
            raise e.ScanNotFoundException(f"Image scan does not exist for the image {image.digest}")
        counts = severity_counts(findings)
        page, token = _paginate(findings, p)
        out: dict[str, Any] = {
            "registryId": scope.account,
            "repositoryName": rec.name,
            "imageId": {"imageDigest": image.digest},
            "imageScanStatus": dict(SCAN_COMPLETE),
            "imageScanFindings": {
                "imageScanCompletedAt": time.time(),
                "vulnerabilitySourceUpdatedAt": time.time(),
                "findings": page,
                "findingSeverityCounts": counts,
            },
        }
        if token:
            out["nextToken"] = token
        return out


# -------------------------------------------------------------------------------- parameter helpers
def _required_str(p: dict[str, Any], key: str) -> str:
    value = p.get(key)
    if not isinstance(value, str) or value == "":
        raise e.InvalidParameterException(f"Invalid parameter: '{key}' is required and must be a string")
    return value


def _optional_str(p: dict[str, Any], key: str) -> str | None:
    value = p.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value == "":
        raise e.InvalidParameterException(f"Invalid parameter: '{key}' must be a non-empty string")
    return value


def _check_registry_id(scope: Scope, p: dict[str, Any]) -> None:
    registry_id = p.get("registryId")
    if registry_id is not None and registry_id != scope.account:
        raise e.RepositoryNotFoundException(
            f"The registry with id '{registry_id}' is not served here (this local ECR is '{scope.account}')"
        )


def _mutability(p: dict[str, Any], *, required: bool = False) -> tuple[str, tuple[str, ...]]:
    mutability = p.get("imageTagMutability", None if required else "MUTABLE")
    if mutability not in MUTABILITIES:
        raise e.InvalidParameterException(
            f"Invalid parameter at 'imageTagMutability': {mutability!r} is not one of {MUTABILITIES}"
        )
    raw = p.get("imageTagMutabilityExclusionFilters")
    if mutability.endswith("_WITH_EXCLUSION"):
        if not isinstance(raw, list) or not 1 <= len(raw) <= 5:
            raise e.InvalidParameterException(
                f"imageTagMutabilityExclusionFilters (1 to 5) are required with {mutability}"
            )
        filters = []
        for f in raw:
            if not isinstance(f, dict) or f.get("filterType") != "WILDCARD":
                raise e.InvalidParameterException("Each exclusion filter needs filterType WILDCARD")
            value = f.get("filter")
            if not isinstance(value, str) or not _FILTER_RE.match(value):
                raise e.InvalidParameterException(
                    f"Invalid exclusion filter {value!r}: 1-128 characters of [0-9a-zA-Z._*-]"
                )
            filters.append(value)
        return mutability, tuple(filters)
    if raw:
        raise e.InvalidParameterException(
            f"imageTagMutabilityExclusionFilters are only allowed with the *_WITH_EXCLUSION modes, "
            f"not {mutability}"
        )
    return mutability, ()


_FILTER_RE = re.compile(r"^[0-9a-zA-Z._*-]{1,128}$")


def _image_ids(p: dict[str, Any]) -> list[Any]:
    ids = p.get("imageIds")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_IMAGE_IDS:
        raise e.InvalidParameterException(f"imageIds must hold 1 to {MAX_IMAGE_IDS} image ids")
    return ids


def _failure(image_id: dict[str, Any], code: str, reason: str) -> dict[str, Any]:
    return {"imageId": image_id, "failureCode": code, "failureReason": reason}


def _paginate(
    items: list[Any], p: dict[str, Any], default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE
) -> tuple[list[Any], str | None]:
    """One page: `maxResults` (1 to `maximum`) items, `default` without it, from `nextToken` on."""
    max_results = p.get("maxResults")
    if max_results is None:
        max_results = default
    elif isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= maximum:
        raise e.InvalidParameterException(
            f"Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value "
            f"between 1 and {maximum}' (got {max_results!r})"
        )
    token = p.get("nextToken")
    start = 0
    if token:
        try:
            start = int(base64.b64decode(token).decode())
        except (ValueError, binascii.Error) as exc:
            raise e.InvalidParameterException("Invalid nextToken") from exc
    page = items[start : start + max_results]
    nxt = start + max_results
    return page, (base64.b64encode(str(nxt).encode()).decode() if nxt < len(items) else None)


def _children(raw: bytes) -> set[str]:
    try:
        return {m.get("digest") for m in json.loads(raw).get("manifests", []) if isinstance(m, dict)}
    except (ValueError, AttributeError, TypeError):
        return set()


def _annotations(raw: bytes) -> dict[str, str]:
    try:
        ann = json.loads(raw).get("annotations")
    except (ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else {}


def _image_filter(p: dict[str, Any]) -> tuple[str, str]:
    """(tagStatus, imageStatus) of a DescribeImages/ListImages filter; without an imageStatus only
    ACTIVE images are listed (service model), so archived ones need `imageStatus` ARCHIVED or ANY."""
    given = p.get("filter") or {}
    status = given.get("tagStatus") or "ANY"
    if status not in ("TAGGED", "UNTAGGED", "ANY"):
        raise e.InvalidParameterException(f"Invalid tagStatus {status!r}")
    image_status = given.get("imageStatus") or ACTIVE
    if image_status not in STATUS_FILTERS:
        raise e.InvalidParameterException(
            f"Invalid imageStatus {image_status!r}; expected one of {STATUS_FILTERS}"
        )
    return status, image_status


def _no_paging_with(p: dict[str, Any], listed: str) -> None:
    """maxResults and nextToken page a listing; ECR refuses them beside an explicit list."""
    for key in ("maxResults", "nextToken"):
        if p.get(key) is not None:
            raise e.InvalidParameterException(f"Invalid parameter: '{key}' cannot be used with '{listed}'")


def manifest_too_large() -> e.InvalidParameterException:
    """ECR's refusal of a manifest over MAX_MANIFEST_BYTES (the service model's length constraint)."""
    return e.InvalidParameterException(
        "Invalid parameter at 'ImageManifest' failed to satisfy constraint: "
        f"'Member must have length less than or equal to {MAX_MANIFEST_BYTES}'"
    )


def archived_reason(image: ImageRecord) -> str:
    """Why an archived (or still restoring) image cannot be pulled: the answer names the archive."""
    if image.status == ACTIVATING:
        return "Requested image is being restored from the archive and cannot be pulled until it is ACTIVE"
    return "Requested image is archived; restore it with UpdateImageStorageClass (STANDARD) to pull it"


def unaccepted_reason(image: ImageRecord, accepted: list[str]) -> str:
    """ECR's words when the stored type is not accepted and no conversion applies."""
    return (
        f"Manifest with digest '{image.digest}' has media type '{image.media_type}', but client accepts "
        f"'{','.join(accepted)}'."
    )


def _setting_name(p: dict[str, Any]) -> str:
    name = _required_str(p, "name")
    if len(name) > 64:
        raise e.ValidationException(
            "1 validation error detected: Value at 'name' failed to satisfy constraint: "
            "Member must have length less than or equal to 64"
        )
    if name not in ACCOUNT_SETTINGS:
        raise e.InvalidParameterException(
            f"Invalid parameter at 'name': {name!r} is not an account setting; "
            f"expected one of {tuple(ACCOUNT_SETTINGS)}"
        )
    return name


# A referrer pushed or moved between storage classes (inferred for PUSH: the sample and the CDK's
# event schema show the fields, AWS documents only the UPDATE_STORAGE_CLASS event).
DETAIL_TYPE_REFERRER_ACTION = "ECR Referrer Action"


def referrer_action_detail(repo: str, image: ImageRecord, action: str) -> dict[str, str]:
    """The `detail` of an `ECR Referrer Action`, shaped like events/ecr-referrer-action.json: it
    names the referrer, not its subject (the referrer's manifest does)."""
    detail = {
        "action-type": action,
        "image-digest": image.digest,
        "repository-name": repo,
        "result": "SUCCESS",
        "manifest-media-type": image.media_type,
    }
    artifact_type = image.artifact_type or image.config_media_type
    if artifact_type:
        detail["artifact-media-type"] = artifact_type
    return detail


def storage_class_detail(repo: str, image: ImageRecord, target: str) -> dict[str, str]:
    """The `detail` of an UPDATE_STORAGE_CLASS `ECR Image Action`, shaped like events/ecr-archive.json."""
    detail = {
        "action-type": "UPDATE_STORAGE_CLASS",
        "target-storage-class": target,
        "image-digest": image.digest,
        "repository-name": repo,
        "result": "SUCCESS",
        "manifest-media-type": image.media_type,
    }
    if image.config_media_type:
        detail["artifact-media-type"] = image.config_media_type
    return detail
