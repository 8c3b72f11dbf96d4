"""What Lambda hands the promoter's handlers in the tests: a context and SQS event batches (values
with the fields Powertools and the handlers read, not mocks of the handler). One copy for every
tier (unit, integration, runtime)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

REGION = "us-east-1"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:000000000000:promotions"


@dataclass
class FakeLambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "image-promoter"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:000000000000:function:image-promoter"
    aws_request_id: str = "req-1"
    log_group_name: str = "/aws/lambda/image-promoter"
    log_stream_name: str = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def sqs_record(body: str, message_id: str | None = None, receipt_handle: str = "h") -> dict[str, Any]:
    """One SQS record as the event source mapping delivers it (a fresh message id unless given)."""
    return {
        "messageId": message_id or f"msg-{uuid.uuid4().hex[:12]}",
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": REGION,
    }


def sqs_batch(*bodies: str) -> dict[str, Any]:
    """A batch of records with the message ids `msg-0`, `msg-1`, ... (what batchItemFailures name)."""
    return {"Records": [sqs_record(body, f"msg-{i}", f"handle-{i}") for i, body in enumerate(bodies)]}
