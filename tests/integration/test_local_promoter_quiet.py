"""`promoter local --config`'s terminal: the promoter's own pushes into its targets (routed back to
it for the out-of-band check, which recognises them) print nothing, while a push no rule takes
still prints its `nothing to do` line."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest

from tests.integration.test_local_promoter import (  # noqa: F401 - running is a fixture
    PROMOTION_TIMEOUT_SECONDS,
    cli,
    push,
    running,
    wait_until_held,
)

pytestmark = pytest.mark.integration
LOG_LINE = "# The handler's JSON logs and metrics: "


def wait_for(condition, what: str) -> None:
    """Polls `condition` until it holds; the bound is against a hang, the condition ends the wait."""
    deadline = time.monotonic() + PROMOTION_TIMEOUT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def queue_drained(env: dict[str, str]) -> bool:
    """No message waiting and none in flight: every handled message was deleted, so its
    invocation, and whatever it printed, is over."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs.get_queue_attributes(QueueUrl=env["PROMOTER_QUEUE_URL"], AttributeNames=names)["Attributes"]
    return all(found[n] == "0" for n in names)


def test_the_promoters_own_pushes_into_targets_print_nothing_on_the_terminal(running):  # noqa: F811
    terminal, env = running["terminal"], running["env"]
    (log_line,) = [line for line in running["ready"] if line.startswith(LOG_LINE)]
    log = Path(log_line.removeprefix(LOG_LINE).split(" (", 1)[0])
    digest = push(running, "app-dev", "sha-q")
    wait_until_held(running["ecr"], "app-staging", "sha-q", digest)
    requested = cli(env, "request", "--repository", "app-staging", "--tag", "sha-q", "--rule", "to-prod")
    assert requested.returncode == 0, requested.stderr
    terminal.until(rf"promoted app-prod:sha-q {digest[:19]} to-prod", PROMOTION_TIMEOUT_SECONDS)
    # The promoter's push into app-prod came back to it and was handled (its JSON log says it was
    # ignored), and its invocation is over.
    wait_for(lambda: "no push rule matches app-prod:sha-q" in log.read_text(), "the own push handled")
    wait_for(lambda: queue_drained(env), "the queue drained")

    # A push no rule takes is still said: printed after anything the own push could have printed.
    push(running, "app-dev", "nightly")
    terminal.until(
        r"nothing to do \(event .*\): no push rule matches app-dev:nightly", PROMOTION_TIMEOUT_SECONDS
    )

    said = [line for line in terminal.seen if "nothing to do" in line]
    assert [line for line in said if "app-prod:sha-q" in line or "app-staging:sha-q" in line] == [], said
