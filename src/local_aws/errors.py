"""ECR's error codes, one class per condition, so the wire shape is written once.

The JSON protocol answers HTTP 400 with `{"__type": name, "message": ...}` for client errors; a
500 makes botocore retry, so only `ServerException` (a real fault on our side) uses it.
"""

from __future__ import annotations


class EcrError(Exception):
    """Base: an ECR error answered to the client as `__type` + `message`."""

    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        return type(self).__name__


class InvalidParameterException(EcrError):
    """A parameter is missing, malformed or not allowed here."""


class ValidationException(EcrError):
    """The request failed validation (ECR uses this for some newer operations)."""


class RepositoryNotFoundException(EcrError):
    """The repository does not exist in this registry."""


class RepositoryAlreadyExistsException(EcrError):
    """CreateRepository for a name that is taken."""


class RepositoryNotEmptyException(EcrError):
    """DeleteRepository without force on a repository that still holds images."""


class ImageAlreadyExistsException(EcrError):
    """PutImage of a manifest and tag (or untagged digest) that is already there."""


class ImageTagAlreadyExistsException(EcrError):
    """PutImage would move an immutable tag to another digest."""


class ImageDigestDoesNotMatchException(EcrError):
    """The given imageDigest is not the sha256 of the manifest bytes."""


class ImageNotFoundException(EcrError):
    """The image (by tag or digest) is not in the repository."""


class LayersNotFoundException(EcrError):
    """A blob the request needs is not in this repository."""


class LayerInaccessibleException(EcrError):
    """The blob is in the repository but no image references it."""


class ReferencedImagesNotFoundException(EcrError):
    """An index names child manifests that are not in this repository."""


class InvalidLayerException(EcrError):
    """The uploaded bytes do not match the layer digest given at completion."""


class InvalidLayerPartException(EcrError):
    """A layer part is out of order or of a size ECR does not accept."""

    def __init__(self, message: str, *, upload_id: str = "", last_valid_byte: int = -1) -> None:
        super().__init__(message)
        self.upload_id = upload_id
        self.last_valid_byte = last_valid_byte


class LayerAlreadyExistsException(EcrError):
    """CompleteLayerUpload of a blob that is already in the repository."""


class EmptyUploadException(EcrError):
    """CompleteLayerUpload of an upload that received no part."""


class UploadNotFoundException(EcrError):
    """The uploadId is unknown (never created, completed, or for another repository)."""


class ImageStorageClassUpdateNotSupportedException(EcrError):
    """UpdateImageStorageClass to a class the image cannot move to from where it is."""


class ScanNotFoundException(EcrError):
    """No scan findings exist for the image."""


class ThrottlingException(EcrError):
    """Over the per-operation rate."""


class UnknownOperationException(EcrError):
    """The X-Amz-Target names an operation this local ECR does not serve."""


class SerializationException(EcrError):
    """The request body is not a JSON object."""


class RepositoryPolicyNotFoundException(EcrError):
    """The repository has no repository policy."""


class AccessDeniedException(EcrError):
    """A repository policy denies the caller the action (or, across accounts, allows it nothing)."""


class ExclusionAlreadyExistsException(EcrError):
    """RegisterPullTimeUpdateExclusion of a principal already excluded."""


class ExclusionNotFoundException(EcrError):
    """DeregisterPullTimeUpdateExclusion of a principal not excluded."""


class LimitExceededException(EcrError):
    """A registry quota is reached (e.g. 100 pull-time update exclusions)."""


class TemplateAlreadyExistsException(EcrError):
    """CreateRepositoryCreationTemplate for a prefix that has one."""


class TemplateNotFoundException(EcrError):
    """No repository creation template for the prefix."""


class LifecyclePolicyNotFoundException(EcrError):
    """The repository has no lifecycle policy."""


class ServerException(EcrError):
    """A fault on our side (the registry failed unexpectedly)."""

    status = 500


def error_class(name: str) -> type[EcrError]:
    """The class for an exception name (used by fail_next); unknown names get a generic class."""
    found = globals().get(name)
    if isinstance(found, type) and issubclass(found, EcrError):
        return found
    return type(name, (EcrError,), {"__doc__": f"{name} (injected by the control API)."})
