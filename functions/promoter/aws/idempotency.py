"""Exactly-once promotions across duplicate deliveries, with Powertools idempotency on DynamoDB.

The key is the promotion itself (rule, source digest, target registry, repository and tag), never the
envelope: EventBridge may deliver one push twice under two ids. Only successful outcomes are
stored (promoted, already present); a conflict or failure deletes the record, so the same event
delivered after someone fixed the target (deleted the tag, created the repository) is tried again.
Each PutImage is safe to repeat on its own, which is what makes re-running after a timeout safe.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyInconsistentStateError,
    IdempotencyPersistenceLayerError,
)

from promoter import settings
from promoter.exceptions import IdempotencyStoreError, PromotionInProgressError
from promoter.model.outcomes import ActionResult
from promoter.model.plan import Action
from promoter.workflows.promote import Promoter
from promoter.workflows.service import ActionRunner

# Stable across refactors (the default prefix embeds module and function names).
IDEMPOTENCY_KEY_PREFIX = "image-promoter.promote"
# The target registry is part of the promotion: the same repository and tag in another account or
# region is another promotion (all null for the promoter's own registry).
IDEMPOTENCY_KEY_JMESPATH = (
    "[rule, source.digest, target_account, target_region, target_repository, target_tag]"
)


class _NotStored(Exception):
    """Carries an unsuccessful outcome out of the idempotent function so it is not stored."""

    def __init__(self, result: ActionResult) -> None:
        super().__init__(result.outcome)
        self.result = result


def _mark_replayed(response: dict[str, Any], _record: Any) -> dict[str, Any]:
    """Powertools calls this only when it answers from a stored record: nothing was done again."""
    return {**response, "replayed": True}


def make_persistence(table_name: str | None = None, boto3_client: Any = None) -> DynamoDBPersistenceLayer:
    """The persistence layer; make one per process and reuse it (it holds the DynamoDB client)."""
    return DynamoDBPersistenceLayer(
        table_name=table_name or settings.idempotency_table_name(), boto3_client=boto3_client
    )


def idempotent_runner(
    promoter: Promoter, persistence: DynamoDBPersistenceLayer, lambda_context: Any = None
) -> ActionRunner:
    """An ActionRunner that runs each promotion at most once per key (within the TTL)."""
    config = IdempotencyConfig(
        event_key_jmespath=IDEMPOTENCY_KEY_JMESPATH,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.IDEMPOTENCY_TTL_SECONDS,
        response_hook=_mark_replayed,
    )
    if lambda_context is not None:
        # Without it, a timed-out invocation leaves an INPROGRESS record that blocks its key.
        config.register_lambda_context(lambda_context)

    @idempotent_function(
        data_keyword_argument="action",
        persistence_store=persistence,
        config=config,
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )
    def promote(action: dict[str, Any]) -> dict[str, Any]:
        result = promoter.promote(Action.from_dict(action))
        if not result.succeeded:
            raise _NotStored(result)
        return result.to_dict()

    def run(action: Action) -> ActionResult:
        try:
            return ActionResult.from_dict(promote(action=action.to_dict()))
        except _NotStored as outcome:
            return outcome.result
        except IdempotencyAlreadyInProgressError as exc:
            raise PromotionInProgressError(f"{action.target_repository}:{action.target_tag}: {exc}") from exc
        except (IdempotencyPersistenceLayerError, IdempotencyInconsistentStateError) as exc:
            # Inconsistent state: the record changed between Powertools' put and get (another
            # invocation finished or expired it). Retrying later reads a settled record.
            raise IdempotencyStoreError(f"{type(exc).__name__}: {exc}") from exc

    return run
