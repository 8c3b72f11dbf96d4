"""Names and defaults shared by the Lambda, the CLI, the local AWS and the CDK stack.

One constant per default, referred to everywhere else, so that code, docs and the stack cannot
drift apart. The stack sets the environment variables; the CLI and the local AWS use the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

SERVICE_NAME = "image-promoter"
METRICS_NAMESPACE = "ImagePromoter"

IDEMPOTENCY_TABLE_ENV = "IDEMPOTENCY_TABLE"
DEFAULT_IDEMPOTENCY_TABLE = "image-promoter-idempotency"
HISTORY_TABLE_ENV = "HISTORY_TABLE"
DEFAULT_HISTORY_TABLE = "image-promoter-history"
GATES_TABLE_ENV = "GATES_TABLE"
DEFAULT_GATES_TABLE = "image-promoter-gates"
CONFIG_PATH_ENV = "PROMOTION_CONFIG"
DEFAULT_CONFIG_FILE = "promotion.yaml"
# The stack stages the parsed configuration as JSON beside the package (no 4 KB env limit).
STAGED_CONFIG_FILE = "promotion.json"

IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600
# Receives of an event's queue message before SQS moves it to the dead-letter queue: the stack's
# redrive policy, and the same for the queues `promoter local --config` and the benchmarks create.
# Enough for throttling to pass.
MAX_RECEIVE_COUNT = 5


def idempotency_table_name() -> str:
    """The DynamoDB table for idempotency records (env set by the stack, else the local default)."""
    return os.environ.get(IDEMPOTENCY_TABLE_ENV, DEFAULT_IDEMPOTENCY_TABLE)


def history_table_name() -> str:
    """The DynamoDB table for promotion history."""
    return os.environ.get(HISTORY_TABLE_ENV, DEFAULT_HISTORY_TABLE)


def gates_table_name() -> str:
    """The DynamoDB table for promotions waiting on a scan gate."""
    return os.environ.get(GATES_TABLE_ENV, DEFAULT_GATES_TABLE)


# Promotion requests: custom events on the promotion bus (`promoter request`, `aws events put-events`),
# detail {"repository-name", "image-tag" and/or "image-digest", optional "rule", "requested-by",
# "reason", "metadata"}; they fire `request` rules. The source is configurable (stack prop
# `request_source`, which sets the env var below); the detail-types are public contracts.
DEFAULT_REQUEST_EVENT_SOURCE = "image-promoter"
REQUEST_EVENT_SOURCE = DEFAULT_REQUEST_EVENT_SOURCE
REQUEST_SOURCE_ENV = "PROMOTION_REQUEST_SOURCE"
REQUEST_DETAIL_TYPE = "Image Promotion Requested"
# Results, published on the same bus with the same source: their detail-types never match the
# request rule's, so a result can never re-trigger a promotion.
PROMOTED_DETAIL_TYPE = "Image Promoted"
FAILED_DETAIL_TYPE = "Image Promotion Failed"
BLOCKED_DETAIL_TYPE = "Image Promotion Blocked"
# A tag of a target repository written by anything but the promoter (issue 18).
OUT_OF_BAND_DETAIL_TYPE = "Image Written Outside The Promoter"
RESULT_DETAIL_TYPES = (
    PROMOTED_DETAIL_TYPE,
    FAILED_DETAIL_TYPE,
    BLOCKED_DETAIL_TYPE,
    OUT_OF_BAND_DETAIL_TYPE,
)
# Environment variable that switches blob mounting off even when the account setting enables it.
BLOB_MOUNTING_ENV = "PROMOTER_BLOB_MOUNTING"
# Set by the stack to its promotion bus: where requests arrive on AWS and results may be published.
EVENT_BUS_ENV = "PROMOTION_EVENT_BUS"
DEFAULT_EVENT_BUS = "default"


def request_event_source() -> str:
    """The `source` of promotion requests (and of result events): env set by the stack, else default."""
    return os.environ.get(REQUEST_SOURCE_ENV) or DEFAULT_REQUEST_EVENT_SOURCE


# A request rule with `requesters:` is requested with its own source, `<request source>.rule.<name>`:
# the bus policy lets only its requesters post that source (IAM sees the source, never the detail).
RULE_SOURCE_INFIX = ".rule."


def rule_request_source(rule: str, base: str | None = None) -> str:
    """The `source` a request for `rule` is posted with when the rule names its requesters."""
    return f"{base or request_event_source()}{RULE_SOURCE_INFIX}{rule}"


def rule_of_request_source(source: str, base: str | None = None) -> str | None:
    """The rule a per-rule request source names, or None for any other source."""
    prefix = f"{base or request_event_source()}{RULE_SOURCE_INFIX}"
    return source[len(prefix) :] or None if source.startswith(prefix) else None


def event_bus_name() -> str:
    """The promotion bus: requests arrive there and results are published there ("default" locally)."""
    return os.environ.get(EVENT_BUS_ENV) or DEFAULT_EVENT_BUS


# Issue 19: the KMS key (ECC_NIST_P256, SIGN_VERIFY) that signs promotion attestations. The stack
# sets its ARN on the functions (and outputs it as OUTPUT_ATTESTATION_KEY); unset, the promoter
# writes no attestation and says so once at WARNING. The local AWS creates its key under
# LOCAL_ATTESTATION_KEY_ALIAS, and `promoter local` points the variable at it.
ATTESTATION_KEY_ENV = "ATTESTATION_KEY_ARN"
LOCAL_ATTESTATION_KEY_ALIAS = "alias/image-promoter-attestation"


def attestation_key_arn() -> str | None:
    """The attestation signing key (ARN, key id or alias), None when none is configured."""
    return os.environ.get(ATTESTATION_KEY_ENV) or None


def function_environment(
    *,
    config_path: str,
    idempotency_table: str = DEFAULT_IDEMPOTENCY_TABLE,
    history_table: str = DEFAULT_HISTORY_TABLE,
    gates_table: str = DEFAULT_GATES_TABLE,
    event_bus: str = DEFAULT_EVENT_BUS,
    request_source: str = DEFAULT_REQUEST_EVENT_SOURCE,
    attestation_key: str | None = None,
) -> dict[str, str]:
    """The environment of the promoter function: the stack passes its resources' names (tokens);
    the demo, the benchmarks and the fault suite pass the local AWS's defaults, so the handler
    runs there with the variables it has in Lambda. `attestation_key`: the key that signs
    attestations (None: none, and no attestation is written)."""
    attestation = {ATTESTATION_KEY_ENV: attestation_key} if attestation_key else {}
    return {
        **attestation,
        IDEMPOTENCY_TABLE_ENV: idempotency_table,
        HISTORY_TABLE_ENV: history_table,
        CONFIG_PATH_ENV: config_path,
        EVENT_BUS_ENV: event_bus,
        GATES_TABLE_ENV: gates_table,
        REQUEST_SOURCE_ENV: request_source,
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        # Active X-Ray tracing would need xray:PutTraceSegments on '*': off unless a stack opts in
        # (the handler then builds Powertools' Tracer; see promoter.handler._lambda_tracing).
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


# The deployed stack's CloudFormation outputs: the stack writes them, `promoter --stack NAME` reads
# them (DescribeStacks) and uses each one as the environment variable beside it would be used.
OUTPUT_EVENT_BUS = "PromotionBusName"
OUTPUT_REQUEST_SOURCE = "PromotionRequestSource"
OUTPUT_IDEMPOTENCY_TABLE = "IdempotencyTableName"
OUTPUT_HISTORY_TABLE = "HistoryTableName"
OUTPUT_GATES_TABLE = "GatesTableName"
OUTPUT_RECONCILE_TABLE = "ReconcileTableName"
OUTPUT_QUEUE_URL = "QueueUrl"
OUTPUT_DEAD_LETTER_QUEUE_URL = "DeadLetterQueueUrl"
OUTPUT_DELIVERY_DEAD_LETTER_QUEUE_URL = "DeliveryDeadLetterQueueUrl"
OUTPUT_DASHBOARD_URL = "DashboardUrl"
OUTPUT_ALARM_TOPIC_ARN = "AlarmTopicArn"
# The attestation key's ARN (ATTESTATION_KEY_ENV): `promoter attestation key` prints its public key.
OUTPUT_ATTESTATION_KEY = "AttestationPublicKeyArn"
# Issue 20: the approval channel's function URL (`promoter approve/reject` POST decisions there);
# only a stack with an approval rule has it.
OUTPUT_APPROVAL_URL = "ApprovalUrl"
# `promoter redrive --queue NAME`: "delivery" is the rule targets' dead-letter queue (events
# EventBridge could not put into the queue), "processing" the queue's own (messages the function
# failed on maxReceiveCount times).
REDRIVE_DELIVERY = "delivery"
REDRIVE_PROCESSING = "processing"


def config_path() -> Path:
    """The staged configuration: `$PROMOTION_CONFIG`, else promotion.json beside this package (one
    place for every function: the approval function reads it without importing the queue handler)."""
    configured = os.environ.get(CONFIG_PATH_ENV)
    return Path(configured) if configured else Path(__file__).parent / STAGED_CONFIG_FILE
