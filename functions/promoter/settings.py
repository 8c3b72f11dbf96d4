"""Names and defaults shared by the Lambda, the CLI, the local AWS and the CDK stack.

One constant per default, referred to everywhere else, so that code, docs and the stack cannot
drift apart. The stack sets the environment variables; the CLI and the local AWS use the defaults.
"""

from __future__ import annotations

import os

SERVICE_NAME = "image-promoter"
METRICS_NAMESPACE = "ImagePromoter"

IDEMPOTENCY_TABLE_ENV = "IDEMPOTENCY_TABLE"
DEFAULT_IDEMPOTENCY_TABLE = "image-promoter-idempotency"
HISTORY_TABLE_ENV = "HISTORY_TABLE"
DEFAULT_HISTORY_TABLE = "image-promoter-history"
CONFIG_PATH_ENV = "PROMOTION_CONFIG"
DEFAULT_CONFIG_FILE = "promotion.yaml"
# The stack stages the parsed configuration as JSON beside the package (no 4 KB env limit).
STAGED_CONFIG_FILE = "promotion.json"

IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600


def idempotency_table_name() -> str:
    """The DynamoDB table for idempotency records (env set by the stack, else the local default)."""
    return os.environ.get(IDEMPOTENCY_TABLE_ENV, DEFAULT_IDEMPOTENCY_TABLE)


def history_table_name() -> str:
    """The DynamoDB table for promotion history."""
    return os.environ.get(HISTORY_TABLE_ENV, DEFAULT_HISTORY_TABLE)


# Promotion requests: custom events on the default bus (`aws events put-events`), detail
# {"repository-name", "image-tag" and/or "image-digest", optional "rule"}; they fire `request` rules.
REQUEST_EVENT_SOURCE = "ecr-image-promoter"
REQUEST_DETAIL_TYPE = "Promotion Request"
# Environment variable that switches blob mounting off even when the account setting enables it.
BLOB_MOUNTING_ENV = "PROMOTER_BLOB_MOUNTING"
# Set by the stack to its promotion bus: where requests arrive on AWS and results may be published.
EVENT_BUS_ENV = "PROMOTION_EVENT_BUS"
