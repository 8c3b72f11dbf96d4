"""The stack's event routes, built on the local AWS: rules with the stack's own patterns feeding an
SQS queue that redrives to a dead-letter queue. The demo and the benchmarks drive the Lambda
handler through the push route; `promoter local --config` builds the whole path (`route_stack`),
so what they exercise is what `infra` deploys."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infra.bus_policies import request_statements
from infra.event_patterns import (
    approval_decided_event_pattern,
    basic_scan_event_pattern,
    push_event_pattern,
    request_event_pattern,
    trust_material_event_pattern,
    trust_material_globs,
    watched_repository_globs,
)
from infra.queue_policies import eventbridge_sends, nobody_sends, only_rules_send
from promoter import settings
from promoter.gates.base import waiting_gate_names
from promoter.model.config import TRIGGER_PUSH, TRIGGER_REQUEST, PromotionConfig
from promoter.model.verdicts import APPROVAL_GATE

# The local names of what the stack creates under generated names: its queue (the dead-letter
# queues are `<queue>-dlq` and `<queue>-delivery-dlq`) and its promotion bus.
QUEUE_NAME = "image-promoter-events"
PROMOTION_BUS = settings.SERVICE_NAME
# The rule targets' delivery retries, as the stack sets them (infra/construct.py): EventBridge
# gives up on an event after this many retries or this age, and puts it in the delivery DLQ.
TARGET_RETRY_ATTEMPTS = 8
TARGET_MAX_EVENT_AGE_SECONDS = 24 * 3600
# The local name of the stack's alarm topic (infra.monitoring.notification_topic), which approval
# gates with `notify: alarm-topic` tell (ALARM_TOPIC_ARN).
ALARM_TOPIC_NAME = f"{settings.SERVICE_NAME}-alarms"


@dataclass(frozen=True)
class PushRoute:
    """Where the push events of a configuration arrive (the rule is named like the queue)."""

    queue_url: str
    dlq_url: str
    rule_name: str


@dataclass(frozen=True)
class StackRoute:
    """The stack's whole path into the function's queue: the push rule on the default bus (None
    when no rule fires on push), the request rule on the promotion bus, and both dead-letter
    queues (`dlq_url` the queue's own, `delivery_dlq_url` the rule targets')."""

    queue_url: str
    dlq_url: str
    delivery_dlq_url: str
    event_bus: str
    push_rule: str | None
    request_rule: str
    scan_rule: str | None = None  # finished basic scans of scan-gated sources (None: no scan gate)
    approval_rule: str | None = None  # approval decisions on the promotion bus (None: no approval gate)
    attestation_key: str | None = None  # the ARN of the key that signs attestations (infra.attestation)
    alarm_topic: str | None = None  # the alarm topic's ARN, when an approval gate notifies it
    notify_topics: tuple[str, ...] = ()  # the approval gates' own topics, made on the local AWS
    unreachable_topics: tuple[str, ...] = ()  # those of another account or region: nobody is told


def route_pushes(
    sqs: Any,
    events: Any,
    config: PromotionConfig,
    queue_name: str,
    *,
    visibility_timeout_seconds: int,
    max_receive_count: int,
) -> PushRoute:
    """Creates `<queue_name>-dlq`, the queue (redrive after `max_receive_count` receives) and the
    rule for the push rules' source repositories."""
    queue_url, dlq_url = _queue_with_dlq(sqs, queue_name, visibility_timeout_seconds, max_receive_count)
    pattern = push_event_pattern(r.source.repository_glob for r in config.rules_for(TRIGGER_PUSH))
    events.put_rule(Name=queue_name, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=queue_name, Targets=[{"Id": "queue", "Arn": queue_arn(sqs, queue_url)}])
    return PushRoute(queue_url, dlq_url, queue_name)


def route_stack(
    sqs: Any,
    events: Any,
    config: PromotionConfig,
    *,
    account: str,
    queue_name: str = QUEUE_NAME,
    event_bus: str = PROMOTION_BUS,
    request_source: str = settings.DEFAULT_REQUEST_EVENT_SOURCE,
    visibility_timeout_seconds: int,
    max_receive_count: int,
    redrive_principals: tuple[str, ...] = (),
    kms: Any = None,
    sns: Any = None,
) -> StackRoute:
    """What infra/construct.py wires, on the local AWS: the queue and its DLQ; the promotion bus;
    on the default bus a rule with the stack's push pattern for `account`'s pushes (when some rule
    fires on push or writes a target here); on the promotion bus the request rule (always: a request
    naming no request rule still gets its failure result) and, with an approval gate, the approval
    channel's decisions (`Promotion Approval Decided`); each rule's target with the stack's
    retries and the delivery dead-letter queue; with `kms`, the attestation key (`attestation_key`);
    with `sns`, the topics approval gates notify (`approval_topics`).
    Raises botocore's ClientError when the local AWS refuses a call."""
    queue_url, dlq_url = _queue_with_dlq(sqs, queue_name, visibility_timeout_seconds, max_receive_count)
    delivery_dlq_url = str(sqs.create_queue(QueueName=f"{queue_name}-delivery-dlq")["QueueUrl"])
    target = {
        "Id": "queue",
        "Arn": queue_arn(sqs, queue_url),
        "DeadLetterConfig": {"Arn": queue_arn(sqs, delivery_dlq_url)},
        "RetryPolicy": {
            "MaximumRetryAttempts": TARGET_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": TARGET_MAX_EVENT_AGE_SECONDS,
        },
    }
    push_rule = scan_rule = None
    rule_arns: list[str] = []
    gated = config.gated_source_repository_globs()
    if gated:  # the stack's ScanRule: a waiting scan-gated promotion resumes on its scan event
        scan_rule = f"{queue_name}-scans"
        pattern = basic_scan_event_pattern(gated, account)
        put = events.put_rule(Name=scan_rule, EventPattern=json.dumps(pattern), State="ENABLED")
        rule_arns.append(str(put["RuleArn"]))
        events.put_targets(Rule=scan_rule, Targets=[target])
    watched = watched_repository_globs(config)  # the push rules' sources and the targets, as the stack
    if watched:
        push_rule = f"{queue_name}-pushes"
        pattern = push_event_pattern(watched, account)
        put = events.put_rule(Name=push_rule, EventPattern=json.dumps(pattern), State="ENABLED")
        rule_arns.append(str(put["RuleArn"]))
        events.put_targets(Rule=push_rule, Targets=[target])
    # the stack's TrustMaterialRule: signatures, SBOMs and attestations arriving after their image
    trust_rule = f"{queue_name}-trust-material"
    pattern = trust_material_event_pattern(trust_material_globs(config), account)
    put = events.put_rule(Name=trust_rule, EventPattern=json.dumps(pattern), State="ENABLED")
    rule_arns.append(str(put["RuleArn"]))
    events.put_targets(Rule=trust_rule, Targets=[target])
    if event_bus != settings.DEFAULT_EVENT_BUS:
        known = {b["Name"] for b in events.list_event_buses(NamePrefix=event_bus)["EventBuses"]}
        if event_bus not in known:
            events.create_event_bus(Name=event_bus)
    request_rule = f"{queue_name}-requests"
    with_requesters = (r.name for r in config.rules_for(TRIGGER_REQUEST) if r.requesters)
    pattern = request_event_pattern(request_source, with_requesters)
    put = events.put_rule(
        Name=request_rule, EventBusName=event_bus, EventPattern=json.dumps(pattern), State="ENABLED"
    )
    rule_arns.append(str(put["RuleArn"]))
    events.put_targets(Rule=request_rule, EventBusName=event_bus, Targets=[target])
    approval_rule = None
    if APPROVAL_GATE in waiting_gate_names(config):  # the stack's ApprovalDecidedRule
        approval_rule = f"{queue_name}-approvals"
        pattern = approval_decided_event_pattern(account)
        put = events.put_rule(
            Name=approval_rule, EventBusName=event_bus, EventPattern=json.dumps(pattern), State="ENABLED"
        )
        rule_arns.append(str(put["RuleArn"]))
        events.put_targets(Rule=approval_rule, EventBusName=event_bus, Targets=[target])
    restrict_queues(sqs, (queue_url, dlq_url, delivery_dlq_url), rule_arns, redrive_principals)
    if event_bus != settings.DEFAULT_EVENT_BUS:  # the default bus is the account's, not the stack's
        restrict_bus(events, event_bus, account, config, request_source)
    alarm_topic, notify_topics, unreachable = (
        approval_topics(sns, config, account=account) if sns is not None else (None, (), ())
    )
    return StackRoute(
        queue_url,
        dlq_url,
        delivery_dlq_url,
        event_bus,
        push_rule,
        request_rule,
        scan_rule,
        approval_rule,
        attestation_key(kms) if kms is not None else None,
        alarm_topic,
        notify_topics,
        unreachable,
    )


def approval_topics(
    sns: Any, config: PromotionConfig, *, account: str
) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """The SNS topics the approval gates tell, made on the local AWS (CreateTopic is idempotent), so
    that a local wait notifies as a deployed one does: the stack's alarm topic (`ALARM_TOPIC_NAME`)
    when some gate says `notify: alarm-topic`, its ARN for ALARM_TOPIC_ARN (else None); each topic a
    gate names, when it is of `account` and of `sns`'s region; and the named topics of another
    account or region, which the local AWS cannot make for the promoter to publish to."""
    region = sns.meta.region_name
    alarm_topic = (
        str(sns.create_topic(Name=ALARM_TOPIC_NAME)["TopicArn"]) if config.notifies_alarm_topic() else None
    )
    made, unreachable = [], []
    for arn in config.approval_notify_topics():
        _, _, _, topic_region, topic_account, name = arn.split(":", 5)
        if (topic_account, topic_region) == (account, region):
            made.append(str(sns.create_topic(Name=name)["TopicArn"]))
        else:
            unreachable.append(arn)
    return alarm_topic, tuple(made), tuple(unreachable)


def attestation_key(kms: Any, alias: str = settings.LOCAL_ATTESTATION_KEY_ALIAS) -> str:
    """The stack's attestation key on the local KMS (infra.attestation: ECC_NIST_P256, SIGN_VERIFY),
    found by its alias or created under it: one key however often the stack is wired (a restart
    with --data finds it). Its ARN, for ATTESTATION_KEY_ARN. The key policy is not reproduced: the
    local AWS signs for whoever asks (the stack's, which only the promoter's roles may Sign with,
    is checked by tests/infra)."""
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    except kms.exceptions.NotFoundException:
        pass
    key = kms.create_key(
        Description="ECR image promoter: signs promotion attestations (local)",
        KeySpec="ECC_NIST_P256",
        KeyUsage="SIGN_VERIFY",
    )["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return str(key["Arn"])


def restrict_queues(
    sqs: Any, urls: tuple[str, str, str], rule_arns: list[str], redrive_principals: tuple[str, ...]
) -> None:
    """The stack's queue policies (infra.queue_policies) on the queue, its dead-letter queue and the
    delivery dead-letter queue: only the rules (and `redrive_principals`, on the queue) send."""
    queue, dead_letters, undelivered = (queue_arn(sqs, url) for url in urls)
    policies = {
        urls[0]: [eventbridge_sends(queue, rule_arns), only_rules_send(queue, rule_arns, redrive_principals)],
        urls[1]: [nobody_sends(dead_letters)],
        urls[2]: [eventbridge_sends(undelivered, rule_arns), only_rules_send(undelivered, rule_arns)],
    }
    for url, statements in policies.items():
        document = {"Version": "2012-10-17", "Statement": statements}
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(document)})


def restrict_bus(events: Any, bus: str, account: str, config: PromotionConfig, request_source: str) -> None:
    """The stack's request statements on the promotion bus (infra.bus_policies): requests on the
    shared source only from `account`, on a rule's own source only from its requesters."""
    arn = str(events.describe_event_bus(Name=bus)["Arn"])
    requested = [(r.name, r.requesters) for r in config.rules_for(TRIGGER_REQUEST) if r.requesters]
    document = {
        "Version": "2012-10-17",
        "Statement": request_statements(arn, account, requested, request_source),
    }
    events.put_permission(EventBusName=bus, Policy=json.dumps(document))


def _queue_with_dlq(
    sqs: Any, queue_name: str, visibility_timeout_seconds: int, max_receive_count: int
) -> tuple[str, str]:
    """`<queue_name>-dlq` and the queue redriving to it after `max_receive_count` receives."""
    dlq_url = str(sqs.create_queue(QueueName=f"{queue_name}-dlq")["QueueUrl"])
    dead_letters = queue_arn(sqs, dlq_url)
    redrive = json.dumps({"deadLetterTargetArn": dead_letters, "maxReceiveCount": max_receive_count})
    queue_url = str(
        sqs.create_queue(
            QueueName=queue_name,
            Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(visibility_timeout_seconds)},
        )["QueueUrl"]
    )
    return queue_url, dlq_url


def queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
