"""Which promotions the promoter ran: the idempotency records, read back by the out-of-band check
(promoter.workflows.out_of_band). A record exists, INPROGRESS, before its promotion writes anything,
and stays (COMPLETED) for the idempotency TTL; Powertools reads it consistently."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemNotFoundError
from botocore.exceptions import BotoCoreError, ClientError

from promoter.exceptions import IdempotencyStoreError
from promoter.model.plan import Action


class IdempotencyLedger:
    """`PromotionRecords` on the persistence layer that `idempotent_runner` configured (its key:
    rule, source digest, target registry, repository and tag)."""

    def __init__(self, persistence: DynamoDBPersistenceLayer) -> None:
        self._persistence = persistence

    def recorded(self, action: Action) -> bool:
        """Whether a record of the action exists, in progress or completed. Raises
        IdempotencyStoreError (retryable) when DynamoDB cannot be read, ValueError when the layer
        was never configured (the key would not be the runner's)."""
        if not self._persistence.configured:
            raise ValueError("the persistence layer must be configured by idempotent_runner first")
        data: dict[str, Any] = action.to_dict()
        try:
            return self._persistence.get_record(data) is not None
        except IdempotencyItemNotFoundError:
            return False
        except (ClientError, BotoCoreError) as exc:
            where = f"{action.target_repository}:{action.target_tag}"
            raise IdempotencyStoreError(f"idempotency record of {where} not read: {exc}") from exc
