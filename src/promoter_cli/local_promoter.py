"""The promoter inside `promoter local --config`: the stack's event path and its Lambda handler.

What the stack deploys is built on the local AWS by `local_aws.stack_route.route_stack` (the push
rule on the default bus, the request rule on the promotion bus, the queue with its dead-letter
queue, the rule targets' delivery dead-letter queue), and the real handler,
`promoter.handler.handle_queue`, consumes the queue behind Lambda's SQS event source mapping
(`local_aws.event_source_mapping`), in threads of the `promoter local` process, with the
environment the stack sets (`settings.function_environment`) and the configuration staged as the
stack stages it (parsed, as JSON). So a `skopeo copy` into a source repository is promoted by
itself, and `promoter request` is answered, exactly as deployed.

The handler's JSON logs and metrics go to a file, as they go to CloudWatch Logs; the terminal gets
one line per action the handler took (outcome, target, digest, rule, trigger and source) and one
per event it could not handle or had nothing to do for, except the promoter's own pushes into its
targets (routed back to it for the out-of-band check, which recognises them): those print nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from promoter import settings
from promoter.model.config import TRIGGER_PUSH, TRIGGER_REQUEST, PromotionConfig, Rule
from promoter_cli.output import action_row, qualified, short_digest
from promoter_cli.resources import (
    DEAD_LETTER_QUEUE_URL_ENV,
    DELIVERY_DEAD_LETTER_QUEUE_URL_ENV,
    QUEUE_URL_ENV,
)

if TYPE_CHECKING:
    from local_aws import LocalAws
    from local_aws.event_source_mapping import Invocation
    from promoter.model.events import ImagePushed

HANDLER_NAME = "promoter.handler.handle_queue"
LOG_FILE = "promoter.log"
# Lambda's settings for the local function: the event source mapping's own defaults (batch of 10,
# 2 invocations at a time, 60 s timeout); a message the function hands back is received again once
# the visibility timeout ends, a few seconds after the longest invocation could.
DELETE_MARGIN_SECONDS = 5
# Receives before the queue moves a message to its dead-letter queue: the stack's.
MAX_RECEIVE_COUNT = settings.MAX_RECEIVE_COUNT
# After the queue could not be read (the local AWS stopping, say), try again after this long.
RECEIVE_RETRY_SECONDS = 1.0


class LocalPromoter:
    """The promoter function, wired and running on a started `LocalAws`.

    `start()` wires the routes, stages the configuration in `work_dir` (None: a temporary
    directory, removed by `stop()`), points this process's environment at the local AWS and
    starts consuming the queue; `stop()` stops receiving, waits for the invocations in flight
    (each ends by the function timeout) and closes the log. Terminal lines go to `terminal`.
    """

    def __init__(
        self, local: LocalAws, config: PromotionConfig, work_dir: Path | None, terminal: TextIO
    ) -> None:
        from local_aws.event_source_mapping import DEFAULT_TIMEOUT_SECONDS

        self.local = local
        self.config = config
        self.terminal = terminal
        self.timeout_seconds = DEFAULT_TIMEOUT_SECONDS
        self.visibility_timeout_seconds = DEFAULT_TIMEOUT_SECONDS + DELETE_MARGIN_SECONDS
        self._temporary = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="promoter-local-")) if work_dir is None else work_dir
        self.log_path = self.work_dir / LOG_FILE
        self.route: Any = None
        self.approval_path: str | None = None  # the approval channel's path, when it is served
        self._log: TextIO | None = None
        self._esm: Any = None
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._reporter: TerminalReporter | None = None
        self._stdout = contextlib.ExitStack()

    def start(self) -> LocalPromoter:
        """Wires and starts the promoter. Raises botocore's ClientError if the local AWS refuses a call."""
        import boto3

        from local_aws.event_source_mapping import EventSourceMapping
        from local_aws.stack_route import route_stack

        self.work_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.work_dir / settings.STAGED_CONFIG_FILE
        config_file.write_text(self.config.to_json())
        session = boto3.session.Session(**self._credentials())
        sqs = session.client("sqs", endpoint_url=self.local.endpoint)
        self.route = route_stack(
            sqs,
            session.client("events", endpoint_url=self.local.endpoint),
            self.config,
            account=self.local.account,
            visibility_timeout_seconds=self.visibility_timeout_seconds,
            max_receive_count=MAX_RECEIVE_COUNT,
            # `promoter redrive` runs with the exports `promoter local` prints: the administrator's.
            redrive_principals=(f"arn:aws:iam::{self.local.account}:root",),
            kms=session.client("kms", endpoint_url=self.local.endpoint),
            sns=session.client("sns", endpoint_url=self.local.endpoint),
        )
        self._point_environment_at_local_aws(config_file)
        handle_queue = self._load_handler()
        from local_aws.approvals import serve_approvals

        # The stack's approval channel (infra/approvals.py) when some rule requires approval; the
        # promoter runs as the account's administrator here, so that principal never decides.
        self.approval_path = serve_approvals(
            self.local.function_urls,
            self.config,
            account=self.local.account,
            region=self.local.region,
            promoter_roles=(f"arn:aws:iam::{self.local.account}:root",),
        )
        self._reporter = TerminalReporter(self, self.config)
        logging.getLogger(settings.SERVICE_NAME).addHandler(self._reporter)

        def invoke(event: dict[str, Any], context: Any) -> Any:
            with self._lock:
                self._in_flight += 1
            noted = self._reporter.note_pushes(event) if self._reporter is not None else []
            try:
                return handle_queue(event, context)
            finally:
                if self._reporter is not None:
                    self._reporter.forget(noted)
                with self._lock:
                    self._in_flight -= 1

        self._esm = EventSourceMapping(
            sqs,
            self.route.queue_url,
            invoke,
            timeout_seconds=self.timeout_seconds,
            function_name=settings.SERVICE_NAME,
            observer=self._reporter.invocation_ended,
        )
        # Powertools prints the metrics (CloudWatch EMF) on stdout: into the log, with the JSON logs.
        self._stdout.enter_context(contextlib.redirect_stdout(self._log))
        self._poller = threading.Thread(target=self._poll, name="event-source-mapping", daemon=True)
        self._poller.start()
        return self

    def stop(self) -> None:
        """Stops receiving; waits for the invocations in flight; removes a temporary work dir."""
        self._stopping.set()
        if self.approval_path is not None:
            self.local.function_urls.remove(self.approval_path)
            self.approval_path = None
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        if self._esm is not None:
            with self._lock:
                busy = self._in_flight
            if busy:
                self.say(f"waiting for {busy} invocation(s) in flight (at most {self.timeout_seconds} s)")
            self._esm.close()
            self._esm = None
        self._stdout.close()
        if self._reporter is not None:
            logging.getLogger(settings.SERVICE_NAME).removeHandler(self._reporter)
            self._reporter = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._temporary:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def environment(self) -> dict[str, str]:
        """What the CLI needs to reach this promoter: its bus (`promoter request`) and its queues
        (`promoter redrive`), as the variables `--stack` would set from the stack's outputs."""
        return {
            settings.EVENT_BUS_ENV: self.route.event_bus,
            QUEUE_URL_ENV: self.route.queue_url,
            DEAD_LETTER_QUEUE_URL_ENV: self.route.dlq_url,
            DELIVERY_DEAD_LETTER_QUEUE_URL_ENV: self.route.delivery_dlq_url,
            # The key that signs attestations: `promoter promote` and `rollback` attest with it too.
            settings.ATTESTATION_KEY_ENV: self.route.attestation_key,
        }

    def ready_lines(self) -> list[str]:
        """The ready block's lines about the promoter: what is wired, the variables to paste, the log."""
        lines = [f"# The promoter runs here as the stack runs it (EventBridge -> SQS -> {HANDLER_NAME}):"]
        for trigger, when in (
            (TRIGGER_PUSH, "on ECR pushes (default bus)"),
            (TRIGGER_REQUEST, f"on promoter request (bus {self.route.event_bus})"),
        ):
            rules = self.config.rules_for(trigger)
            lines.append(f"#   {trigger} rules, {when}:" + ("" if rules else " none"))
            lines += [f"#     {rule_summary(rule)}" for rule in rules]
        lines += [
            f"#   a message the handler fails on {MAX_RECEIVE_COUNT} times goes to the dead-letter queue "
            "(promoter redrive)",
        ]
        if self.approval_path is not None:
            lines.append(
                f"#   approvals: POST {self.local.endpoint}{self.approval_path}, signed for the service "
                "lambda (promoter approve/reject, keys from promoter local credentials --principal ARN)"
            )
        told = [t for t in (self.route.alarm_topic, *self.route.notify_topics) if t]
        if told:
            lines.append(
                f"#   approval waits are told on SNS {', '.join(told)} (subscribe a queue to read them)"
            )
        lines += [
            f"#   {arn}: not this local AWS's account and region, nobody is told there"
            for arn in self.route.unreachable_topics
        ]
        lines += [
            "# Its bus and queues, for promoter request and promoter redrive (paste this too):",
            "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in self.environment().items()),
            f"# The handler's JSON logs and metrics: {self.log_path}"
            + (" (removed at exit; keep them with --data DIR)" if self._temporary else ""),
            "# Each event it handles prints a line below: OUTCOME TARGET DIGEST RULE (TRIGGER SOURCE)",
        ]
        return lines

    def say(self, text: str) -> None:
        """One line on the terminal, stamped with the local time."""
        with self._lock:
            print(f"{time.strftime('%H:%M:%S')} {text}", file=self.terminal, flush=True)

    def _poll(self) -> None:
        while not self._stopping.is_set():
            try:
                self._esm.poll_once()
            except Exception as exc:  # the loop must outlive a failed receive; say so and go on
                self.say(f"ERROR receiving from {self.route.queue_url}: {exc}")
                self._stopping.wait(RECEIVE_RETRY_SECONDS)

    def _credentials(self) -> dict[str, str]:
        from promoter_cli.cmd_local import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY

        return {
            "aws_access_key_id": LOCAL_ACCESS_KEY_ID,
            "aws_secret_access_key": LOCAL_SECRET_ACCESS_KEY,
            "region_name": self.local.region,
        }

    def _point_environment_at_local_aws(self, config_file: Path) -> None:
        """The function's environment in this process: the stack's variables, and only the local
        AWS's endpoint, region and keys (a profile or session token of the user's must not send
        the handler anywhere else)."""
        from promoter.gates.approval import ALARM_TOPIC_ENV

        for name in [n for n in os.environ if n.startswith("AWS_")]:
            del os.environ[name]
        credentials = self._credentials()
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.local.endpoint,
                "AWS_REGION": self.local.region,
                "AWS_DEFAULT_REGION": self.local.region,
                "AWS_ACCESS_KEY_ID": credentials["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": credentials["aws_secret_access_key"],
                **settings.function_environment(
                    config_path=str(config_file),
                    event_bus=self.route.event_bus,
                    attestation_key=self.route.attestation_key,
                ),
                # `notify: alarm-topic`: the stack sets its alarm topic's ARN (infra/construct.py).
                **({ALARM_TOPIC_ENV: self.route.alarm_topic} if self.route.alarm_topic else {}),
            }
        )

    def _load_handler(self) -> Any:
        """Imports the handler (after the environment is set: it reads it at import) and sends its
        JSON logs to the log file."""
        from promoter import handler

        self._log = self.log_path.open("a", encoding="utf-8")
        for log_handler in logging.getLogger(settings.SERVICE_NAME).handlers:
            if isinstance(log_handler, logging.StreamHandler):
                log_handler.setStream(self._log)
        return handler.handle_queue


def rule_summary(rule: Rule) -> str:
    """`dev-to-staging: app-dev:sha-* -> app-staging:{tag}` (targets in another registry qualified)."""
    targets = []
    for target in rule.targets:
        registry = target.registry
        where = (
            qualified(target.repository, registry.account, registry.region) if registry else target.repository
        )
        targets.append(f"{where}:{','.join(target.tags)}")
    return f"{rule.name}: {rule.source.repository}:{','.join(rule.source.tags)} -> {' + '.join(targets)}"


def action_line(action: Mapping[str, Any], trigger: str) -> str:
    """One action the handler took: `promoted app-staging:sha-1 sha256:0123456789ab dev-to-staging
    (push app-dev:sha-1)`, its reason after a colon when it has one."""
    outcome, target, digest, reason = action_row(action)
    source = action["source_repository"]
    source += (
        f":{action['source_tag']}"
        if action.get("source_tag")
        else f"@{short_digest(action['source_digest'])}"
    )
    line = f"{outcome} {target} {digest} {action['rule']} ({trigger} {source})"
    return f"{line}: {reason}" if reason else line


class TerminalReporter(logging.Handler):
    """Turns the handler's `event handled` records (and its errors) and the event source mapping's
    verdicts into terminal lines."""

    def __init__(self, promoter: LocalPromoter, config: PromotionConfig) -> None:
        super().__init__(level=logging.INFO)
        self.promoter = promoter
        self.config = config
        self.triggers = {rule.name: rule.trigger for rule in config.rules}
        # The pushes of the batches being handled, by event id: a push into a target tag that the
        # out-of-band check recognised as the promoter's own write prints nothing.
        self._pushes: dict[str, ImagePushed] = {}

    def note_pushes(self, batch: Mapping[str, Any]) -> list[str]:
        """Remembers the ECR pushes of an SQS batch about to be handled; their event ids."""
        from promoter.exceptions import EventError, MalformedMessageError
        from promoter.model.events import ImagePushed, parse_json_event

        noted = []
        for record in batch.get("Records") or ():
            try:
                event = parse_json_event(str(record.get("body", "")))
            except (EventError, MalformedMessageError):
                continue  # the handler says what is wrong with it
            if isinstance(event, ImagePushed):
                self._pushes[event.event_id] = event
                noted.append(event.event_id)
        return noted

    def forget(self, event_ids: list[str]) -> None:
        for event_id in event_ids:
            self._pushes.pop(event_id, None)

    def _own_write(self, result: Mapping[str, Any]) -> bool:
        """An ignored push into a target tag that the out-of-band check looked at and found no
        `foreign` write in: the promoter's own (a promotion's PutImage, routed back to it)."""
        from promoter.model.outcomes import FOREIGN
        from promoter.workflows.out_of_band import watched_rules

        push = self._pushes.get(str(result.get("event_id")))
        if push is None or result.get("error") or not watched_rules(push, self.config):
            return False
        return not any(action.get("outcome") == FOREIGN for action in result.get("results") or ())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            result = getattr(record, "result", None)
            if message == "event handled" and isinstance(result, dict):
                self._event_handled(result)
            elif record.levelno >= logging.ERROR:
                error = getattr(record, "error", None)
                self.promoter.say(f"ERROR {message}" + (f": {error}" if error else ""))
        except Exception:  # a reporting bug must not fail the invocation: logging reports it on stderr
            self.handleError(record)

    def _event_handled(self, result: Mapping[str, Any]) -> None:
        event = f"(event {result.get('event_id')})"
        if result.get("error"):
            self.promoter.say(f"error {event}: {result['error']}")
        if result.get("ignored_reason") and not self._own_write(result):
            self.promoter.say(f"nothing to do {event}: {result['ignored_reason']}")
        for action in result.get("results") or ():
            self.promoter.say(action_line(action, self.triggers.get(action["rule"], "?")))

    def invocation_ended(self, event: dict[str, Any], invocation: Invocation) -> None:
        """The event source mapping's verdict: say what goes back to the queue, and why."""
        back = (
            f"back in the queue for {self.promoter.visibility_timeout_seconds} s, then delivered again "
            f"(after {MAX_RECEIVE_COUNT} receives: the dead-letter queue, see promoter redrive)"
        )
        if invocation.error is not None:
            self.promoter.say(
                f"ERROR invocation failed ({invocation.error}): its {invocation.records} message(s) {back}"
            )
        elif invocation.failed_ids:
            self.promoter.say(f"{len(invocation.failed_ids)} of {invocation.records} message(s) {back}")
