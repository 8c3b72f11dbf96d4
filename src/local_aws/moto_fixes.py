"""Performance fixes for moto behind the local AWS: the same answers, less work.

moto 5.2.5's SQS `receive_message` checks each message it returns against the queue's retention
period by building *every* queue attribute (ApproximateNumberOfMessages and friends walk the whole
queue, with a datetime per message), so one receive of 10 from a queue holding 1,000 messages took
0.7-1.1 s and grew with the queue (`python -m bench`, figure 4). The check needs one integer.
"""

from __future__ import annotations

from typing import Any

_applied = False


def apply() -> None:
    """Patch moto's SQS backend once per process (idempotent)."""
    global _applied
    if _applied:
        return
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_seconds = int(self.get_queue(queue_name).message_retention_period)
        return retention_seconds + message.sent_timestamp / 1000 > unix_time()

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    _applied = True
