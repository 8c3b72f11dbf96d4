"""Approval decisions on the gates table: the approval channel's one write (issue 20).

A decision is recorded on the wait's own record (`promoter.model.verdicts.Waiting`, found by its
`wait_id` through the table's `by-wait-id` index) with ONE conditional UpdateItem, so that what the
channel checked before writing still holds when it writes, whoever else decides at the same time:

- an approval adds `approvals.<principal>` = {at, reason} only if that principal has no entry yet
  (approving twice counts once), the wait was neither rejected nor superseded, and its deadline
  has not passed;
- a rejection sets `rejection` = {by, at, reason} under the same conditions (one rejection ends
  the wait; a second one finds it rejected).

Who may decide (an approver, not the requester) is `promoter.model.approvals.refusal`'s to say,
before the write; the condition only guards what can change between the read and the write.
A condition that fails is answered from the record as it was then (the write returns it): 404 when
the wait is gone, else the refusal it now earns (409).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from promoter import settings
from promoter.aws.gate_store import DynamoDbGates, waiting_of
from promoter.exceptions import GateStoreError, PromoterError
from promoter.model.approvals import (
    APPROVALS_KEY,
    APPROVE,
    CONFLICT,
    DECISIONS,
    REJECTION_KEY,
    SUPERSEDED_BY_KEY,
    iso_time,
)
from promoter.model.verdicts import Waiting

logger = logging.getLogger(__name__)

NOT_FOUND = 404


class ApprovalRefusedError(PromoterError):
    """A decision the channel refuses: `code` is the HTTP status it answers (403 not the caller's
    to decide, 404 no such wait, 409 the wait is past deciding or the caller decided already)."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class ApprovalStore:
    """Finds approval waits by id and records decisions on them (gates table from settings unless
    given)."""

    def __init__(self, table_name: str | None = None, resource: Any = None) -> None:
        resource = resource or boto3.resource("dynamodb")
        self._gates = DynamoDbGates(table_name, resource)
        self._table = resource.Table(table_name or settings.gates_table_name())

    def find(self, wait_id: str) -> Waiting | None:
        """The wait with this id, read through the `by-wait-id` index (projection ALL: the whole
        record, eventually consistent; the conditional write in `record` guards what a stale read
        could miss); None when there is none. Raises GateStoreError when the table cannot be read."""
        return self._gates.find(wait_id)

    def record(
        self,
        wait: Waiting,
        principal: str,
        decision: str,
        reason: str,
        now: float,
    ) -> Waiting:
        """Records `principal`'s `decision` ("approve" or "reject") with `reason` on `wait`, at
        `now`, in one conditional UpdateItem; returns the wait as recorded then. Whether the caller
        may decide at all is checked before (`promoter.model.approvals.refusal`); this raises
        ApprovalRefusedError (404, 409) when the wait ended or was decided between that check and
        the write, and GateStoreError when the table fails."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
        entry = {"at": iso_time(now), "reason": reason}
        names = {"#rejection": REJECTION_KEY, "#superseded": SUPERSEDED_BY_KEY, "#deadline": "deadline"}
        values: dict[str, Any] = {":now": int(now)}
        # Still there, still open (not rejected, not superseded, not past its deadline) ...
        still_open = (
            "attribute_exists(pk) AND attribute_not_exists(#rejection)"
            " AND attribute_not_exists(#superseded) AND #deadline > :now"
        )
        key = {"pk": wait.pk, "sk": wait.sk}
        if decision != APPROVE:
            values[":decision"] = {"by": principal, **entry}
            item = self._update(key, principal, "SET #rejection = :decision", still_open, names, values)
            return waiting_of(item)
        # ... and this person has not approved it yet: approving twice counts once.
        names.update({"#approvals": APPROVALS_KEY, "#person": principal})
        values[":decision"] = entry
        try:
            item = self._update(
                key,
                principal,
                "SET #approvals.#person = :decision",
                f"{still_open} AND attribute_not_exists(#approvals.#person)",
                names,
                values,
            )
        except _MissingApprovalsMap:
            # A wait recorded without its (empty) approvals map: the first approval writes the map,
            # under the same condition and on the map's absence, still one write.
            del names["#person"]
            values[":decision"] = {principal: entry}
            item = self._update(
                key,
                principal,
                "SET #approvals = :decision",
                f"{still_open} AND attribute_not_exists(#approvals)",
                names,
                values,
            )
        return waiting_of(item)

    def _update(
        self,
        key: Mapping[str, str],
        principal: str,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> dict[str, Any]:
        try:
            response = self._table.update_item(
                Key=dict(key),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code")
            if code == "ConditionalCheckFailedException":
                raise self._lost_race(exc, principal, int(values[":now"])) from None
            if code == "ValidationException" and "document path" in str(error.get("Message", "")):
                raise _MissingApprovalsMap() from exc
            raise GateStoreError(f"decision not recorded on {key['pk']} {key['sk']}: {exc}") from exc
        except BotoCoreError as exc:
            raise GateStoreError(f"decision not recorded on {key['pk']} {key['sk']}: {exc}") from exc
        return dict(response["Attributes"])

    @staticmethod
    def _lost_race(exc: ClientError, principal: str, now: int) -> ApprovalRefusedError:
        """The refusal a failed condition earns: what changed between the check and the write."""
        from boto3.dynamodb.types import TypeDeserializer

        typed = exc.response.get("Item") or {}  # the low-level shape: {"deadline": {"N": "..."}}
        old = {name: TypeDeserializer().deserialize(value) for name, value in typed.items()}
        if not old:
            return ApprovalRefusedError("this wait has ended: nothing waits under this id", NOT_FOUND)
        data = waiting_of(old).data
        if data.get(SUPERSEDED_BY_KEY):
            return ApprovalRefusedError(
                f"this wait was superseded by request {data[SUPERSEDED_BY_KEY]}", CONFLICT
            )
        if data.get(REJECTION_KEY):
            return ApprovalRefusedError("this wait was already rejected", CONFLICT)
        approvals = data.get(APPROVALS_KEY)
        if isinstance(approvals, Mapping) and principal in approvals:
            return ApprovalRefusedError(f"{principal} already approved this wait", CONFLICT)
        deadline = float(old["deadline"])
        if deadline <= now:
            return ApprovalRefusedError(f"this wait expired at {iso_time(deadline)}", CONFLICT)
        return ApprovalRefusedError("this wait changed while the decision was written: try again", CONFLICT)


class _MissingApprovalsMap(Exception):
    """The record has no `approvals` map to add a principal to."""
