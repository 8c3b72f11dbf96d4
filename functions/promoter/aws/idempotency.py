"""Exactly-once promotions across duplicate deliveries, with Powertools idempotency on DynamoDB.

The key is the promotion itself (rule, source digest, target registry, repository and tag), never the
envelope: EventBridge may deliver one push twice under two ids. Only successful outcomes are
stored (promoted, already present, kept); a conflict or failure deletes the record, so the same event
delivered after someone fixed the target (deleted the tag, created the repository) is tried again.
Each PutImage is safe to repeat on its own, which is what makes re-running after a timeout safe.

A record is never evidence that the target is right: the tag may have moved since (by hand, by a
rollback, by a late event). So before Powertools may answer from a record, the runner looks the
record up (one DynamoDB GetItem) and, only when there is a completed one, reads the target tag (one
BatchGetImage: the whole ECR cost of a replay; a first run pays nothing extra) and compares it with
the digest the record says the tag held afterwards. A record that no longer matches is deleted
(only that record, and only while it is COMPLETED: a conditional delete) and the action runs again
through Powertools, whose conditional INPROGRESS put still lets one of two concurrent runs work and
turns the other away.

A run interrupted by Ctrl-C (KeyboardInterrupt) deletes the in-progress record it wrote, as a failed
run does; an in-progress record outlives only a run that was killed. The Lambda bounds it by its
remaining time (`register_lambda_context`); the command line has no such clock, so it gets a fixed
window (`CLI_IN_PROGRESS_SECONDS`), after which the key is free again. A run turned away by such a
record is told until when it blocks and how to delete it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyInconsistentStateError,
    IdempotencyItemNotFoundError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from botocore.exceptions import BotoCoreError, ClientError

from promoter import settings
from promoter.exceptions import IdempotencyStoreError, PromotionInProgressError
from promoter.model.outcomes import ActionResult
from promoter.model.plan import Action
from promoter.workflows.promote import Promoter
from promoter.workflows.service import ActionRunner

logger = logging.getLogger(__name__)

# Stable across refactors (the default prefix embeds module and function names).
IDEMPOTENCY_KEY_PREFIX = "image-promoter.promote"
# The target registry is part of the promotion: the same repository and tag in another account or
# region is another promotion (all null for the promoter's own registry).
IDEMPOTENCY_KEY_JMESPATH = (
    "[rule, source.digest, target_account, target_region, target_repository, target_tag]"
)


# How long an in-progress record written by the command line blocks its key when the run is killed:
# the Lambda's longest timeout (15 minutes), so no action of a live run outlasts it.
CLI_IN_PROGRESS_SECONDS = 900
STATUS_COMPLETED = "COMPLETED"


class CliRunWindow:
    """Stands in for the Lambda context where Powertools asks for the remaining time: every action
    the command line starts may stay in progress for `seconds`, then its key is free again."""

    def __init__(self, seconds: int = CLI_IN_PROGRESS_SECONDS) -> None:
        self._millis = seconds * 1000

    def get_remaining_time_in_millis(self) -> int:
        return self._millis


class _Interrupted(Exception):
    """Carries a KeyboardInterrupt (Ctrl-C on the command line) out of the idempotent function as an
    Exception: Powertools then deletes the in-progress record this run wrote, as for any failure,
    instead of leaving it to block the next run for `CLI_IN_PROGRESS_SECONDS`."""


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
    """An ActionRunner that runs each promotion at most once per key (within the TTL), and again
    whenever the target tag no longer holds what the stored outcome says. Without `lambda_context`
    (the command line), an in-progress record expires after `CLI_IN_PROGRESS_SECONDS`."""
    config = IdempotencyConfig(
        event_key_jmespath=IDEMPOTENCY_KEY_JMESPATH,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.IDEMPOTENCY_TTL_SECONDS,
        response_hook=_mark_replayed,
    )
    # Without it, a timed-out or killed run leaves an INPROGRESS record that blocks its key until
    # the TTL (7 days): the Lambda's clock, or the command line's fixed window.
    config.register_lambda_context(lambda_context if lambda_context is not None else CliRunWindow())
    persistence.configure(config, key_prefix=IDEMPOTENCY_KEY_PREFIX)

    @idempotent_function(
        data_keyword_argument="action",
        persistence_store=persistence,
        config=config,
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )
    def promote(action: dict[str, Any]) -> dict[str, Any]:
        try:
            result = promoter.promote(Action.from_dict(action))
        except KeyboardInterrupt as exc:
            raise _Interrupted() from exc
        if not result.succeeded:
            raise _NotStored(result)
        return result.to_dict()

    def run(action: Action) -> ActionResult:
        data = action.to_dict()
        try:
            if not action.skip_reason:
                _forget_if_stale(persistence, data, lambda: promoter.target_digest(action))
            return ActionResult.from_dict(promote(action=data))
        except _NotStored as outcome:
            return outcome.result
        except _Interrupted as interrupted:
            raise KeyboardInterrupt from interrupted  # the record is released: stop as asked
        except IdempotencyAlreadyInProgressError as exc:
            target = f"{action.target_repository}:{action.target_tag}"
            raise PromotionInProgressError(f"{target}: {_in_progress_text(persistence, data)}") from exc
        except (IdempotencyPersistenceLayerError, IdempotencyInconsistentStateError) as exc:
            # Inconsistent state: the record changed between Powertools' put and get (another
            # invocation finished or expired it). Retrying later reads a settled record.
            raise IdempotencyStoreError(f"{type(exc).__name__}: {exc}") from exc

    return run


def _forget_if_stale(
    persistence: DynamoDBPersistenceLayer, data: dict[str, Any], held: Callable[[], str | None]
) -> None:
    """Deletes the action's COMPLETED record when the target tag (`held()`: what it holds now, read
    only when there is such a record) is not where that record says it was left, so the action runs
    again. Conditional on the record being the very one read: a concurrent run that already
    replaced it keeps its own.

    Raises IdempotencyPersistenceLayerError when DynamoDB cannot be read or written."""
    try:
        record = persistence.get_record(data)
    except IdempotencyItemNotFoundError:
        return
    except (ClientError, BotoCoreError) as exc:
        raise IdempotencyPersistenceLayerError("idempotency record not read", exc) from exc
    if record is None or record.status != STATUS_COMPLETED:
        return  # in progress: Powertools turns this run away; nothing to judge yet
    stored = _stored_target_digest(record)
    now = held()
    if stored is not None and stored == now:
        return
    logger.info(
        "idempotency record of %s:%s says %s, the tag holds %s: running the action again",
        data.get("target_repository"),
        data.get("target_tag"),
        stored,
        now,
    )
    try:
        persistence.client.delete_item(
            TableName=persistence.table_name,
            Key={persistence.key_attr: {"S": record.idempotency_key}},
            ConditionExpression="#status = :completed AND #data = :data",
            ExpressionAttributeNames={"#status": persistence.status_attr, "#data": persistence.data_attr},
            ExpressionAttributeValues={
                ":completed": {"S": STATUS_COMPLETED},
                ":data": {"S": record.response_data},
            },
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise IdempotencyPersistenceLayerError("stale idempotency record not deleted", exc) from exc
    except BotoCoreError as exc:
        raise IdempotencyPersistenceLayerError("stale idempotency record not deleted", exc) from exc


def _in_progress_text(persistence: DynamoDBPersistenceLayer, data: dict[str, Any]) -> str:
    """Why the action was turned away, for a person: until when the in-progress record blocks it and
    how to clear it when no run holds it any more (one killed with SIGKILL, a lost connection)."""
    try:
        record = persistence.get_record(data)
    except (IdempotencyItemNotFoundError, ClientError, BotoCoreError):
        record = None
    if record is None or record.status == STATUS_COMPLETED:
        return "another run was promoting it and has just finished: run again"
    key = json.dumps({persistence.key_attr: {"S": record.idempotency_key}}, separators=(",", ":"))
    expiry = record.in_progress_expiry_timestamp
    until = (
        f"until {datetime.fromtimestamp(int(expiry) / 1000, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        if expiry
        else "until it ends"
    )
    return (
        f"already in progress in another run (its idempotency record blocks it {until}); if no run is "
        f"alive (one was killed), wait until then or clear it: aws dynamodb delete-item "
        f"--table-name {persistence.table_name} --key '{key}'"
    )


def _stored_target_digest(record: DataRecord) -> str | None:
    try:
        stored = json.loads(record.response_data or "{}")
    except ValueError:
        return None
    digest = stored.get("target_digest") if isinstance(stored, dict) else None
    return digest if isinstance(digest, str) else None
