"""The DynamoDB tables the engine uses by default, created so the CLI works with no set-up."""

from __future__ import annotations

import boto3
from botocore.exceptions import ClientError

from promoter.aws.gate_store import WAIT_ID_INDEX
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
    # Promotions waiting on a gate (promoter.aws.gate_store): pk image, sk rule#gate#event, TTL
    # `expiration`, and the index that finds a wait by its id (a table kept from before gets it).
    _create(ddb, DEFAULT_GATES_TABLE, [("pk", "HASH"), ("sk", "RANGE")])
    ddb.update_time_to_live(
        TableName=DEFAULT_GATES_TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )
    _ensure_wait_id_index(ddb, DEFAULT_GATES_TABLE)
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


def _ensure_wait_id_index(ddb, name: str) -> None:
    """The gates table's `by-wait-id` index (partition key `wait_id`, all attributes), as the stack
    defines it; added to a table created before it existed."""
    table = ddb.describe_table(TableName=name)["Table"]
    if any(i["IndexName"] == WAIT_ID_INDEX for i in table.get("GlobalSecondaryIndexes") or ()):
        return
    ddb.update_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "wait_id", "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": WAIT_ID_INDEX,
                    "KeySchema": [{"AttributeName": "wait_id", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            }
        ],
    )
