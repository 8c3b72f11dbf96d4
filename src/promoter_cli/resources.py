"""Which deployed resources a command uses: the tables, the bus, the queues.

Resolution order, first found wins:
  1. an explicit flag of the command (`request --bus`, `redrive --queue-url`, ...);
  2. `--stack NAME`: the deployed stack's CloudFormation outputs (DescribeStacks);
  3. the environment variables below (the ones the stack sets on the function, plus the queues');
  4. the local defaults (`settings.DEFAULT_*`: the names `promoter local` creates).
`--stack` is applied by putting each output into the environment variable it stands for, so every
engine path (history, idempotency, results, gates) uses the stack's names without a parameter.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from promoter import settings
from promoter.aws.reconcile_state import RECONCILE_TABLE_ENV

QUEUE_URL_ENV = "PROMOTER_QUEUE_URL"
DEAD_LETTER_QUEUE_URL_ENV = "PROMOTER_DEAD_LETTER_QUEUE_URL"
DELIVERY_DEAD_LETTER_QUEUE_URL_ENV = "PROMOTER_DELIVERY_DEAD_LETTER_QUEUE_URL"

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
}


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
