"""A local AWS for tests and demos: ECR backed by a real OCI registry, moto for the rest."""

from local_aws.control import ControlClient, ControlError
from local_aws.registry import INSTALL_HINT, RegistryNotInstalledError
from local_aws.server import DEFAULT_ACCOUNT, DEFAULT_REGION, LocalAws

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_REGION",
    "INSTALL_HINT",
    "ControlClient",
    "ControlError",
    "LocalAws",
    "RegistryNotInstalledError",
]
