"""The DynamoDB tables the engine uses by default, created so the CLI works with no set-up."""

from __future__ import annotations

import boto3
from botocore.exceptions import ClientError

from promoter.aws.reconcile_state import DEFAULT_RECONCILE_TABLE
from promoter.settings import DEFAULT_GATES_TABLE, DEFAULT_HISTORY_TABLE, DEFAULT_IDEMPOTENCY_TABLE

DUMMY_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def create_default_tables(endpoint: str, region: str) -> None:
    """Idempotency (pk `id`, TTL `expiration`) and history (pk `pk`, sk `sk`); existing ones are kept."""
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=region, **DUMMY_CREDENTIALS)
    _create(ddb, DEFAULT_IDEMPOTENCY_TABLE, [("id", "HASH")])
    ddb.update_time_to_live(
        TableName=DEFAULT_IDEMPOTENCY_TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )
    _create(ddb, DEFAULT_HISTORY_TABLE, [("pk", "HASH"), ("sk", "RANGE")])
    # Promotions waiting on a scan gate (promoter.aws.gate_store): pk image, sk rule#event, TTL `expiration`.
    _create(ddb, DEFAULT_GATES_TABLE, [("pk", "HASH"), ("sk", "RANGE")])
    ddb.update_time_to_live(
        TableName=DEFAULT_GATES_TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )
    _create(ddb, DEFAULT_RECONCILE_TABLE, [("id", "HASH")])  # the reconcile cursor


def _create(ddb, name: str, keys: list[tuple[str, str]]) -> None:
    try:
        ddb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
