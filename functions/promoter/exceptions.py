"""One exception class per condition the engine can meet.

Errors raised by boto3 are turned into these at the registry boundary (`promoter.aws.registry`), once;
everything above that boundary speaks only these names. `retryable` says whether handing the work
back for redelivery (SQS) can help: throttling or a service fault can pass, a conflict cannot.
"""

from __future__ import annotations


class PromoterError(Exception):
    """Base class of every error the engine raises on purpose."""

    retryable = False


class ConfigError(PromoterError):
    """The promotion configuration is invalid; says which file and line (when known), which rule,
    which field and why."""

    def __init__(
        self,
        reason: str,
        *,
        rule: str | None = None,
        field: str | None = None,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.rule = rule
        self.field = field
        self.reason = reason
        self.path = path
        self.line = line
        self.column = column
        super().__init__(reason)

    @property
    def location(self) -> str:
        """`file:line:column`, as much of it as is known ("" when nothing is)."""
        return ":".join(str(part) for part in (self.path, self.line, self.column) if part is not None)

    def __str__(self) -> str:
        where = []
        if self.rule is not None:
            where.append(f"rule {self.rule!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        text = f"{', '.join(where)}: {self.reason}" if where else self.reason
        return f"{self.location}: {text}" if self.location else text


class EventError(PromoterError):
    """An event lacks a field the engine needs, or holds a value it cannot use."""


class MalformedMessageError(EventError):
    """A message is not an EventBridge event at all (not JSON, no envelope): nobody's input."""


class InvalidRequestError(PromoterError):
    """A promotion request names an unknown rule, a rule that is not a request rule, or no rule
    matches it: a failure result for the requester, never retried."""


class TemplateError(PromoterError):
    """A template cannot be rendered for this image (e.g. a semver field for a non-semver tag)."""


class RegistryError(PromoterError):
    """Base class of errors from the registry adapter."""


class RepositoryNotFoundError(RegistryError):
    """The repository does not exist (ECR RepositoryNotFoundException)."""


class ImageNotFoundError(RegistryError):
    """The image (tag or digest) is not in the repository, e.g. deleted before we handled it."""


class TagConflictError(RegistryError):
    """The target tag is immutable and points at another digest (ImageTagAlreadyExistsException)."""


class TagDigestMismatchError(RegistryError):
    """A tag does not point at the digest it was named with (BatchGetImage: ImageTagDoesNotMatchDigest)."""


class InvalidManifestError(RegistryError):
    """ECR refused the manifest (bad JSON, media type, missing layers or children after copying)."""


class TrustTreeTooLargeError(RegistryError):
    """An image's children, referrers and signatures exceed the bounds the promoter carries."""


class DigestMismatchError(RegistryError):
    """The manifest bytes do not hash to the digest we sent: a bug in the engine, never retried."""


class LayerCopyError(RegistryError):
    """A blob could not be copied (download failed, digest did not verify)."""

    retryable = True


class BlobUnreadableError(RegistryError):
    """A blob read for inspection (a signature's payload) is over its size limit or does not
    hash to its digest: the same bytes would come back on a retry."""


class RegistryUnavailableError(RegistryError):
    """Throttling that outlasted botocore's retries, a service fault or a network error."""

    retryable = True


class AccessDeniedError(RegistryError):
    """The role may not do this; a deployment fault, reported rather than retried forever."""


class BlobNotFoundError(RegistryError):
    """A blob the source manifest names is not in the source repository (or is archived)."""


class PromotionInProgressError(PromoterError):
    """Another invocation holds this promotion's idempotency record; try again later."""

    retryable = True


class IdempotencyStoreError(PromoterError):
    """The idempotency table could not be read or written."""

    retryable = True


class PageTokenExpiredError(RegistryError):
    """ECR refused a saved ListImages page token (it outlived its use): start that listing over."""


class HistoryWriteError(PromoterError):
    """A history record could not be written (the audit of an action that may already be done)."""


class RollbackRefusedError(PromoterError):
    """A rollback cannot be done as asked: no earlier digest in the history, a digest the history
    does not know for the repository, or an immutable tag."""


class GateUnavailableError(PromoterError):
    """A service a gate asks (KMS Verify, AWS Signer revocation) is throttled or failing: the gate
    cannot decide now; retry the event later."""

    retryable = True


class RollbackSupersededError(RollbackRefusedError):
    """The tag moved while a rollback ran (a promotion landed): the promotion wins, no rollback."""


class GateStoreError(PromoterError):
    """The gates table could not record or read a waiting promotion: retry the event later."""

    retryable = True


class AttestationError(PromoterError):
    """The promotion attestation could not be signed or attached (KMS refused or failed, the target
    refused its blobs or manifest). Retryable when the service may answer later (throttling, a
    fault); otherwise the action fails before its tag is written, naming the key or the refusal."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
