"""Which deployed resources a command uses: the tables, the bus, the queues.

Resolution order, first found wins:
  1. an explicit flag of the command (`request --bus`, `redrive --queue-url`, ...);
  2. `--stack NAME`: the deployed stack's CloudFormation outputs (DescribeStacks);
  3. the environment variables below (the ones the stack sets on the function, plus the queues');
  4. the local defaults (`settings.DEFAULT_*`: the names `promoter local` creates).
`--stack` is applied by putting each output into the environment variable it stands for, so every
engine path (history, idempotency, results, gates) uses the stack's names without a parameter.

Before a command calls AWS, `aws_setup_problem` says what would stop every call: no region, or a
local endpoint (`AWS_ENDPOINT_URL` on this machine) where nothing listens, as before `promoter local`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, MutableMapping
from urllib.parse import urlsplit

from promoter import settings
from promoter.aws.reconcile_state import RECONCILE_TABLE_ENV

QUEUE_URL_ENV = "PROMOTER_QUEUE_URL"
DEAD_LETTER_QUEUE_URL_ENV = "PROMOTER_DEAD_LETTER_QUEUE_URL"
DELIVERY_DEAD_LETTER_QUEUE_URL_ENV = "PROMOTER_DELIVERY_DEAD_LETTER_QUEUE_URL"
# The approval channel's URL (`promoter approve` / `reject`): the stack's ApprovalUrl output.
APPROVAL_URL_ENV = "PROMOTER_APPROVAL_URL"

# Each stack output and the environment variable it stands for.
OUTPUT_ENV_VARS = {
    settings.OUTPUT_IDEMPOTENCY_TABLE: settings.IDEMPOTENCY_TABLE_ENV,
    settings.OUTPUT_HISTORY_TABLE: settings.HISTORY_TABLE_ENV,
    settings.OUTPUT_GATES_TABLE: settings.GATES_TABLE_ENV,
    settings.OUTPUT_RECONCILE_TABLE: RECONCILE_TABLE_ENV,
    settings.OUTPUT_EVENT_BUS: settings.EVENT_BUS_ENV,
    settings.OUTPUT_REQUEST_SOURCE: settings.REQUEST_SOURCE_ENV,
    settings.OUTPUT_QUEUE_URL: QUEUE_URL_ENV,
    settings.OUTPUT_DEAD_LETTER_QUEUE_URL: DEAD_LETTER_QUEUE_URL_ENV,
    settings.OUTPUT_DELIVERY_DEAD_LETTER_QUEUE_URL: DELIVERY_DEAD_LETTER_QUEUE_URL_ENV,
    settings.OUTPUT_APPROVAL_URL: APPROVAL_URL_ENV,
    # The attestation key: `promoter promote` and `rollback` sign with it, as the functions do.
    settings.OUTPUT_ATTESTATION_KEY: settings.ATTESTATION_KEY_ENV,
}


NO_REGION_MESSAGE = (
    "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION (or a profile's region); "
    "against the local AWS, AWS_ENDPOINT_URL=http://127.0.0.1:PORT alone is enough"
)
# A connection to this machine is refused at once when nothing listens; a slow accept (a busy
# machine) is not taken for a missing server: only a refusal is.
LOCAL_CONNECT_TIMEOUT_SECONDS = 5.0


def local_endpoint_down_message(endpoint: str) -> str:
    return (
        f"nothing answers at {endpoint} (AWS_ENDPOINT_URL): start the local AWS first with "
        "`promoter local` in another shell, or unset AWS_ENDPOINT_URL to use AWS"
    )


def aws_setup_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why no AWS call of this process can succeed (no region, a profile that does not exist, a local
    endpoint refusing connections), as one line for the user, or None. Reads the configuration as
    boto3 does; no AWS call."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    environ = os.environ if environ is None else environ
    endpoint = environ.get("AWS_ENDPOINT_URL", "")
    if endpoint and local_endpoint_refuses(endpoint):
        return local_endpoint_down_message(endpoint)
    try:
        region = boto3.session.Session().region_name
    except ProfileNotFound as exc:
        return f"{exc}: AWS_PROFILE must name a profile of the AWS config file (or be unset)"
    return None if region else NO_REGION_MESSAGE


def local_endpoint_refuses(endpoint: str) -> bool:
    """Whether `endpoint` is on this machine and refuses connections (nothing listens there)."""
    from promoter_cli.cmd_local import is_loopback_endpoint

    if not is_loopback_endpoint(endpoint):
        return False
    url = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return False  # a malformed port: botocore says what is wrong with it
    try:
        with socket.create_connection((url.hostname or "localhost", port), LOCAL_CONNECT_TIMEOUT_SECONDS):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # not a plain refusal: the command meets it and says what it is


class StackOutputsError(RuntimeError):
    """The stack's outputs could not be read (no such stack, no access, no credentials)."""


def stack_outputs(stack_name: str) -> dict[str, str]:
    """The outputs of a deployed stack, {OutputKey: OutputValue}, in the environment's region.

    Raises StackOutputsError with CloudFormation's reason when the stack cannot be described.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise StackOutputsError(f"cannot read the outputs of stack {stack_name!r}: {exc}") from exc
    if not stacks:
        raise StackOutputsError(f"stack {stack_name!r} does not exist")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def use_stack(stack_name: str, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Points this process at the stack: each known output overrides its environment variable.
    Returns {variable: value} as set. Raises StackOutputsError (see stack_outputs)."""
    target = os.environ if environ is None else environ
    applied = {
        OUTPUT_ENV_VARS[key]: value
        for key, value in stack_outputs(stack_name).items()
        if key in OUTPUT_ENV_VARS
    }
    target.update(applied)
    return applied
