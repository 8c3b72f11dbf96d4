"""A local AWS for tests and demos: ECR backed by a real OCI registry, moto for the rest.

    with LocalAws() as aws:                      # or: promoter local --port 4566
        ecr = boto3.client("ecr", endpoint_url=aws.endpoint, region_name="us-east-1")
        aws.control.fail_next("PutImage", "ThrottlingException", count=2)
        aws.control.calls()                      # {"PutImage": 3, ...}

One port serves the ECR JSON API (ours, with ECR's errors), the registry API under `/v2/` (Basic
auth `AWS:<GetAuthorizationToken password>`), the control API under `/_local/`, and everything
else through moto (DynamoDB, SQS, EventBridge, STS). `local_aws.images` builds and pushes content.
"""

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
