"""Typed properties of the ImagePromoter construct; every optional one has its default in one constant."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns

from infra.protection import check_break_glass_principals
from promoter import settings
from promoter.aws import rate_limit
from promoter.workflows.reconcile import DEFAULT_TIME_RESERVE_SECONDS

if TYPE_CHECKING:
    from promoter.model.config import PromotionConfig

# The promoter stack's name (`cdk deploy ImagePromoter`), which the target-account stacks trust
# by default: its fixed role names are derived from it.
STACK_NAME = "ImagePromoter"

# maximumConcurrency, derived from a measurement (BENCHMARKS.md, figure 4 at `--latency aws`):
# ECR's default PutImage quota is 10/s per account and region, and PutImage is the bottleneck (a
# single-platform promotion costs 1, a multi-arch copy children + 1). A worker handles its batch's
# records one after another, so it makes at most PUT_IMAGE_PER_EVENT / HANDLER_SECONDS_PER_EVENT
# PutImage a second; the quota needs quota x seconds-per-event / PutImage-per-event workers, times
# HEADROOM. The handler took 0.64-0.7 s per event with the local AWS's `aws` latency model (8 ECR
# calls, 2 /v2 mounts, 3 DynamoDB calls): 10 x 0.7 / 1 = 7 workers at the least. With headroom
# 1.1 (8 workers) two bursts took 1.09x and 1.15x the quota bound: batch boundaries and slow
# events eat the margin. Surplus workers cost nothing: every PutImage attempt waits for its
# registry's adaptive token bucket (promoter.aws.rate_limit), which spreads them at the quota
# (16 workers: 1.02x, 0.2 % throttled; without the bucket 21 % throttled). Headroom 1.4 -> 10.
# Re-derive it when the per-event latency changes, and raise it with the account's PutImage quota.
ECR_PUT_IMAGE_QUOTA_PER_SECOND = int(rate_limit.ECR_PUT_IMAGE_QUOTA_PER_SECOND)
HANDLER_SECONDS_PER_EVENT = 0.7
PUT_IMAGE_PER_EVENT = 1
CONCURRENCY_HEADROOM = 1.4
DEFAULT_MAX_CONCURRENCY = math.ceil(
    ECR_PUT_IMAGE_QUOTA_PER_SECOND * HANDLER_SECONDS_PER_EVENT / PUT_IMAGE_PER_EVENT * CONCURRENCY_HEADROOM
)
# Lambda's bounds for an SQS event source mapping's maximumConcurrency.
MIN_MAX_CONCURRENCY = 2
MAX_MAX_CONCURRENCY = 1000

DEFAULT_LOG_RETENTION = logs.RetentionDays.ONE_MONTH
# Idempotency records and history are operational state worth keeping when the stack goes away.
DEFAULT_TABLE_REMOVAL_POLICY = RemovalPolicy.RETAIN
DEFAULT_LOG_REMOVAL_POLICY = RemovalPolicy.RETAIN
DEFAULT_FUNCTION_TIMEOUT = Duration.minutes(5)
LAMBDA_MAX_TIMEOUT = Duration.minutes(15)
DEFAULT_MEMORY_SIZE_MB = 1024
# SQS batch size: records one invocation processes in sequence (a failure retries only its record).
DEFAULT_BATCH_SIZE = 10
# The reconciliation (issue 6): how often the sweep runs, and how long one run may take (it stops
# DEFAULT_TIME_RESERVE_SECONDS before the end and resumes at the next run).
DEFAULT_RECONCILE_RATE = Duration.hours(1)
DEFAULT_RECONCILE_TIMEOUT = Duration.minutes(10)
MIN_RECONCILE_RATE = Duration.minutes(1)
# A Lambda layer version ARN in any partition (an explicit Powertools layer, see powertools_layer_arn).
_LAYER_VERSION_ARN = re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[A-Za-z0-9_-]+:\d+")
# Who may post promotion requests to the bus: account ids or IAM principal ARNs. Empty = the
# stack's own account only.
DEFAULT_TRUSTED_PRINCIPALS: tuple[str, ...] = ()
# How often waits on a scan gate are checked against their deadline (only with gated rules).
DEFAULT_GATE_SWEEP_MINUTES = 5
# Who may write a protected target besides the promoter (`-c break_glass_principals=ARN,ARN`): none.
DEFAULT_BREAK_GLASS_PRINCIPALS: tuple[str, ...] = ()
# Who may send to the promoter's queue besides the stack's EventBridge rules: the principals that
# run `promoter redrive` (`-c redrive_principals=ARN,ARN`, exact role or user ARNs). None: redrive
# is refused by the queue policy until its operators are named (issue 18).
DEFAULT_REDRIVE_PRINCIPALS: tuple[str, ...] = ()
_EXACT_PRINCIPAL_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[A-Za-z0-9+=,.@_/-]+")
_ACCOUNT_ID = re.compile(r"\d{12}")
_PRINCIPAL_ARN = re.compile(r"arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/*-]+")


@dataclass(frozen=True)
class ImagePromoterProps:
    """What an ImagePromoter is built from. Only `config` is required.

    event_bus: bus for promotion requests and results; default None = a new bus is created.
    alarm_topic: SNS topic the alarms notify; default None = alarms without actions.
    trusted_principals: account ids / IAM ARNs allowed to post requests; default
        DEFAULT_TRUSTED_PRINCIPALS (the stack's account only).
    break_glass_principals: exact IAM role or user ARNs that may write protected targets (and
        change their policies) besides the promoter; default DEFAULT_BREAK_GLASS_PRINCIPALS (none).
    redrive_principals: exact IAM role or user ARNs that may send to the queue (`promoter redrive`)
        besides the stack's rules; default DEFAULT_REDRIVE_PRINCIPALS (none).
    request_source: the `source` of requests and results; default settings.DEFAULT_REQUEST_EVENT_SOURCE.
    gate_sweep_minutes: how often expired scan-gate waits are ended; default DEFAULT_GATE_SWEEP_MINUTES.
    powertools_layer_arn: the Powertools layer; default None = the ARN Powertools publishes for
        lambda_runtime.POWERTOOLS_VERSION in the deploy's region and partition (its SSM public
        parameter, resolved by CloudFormation). Set it only where that parameter is not published,
        to the same version's layer (the tests run that version).
    """

    config: PromotionConfig
    event_bus: events.IEventBus | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    alarm_topic: sns.ITopic | None = None
    log_retention: logs.RetentionDays = DEFAULT_LOG_RETENTION
    table_removal_policy: RemovalPolicy = DEFAULT_TABLE_REMOVAL_POLICY
    log_removal_policy: RemovalPolicy = DEFAULT_LOG_REMOVAL_POLICY
    function_timeout: Duration = DEFAULT_FUNCTION_TIMEOUT
    memory_size_mb: int = DEFAULT_MEMORY_SIZE_MB
    batch_size: int = DEFAULT_BATCH_SIZE
    powertools_layer_arn: str | None = None
    trusted_principals: tuple[str, ...] = DEFAULT_TRUSTED_PRINCIPALS
    redrive_principals: tuple[str, ...] = DEFAULT_REDRIVE_PRINCIPALS
    request_source: str = settings.DEFAULT_REQUEST_EVENT_SOURCE
    gate_sweep_minutes: int = DEFAULT_GATE_SWEEP_MINUTES
    # None: no scheduled reconciliation (`promoter reconcile` still works from the command line).
    reconcile_rate: Duration | None = DEFAULT_RECONCILE_RATE
    reconcile_timeout: Duration = DEFAULT_RECONCILE_TIMEOUT
    # Exact IAM role or user ARNs that may write protected targets and change their policies.
    break_glass_principals: tuple[str, ...] = DEFAULT_BREAK_GLASS_PRINCIPALS

    def __post_init__(self) -> None:
        """Reject values CloudFormation would only refuse at deploy time."""
        if not self.config.rules:
            raise ValueError("promotion config has no rules: nothing to deploy")
        if not MIN_MAX_CONCURRENCY <= self.max_concurrency <= MAX_MAX_CONCURRENCY:
            raise ValueError(
                f"max_concurrency must be between {MIN_MAX_CONCURRENCY} and {MAX_MAX_CONCURRENCY}, "
                f"got {self.max_concurrency}"
            )
        if not 1 <= self.batch_size <= 10:
            raise ValueError(
                f"batch_size must be between 1 and 10 (SQS standard queue), got {self.batch_size}"
            )
        if not 128 <= self.memory_size_mb <= 10240:
            raise ValueError(f"memory_size_mb must be between 128 and 10240, got {self.memory_size_mb}")
        if not 1 <= self.function_timeout.to_seconds() <= LAMBDA_MAX_TIMEOUT.to_seconds():
            raise ValueError(
                "function_timeout must be between 1 second and 15 minutes, "
                f"got {self.function_timeout.to_human_string()}"
            )
        if (
            self.reconcile_rate is not None
            and self.reconcile_rate.to_seconds() < MIN_RECONCILE_RATE.to_seconds()
        ):
            raise ValueError(
                f"reconcile_rate must be at least 1 minute, got {self.reconcile_rate.to_human_string()}"
            )
        if (
            not DEFAULT_TIME_RESERVE_SECONDS
            < self.reconcile_timeout.to_seconds()
            <= LAMBDA_MAX_TIMEOUT.to_seconds()
        ):
            raise ValueError(
                f"reconcile_timeout must be more than {DEFAULT_TIME_RESERVE_SECONDS:.0f} seconds (the time a "
                f"run keeps in reserve) and at most 15 minutes, got "
                f"{self.reconcile_timeout.to_human_string()}"
            )
        for principal in self.trusted_principals:
            if not (_ACCOUNT_ID.fullmatch(principal) or _PRINCIPAL_ARN.fullmatch(principal)):
                raise ValueError(
                    f"trusted_principals takes 12-digit account ids or IAM principal ARNs, got {principal!r}"
                )
        for principal in self.redrive_principals:
            if not _EXACT_PRINCIPAL_ARN.fullmatch(principal):
                raise ValueError(f"redrive_principals takes exact IAM role or user ARNs, got {principal!r}")
        if not self.request_source or self.request_source.startswith("aws."):
            raise ValueError(
                f"request_source must be non-empty, not 'aws.*' (reserved), got {self.request_source!r}"
            )
        check_break_glass_principals(self.break_glass_principals)
        if not 1 <= self.gate_sweep_minutes <= 60:
            raise ValueError(f"gate_sweep_minutes must be between 1 and 60, got {self.gate_sweep_minutes}")
        if self.powertools_layer_arn is not None and not _LAYER_VERSION_ARN.fullmatch(
            self.powertools_layer_arn
        ):
            raise ValueError(
                f"powertools_layer_arn must be a Lambda layer version ARN, got {self.powertools_layer_arn!r}"
            )
