"""ImagePromoter: EventBridge -> SQS -> Lambda that promotes ECR images by the configured rules.

Wiring in one place; the parts it uses (event patterns, IAM, asset staging, monitoring) each have a
module of their own. The configuration is parsed before this construct is built, so an invalid one
never reaches CloudFormation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_cdk import Duration, Stack, Stage
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.approvals import ApprovalChannel, ApprovalChannelParts, needs_approval_channel
from infra.asset import PACKAGE_NAME, fetch_verifier_wheels, stage_function_code
from infra.attestation import AttestationKey
from infra.event_patterns import (
    approval_decided_event_pattern,
    basic_scan_event_pattern,
    inspector_scan_event_pattern,
    push_event_pattern,
    request_event_pattern,
    trust_material_event_pattern,
    trust_material_globs,
    watched_repository_globs,
)
from infra.lambda_runtime import POWERTOOLS_LAYER_PARAMETER
from infra.monitoring import DASHBOARD_ID, add_monitoring
from infra.nag import acknowledge_findings
from infra.permissions import (
    grant_approval_gates,
    grant_create_missing,
    grant_ecr,
    grant_gates_table,
    grant_scan_findings,
    grant_signature_checks,
    grant_tables,
)
from infra.props import ImagePromoterProps
from infra.protection import RepositoryProtection
from infra.pull_times import exclude_from_pull_times
from infra.queue_policies import nobody_sends, only_rules_send
from infra.reconciliation import HISTORY_READ_ACTIONS, Reconciliation, ReconciliationParts
from infra.remote_targets import grant_remote_targets, promoter_role_names
from promoter import settings
from promoter.aws.gate_store import WAIT_ID_INDEX
from promoter.gates.approval import ALARM_TOPIC_ENV
from promoter.gates.base import gate_names, waiting_gate_names
from promoter.model.config import requester_account
from promoter.model.verdicts import APPROVAL_GATE, SCAN_GATE

if TYPE_CHECKING:
    from promoter.model.config import PromotionConfig

HANDLER = "promoter.handler.handle_queue"
RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
# Where Lambda unpacks the code asset.
LAMBDA_TASK_ROOT = "/var/task"
# AWS's advice for SQS event sources: visibility timeout at least six times the function timeout,
# so a message is not redelivered while a (retried) invocation still holds it.
VISIBILITY_TIMEOUT_FACTOR = 6
# Receives before a message moves to the dead-letter queue (settings.MAX_RECEIVE_COUNT).
MAX_RECEIVE_COUNT = settings.MAX_RECEIVE_COUNT
DLQ_RETENTION = Duration.days(14)
# EventBridge's own delivery retries into the queue before its target dead-letter queue.
TARGET_RETRY_ATTEMPTS = 8
TARGET_MAX_EVENT_AGE = Duration.hours(24)


def _principal_patterns(stack: Stack, principals: tuple[str, ...]) -> list[str]:
    """`aws:PrincipalArn` patterns: an account id stands for every principal of that account."""
    return [p if p.startswith("arn:") else f"arn:{stack.partition}:iam::{p}:*" for p in principals]


def _to_events_pattern(pattern: dict) -> events.EventPattern:
    """The plain EventBridge JSON pattern as CDK's EventPattern (same keys, snake_case)."""
    return events.EventPattern(
        source=pattern.get("source"),
        detail_type=pattern.get("detail-type"),
        detail=pattern.get("detail"),
        account=pattern.get("account"),
    )


class ImagePromoter(Construct):
    """The promoter and everything around it. Attributes expose what other stacks may wire to."""

    def __init__(self, scope: Construct, construct_id: str, props: ImagePromoterProps) -> None:
        super().__init__(scope, construct_id)
        config = props.config
        if config.notifies_alarm_topic() and props.alarm_topic is None:
            raise ValueError(
                "an approval gate says notify: alarm-topic, but the stack has no alarm topic: give "
                "alarm_email or alarm_topic_arn (-c alarm_email=ADDRESS), or name an SNS topic in notify"
            )
        self.request_source = props.request_source

        self.event_bus: events.IEventBus = props.event_bus or events.EventBus(self, "PromotionBus")
        self.dead_letter_queue = self._secure_queue("DeadLetterQueue", retention_period=DLQ_RETENTION)
        self.queue = self._secure_queue(
            "Queue",
            visibility_timeout=Duration.seconds(
                props.function_timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR
            ),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVE_COUNT, queue=self.dead_letter_queue
            ),
        )
        # Events EventBridge could not put into the queue at all (e.g. a queue policy problem).
        self.delivery_dead_letter_queue = self._secure_queue(
            "DeliveryDeadLetterQueue", retention_period=DLQ_RETENTION
        )
        self.push_rule, self.request_rule = self._rules(config, props.request_source)
        self.trust_material_rule = self._trust_material_rule(config)
        self.gate_rules = self._gate_rules(config, props.gate_sweep_minutes)
        self._restrict_queues(props.redrive_principals)

        self.idempotency_table = self._table(
            "IdempotencyTable",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            time_to_live_attribute="expiration",
            removal_policy=props.table_removal_policy,
        )
        self.history_table = self._table(
            "HistoryTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            removal_policy=props.table_removal_policy,
        )
        # Promotions waiting on a gate (promoter.aws.gate_store): one record per image, rule, gate and
        # request; the TTL removes what nobody resumed; `by-wait-id` finds a wait by its short id.
        self.gates_table = self._table(
            "GatesTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            time_to_live_attribute="expiration",
            removal_policy=props.table_removal_policy,
        )
        self.gates_table.add_global_secondary_index(
            index_name=WAIT_ID_INDEX,
            partition_key=dynamodb.Attribute(name="wait_id", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )

        self.log_group = logs.LogGroup(
            self, "FunctionLogs", retention=props.log_retention, removal_policy=props.log_removal_policy
        )
        # An explicit role: the default one would carry the AWSLambdaBasicExecutionRole managed policy.
        # Named, so that a target account can trust exactly this role before the stack exists.
        promoter_role_name, reconcile_role_name = promoter_role_names(
            Stack.of(self).stack_name, Stack.of(self).region
        )
        self.role = iam.Role(
            self,
            "FunctionRole",
            role_name=promoter_role_name,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="ECR image promoter: reads source repositories, writes target repositories",
        )
        self.log_group.grant_write(self.role)

        staging_dir = Path(Stage.of(self).outdir) / f"promoter-function-{self.node.addr[:16]}"
        # The verifiers' dependencies ship only with a signature gate (infra.asset; cold start).
        wheels = fetch_verifier_wheels() if config.signature_gated() else None
        stage_function_code(config.to_json(), staging_dir, verifier_wheels=wheels)
        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self, "PowertoolsLayer", props.powertools_layer_arn or self._powertools_layer_arn()
        )
        environment = settings.function_environment(
            config_path=f"{LAMBDA_TASK_ROOT}/{PACKAGE_NAME}/{settings.STAGED_CONFIG_FILE}",
            idempotency_table=self.idempotency_table.table_name,
            history_table=self.history_table.table_name,
            gates_table=self.gates_table.table_name,
            event_bus=self.event_bus.event_bus_name,
            request_source=props.request_source,
        )
        code = lambda_.Code.from_asset(str(staging_dir))
        self.function = lambda_.Function(
            self,
            "Function",
            description="Promotes ECR images (copies manifests, applies tags) by the configured rules",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=code,
            layers=[powertools],
            role=self.role,
            timeout=props.function_timeout,
            memory_size=props.memory_size_mb,
            log_group=self.log_group,
            environment=environment,
        )
        # CDK adds an explicit DependsOn on the role that the Role GetAtt already implies; cfn-lint
        # warns about the redundancy (W3005). Harmless, and not ours to remove from the L2.
        function_resource = self.function.node.default_child
        function_resource.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=props.batch_size,
                report_batch_item_failures=True,
                max_concurrency=props.max_concurrency,
            )
        )
        grant_ecr(
            self,
            self.role,
            config.source_repository_globs(),
            config.target_repository_globs(),
            config.restore_archived_source_globs(),
        )
        grant_remote_targets(self, self.role, config.remote_targets())
        grant_create_missing(
            self,
            self.role,
            config.created_target_repositories(),
            config.created_tagged_target_repositories(),
            config.created_target_kms_keys(),
        )
        grant_tables(self.role, self.idempotency_table, self.history_table)
        # The out-of-band check reads a target tag's history (promoter.workflows.out_of_band).
        self.history_table.grant(self.role, *HISTORY_READ_ACTIONS)
        # cfn-lint's IAM action list predates ecr:ListImageReferrers (W3037); botocore's ECR model
        # has it, and the infra tests check every granted action against botocore's models instead.
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        policy.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3037"]}})
        # Issue 5: results are published on this bus only; gates read findings on gated sources only.
        self.event_bus.grant_put_events_to(self.role)
        grant_scan_findings(self, self.role, config.gated_source_repository_globs())
        grant_gates_table(self.role, self.gates_table)
        grant_signature_checks(self.role, config.signature_kms_key_arns(), config.notation_gated())
        # Approval waits are announced by this function only (the reconciliation holds no waits):
        # conditional updates on their records, and the rules' notify topics (infra.permissions).
        notifies_alarm_topic = config.notifies_alarm_topic()
        grant_approval_gates(
            self.role,
            self.gates_table,
            approval_gated=config.approval_gated(),
            notify_topic_arns=config.approval_notify_topics(),
            alarm_topic=props.alarm_topic if notifies_alarm_topic else None,
        )
        if notifies_alarm_topic:
            assert props.alarm_topic is not None  # refused above
            self.function.add_environment(ALARM_TOPIC_ENV, props.alarm_topic.topic_arn)

        # The sweep that catches lost events (issue 6): same code, its own handler, role and schedule.
        self.reconciliation = (
            Reconciliation(
                self,
                "Reconciliation",
                ReconciliationParts(
                    config=config,
                    code=code,
                    layers=[powertools],
                    environment=environment,
                    idempotency_table=self.idempotency_table,
                    history_table=self.history_table,
                    runtime=RUNTIME,
                    architecture=ARCHITECTURE,
                    rate=props.reconcile_rate,
                    timeout=props.reconcile_timeout,
                    memory_size_mb=props.memory_size_mb,
                    log_retention=props.log_retention,
                    log_removal_policy=props.log_removal_policy,
                    table=self._table(
                        "ReconcileTable",
                        partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
                        removal_policy=props.table_removal_policy,
                    ),
                    event_bus=self.event_bus,
                    role_name=reconcile_role_name,
                ),
            )
            if props.reconcile_rate is not None
            else None
        )
        self.protections = self._protect(config, code, props)
        # Issue 20: people decide approval waits through a function URL AWS authenticates (infra.approvals).
        self.approvals = (
            ApprovalChannel(
                self,
                "Approvals",
                ApprovalChannelParts(
                    config=config,
                    code=code,
                    layers=[powertools],
                    environment=environment,
                    gates_table=self.gates_table,
                    event_bus=self.event_bus,
                    runtime=RUNTIME,
                    architecture=ARCHITECTURE,
                    log_retention=props.log_retention,
                    log_removal_policy=props.log_removal_policy,
                    promoter_roles=[self.role, *([self.reconciliation.role] if self.reconciliation else [])],
                ),
            )
            if needs_approval_channel(config)
            else None
        )
        # Issue 19: the key that signs every promotion's attestation; only the promoting roles (and
        # the break-glass principals) may sign with it (infra.attestation).
        self.attestation_key = AttestationKey(self, "Attestation", removal_policy=props.table_removal_policy)
        signing = [(self.function, self.role)]
        if self.reconciliation is not None:
            signing.append((self.reconciliation.function, self.reconciliation.role))
        self.attestation_key.allow_signers([role for _, role in signing], props.break_glass_principals)
        for function, _ in signing:
            function.add_environment(settings.ATTESTATION_KEY_ENV, self.attestation_key.key_arn)
        self._restrict_bus(props)
        # The promoter's own reads (and the reconciliation's) do not keep images alive under
        # "since last pulled" lifecycle rules (infra.pull_times).
        readers = {"Function": self.role.role_arn}
        if self.reconciliation is not None:
            readers["Reconciliation"] = self.reconciliation.role.role_arn
        self.pull_time_exclusions = exclude_from_pull_times(self, readers)

        self.alarms = add_monitoring(
            self,
            self.function,
            self.queue,
            [
                ("DeadLetterQueue", self.dead_letter_queue, settings.REDRIVE_PROCESSING),
                ("DeliveryDeadLetterQueue", self.delivery_dead_letter_queue, settings.REDRIVE_DELIVERY),
            ],
            props.alarm_topic,
            gated=any(gate_names(rule) for rule in config.rules),
        )
        self.dashboard: cloudwatch.Dashboard = self.node.find_child(DASHBOARD_ID)
        acknowledge_findings(
            self.role,
            self.function,
            self.delivery_dead_letter_queue,
            (*config.source_repository_globs(), *config.target_repository_globs()),
            signer_revocation=config.notation_gated(),
        )

    def _secure_queue(self, construct_id: str, **kwargs: object) -> sqs.Queue:
        """SSE with SQS-owned keys (EventBridge can deliver to it without a KMS key policy), TLS only."""
        return sqs.Queue(
            self, construct_id, encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True, **kwargs
        )

    def _restrict_queues(self, redrive_principals: tuple[str, ...]) -> None:
        """Only the stack's rules put work on the queue and the delivery dead-letter queue (and the
        named redrive principals on the queue); nobody sends to the processing dead-letter queue,
        which only SQS's own redrive fills (infra.queue_policies says why each holds)."""
        rules = [
            r.rule_arn
            for r in (self.push_rule, self.request_rule, self.trust_material_rule, *self.gate_rules)
            if r is not None
        ]
        for queue, statement in (
            (self.queue, only_rules_send(self.queue.queue_arn, rules, redrive_principals)),
            (self.dead_letter_queue, nobody_sends(self.dead_letter_queue.queue_arn)),
            (
                self.delivery_dead_letter_queue,
                only_rules_send(self.delivery_dead_letter_queue.queue_arn, rules),
            ),
        ):
            queue.add_to_resource_policy(iam.PolicyStatement.from_json(statement))

    def _powertools_layer_arn(self) -> str:
        """The layer's ARN as Powertools publishes it for POWERTOOLS_VERSION: an SSM public parameter
        in each region, resolved by CloudFormation at deploy time (a template parameter of type
        `AWS::SSM::Parameter::Value<String>`), so the account, the partition (aws, aws-cn,
        aws-us-gov) and the layer's version number are the region's own, never written here."""
        return ssm.StringParameter.value_for_string_parameter(self, POWERTOOLS_LAYER_PARAMETER)

    def _table(self, construct_id: str, **kwargs: object) -> dynamodb.Table:
        """On-demand, encrypted (AWS managed KMS key), point-in-time recovery on."""
        return dynamodb.Table(
            self,
            construct_id,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            **kwargs,
        )

    def _protect(
        self, config: PromotionConfig, code: lambda_.Code, props: ImagePromoterProps
    ) -> dict[str | None, RepositoryProtection]:
        """The protected targets of this account (`protect: true`), one RepositoryProtection per
        region (None: the stack's): only the promoter's two roles and the break-glass principals
        may write them. Another account's are its TargetAccountStack's (infra.remote_targets)."""
        by_region: dict[str | None, list[str]] = {}
        for registry, repository in config.protected_targets():
            if registry is None or registry.account is None:
                by_region.setdefault(registry.region if registry else None, []).append(repository)
        return {
            region: RepositoryProtection(
                self,
                f"Protection{region or ''}",
                repositories=repositories,
                writers=self._result_publishers(),
                code=code,
                break_glass=props.break_glass_principals,
                region=region,
                log_removal_policy=props.log_removal_policy,
            )
            for region, repositories in sorted(by_region.items(), key=lambda item: item[0] or "")
        }

    def _result_publishers(self) -> list[str]:
        """The roles whose runs announce results: the promoter's, and its reconciliation's."""
        reconciliation = [self.reconciliation.role.role_arn] if self.reconciliation is not None else []
        return [self.role.role_arn, *reconciliation]

    def _restrict_bus(self, props: ImagePromoterProps) -> None:
        """The bus takes requests only from the trusted principals (default: this account), the
        requests of a rule with `requesters:` (on its own source) only from those, and results only
        from the function. A bus passed in is the caller's to govern.

        Why per-rule sources: IAM sees a PutEvents call's `events:source` and `events:detail-type`,
        never the detail that names a rule; a source per rule is what lets the bus policy, and so
        AWS before the function runs, decide who may request which rule."""
        restricted = [rule for rule in props.config.rules_for("request") if rule.requesters]
        if props.event_bus is not None:
            if props.trusted_principals or restricted:
                raise ValueError(
                    "trusted_principals and rules with requesters apply to the bus the construct "
                    "creates, not event_bus"
                )
            return
        stack = Stack.of(self)
        bus = self.event_bus
        assert isinstance(bus, events.EventBus)
        trusted = props.trusted_principals or (stack.account,)
        rule_sources = [settings.rule_request_source(rule.name, props.request_source) for rule in restricted]
        shared_source_only = {"StringNotEquals": {"events:source": rule_sources}} if rule_sources else {}
        bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTrustedPrincipalsRequest",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["events:PutEvents"],
                resources=[bus.event_bus_arn],
                conditions={
                    "StringEquals": {"events:detail-type": settings.REQUEST_DETAIL_TYPE},
                    **shared_source_only,
                    "ArnNotLike": {"aws:PrincipalArn": _principal_patterns(stack, trusted)},
                },
            )
        )
        for index, (rule, source) in enumerate(zip(restricted, rule_sources, strict=True)):
            self._restrict_rule_source(bus, index, rule.requesters, source)
        bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyThePromoterPublishesResults",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["events:PutEvents"],
                resources=[bus.event_bus_arn],
                conditions={
                    "StringEquals": {"events:detail-type": list(settings.RESULT_DETAIL_TYPES)},
                    "ArnNotEquals": {"aws:PrincipalArn": self._result_publishers()},
                },
            )
        )
        other_accounts = [p for p in props.trusted_principals if p != stack.account]
        if other_accounts:
            bus.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="TrustedPrincipalsMayRequest",
                    principals=[
                        iam.AccountPrincipal(p) if p.isdigit() else iam.ArnPrincipal(p)
                        for p in other_accounts
                    ],
                    actions=["events:PutEvents"],
                    resources=[bus.event_bus_arn],
                    conditions={
                        "StringEquals": {
                            "events:detail-type": settings.REQUEST_DETAIL_TYPE,
                            "events:source": props.request_source,
                        }
                    },
                )
            )

    def _restrict_rule_source(
        self, bus: events.EventBus, index: int, requesters: tuple[str, ...], source: str
    ) -> None:
        """Requests on a rule's own source: denied to anyone but its requesters, and allowed to
        those in other accounts (a cross-account PutEvents needs the bus's consent)."""
        stack = Stack.of(self)
        on_this_source = {"events:detail-type": settings.REQUEST_DETAIL_TYPE, "events:source": source}
        bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"OnlyRequestersOfRequestRule{index}",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["events:PutEvents"],
                resources=[bus.event_bus_arn],
                conditions={
                    "StringEquals": on_this_source,
                    "ArnNotLike": {"aws:PrincipalArn": _principal_patterns(stack, requesters)},
                },
            )
        )
        accounts = sorted({requester_account(requester) for requester in requesters})
        bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"RequestersOfRequestRule{index}MayRequest",
                principals=[iam.AccountPrincipal(account) for account in accounts],
                actions=["events:PutEvents"],
                resources=[bus.event_bus_arn],
                conditions={"StringEquals": on_this_source},
            )
        )

    def _gate_rules(self, config: PromotionConfig, sweep_minutes: int) -> tuple[events.Rule, ...]:
        """The events that resume waiting gates, and the sweep, all into the same queue: with
        scan-gated rules, their sources' finished scans (basic and Inspector); with approval-gated
        rules, the approval channel's decisions on the stack's own bus; with any gate that waits,
        the sweep that ends waits past their deadline. Without waiting gates: none."""
        waiting = waiting_gate_names(config)
        if not waiting:
            return ()
        account = Stack.of(self).account
        resuming: list[tuple[str, str, dict[str, Any], events.IEventBus | None]] = []
        gated = config.gated_source_repository_globs()
        if SCAN_GATE in waiting and gated:
            resuming.append(
                (
                    "ScanRule",
                    "Finished basic scans of the source repositories of scan-gated rules",
                    basic_scan_event_pattern(gated, account),
                    None,
                )
            )
            resuming.append(
                (
                    "InspectorScanRule",
                    "Finished Inspector (enhanced) scans of the source repositories of scan-gated rules",
                    inspector_scan_event_pattern(gated, account),
                    None,
                )
            )
        if APPROVAL_GATE in waiting:
            resuming.append(
                (
                    "ApprovalDecidedRule",
                    "Decisions of the stack's approval channel: the waiting promotion runs again",
                    approval_decided_event_pattern(account),
                    self.event_bus,
                )
            )
        rules = [
            events.Rule(
                self,
                construct_id,
                description=description,
                event_bus=bus,
                event_pattern=_to_events_pattern(pattern),
                targets=[self._queue_target()],
            )
            for construct_id, description, pattern, bus in resuming
        ]
        rules.append(
            events.Rule(
                self,
                "GateSweepRule",
                description="Ends gate waits past their deadline (gate-timeout, expired)",
                schedule=events.Schedule.rate(Duration.minutes(sweep_minutes)),
                targets=[self._queue_target()],
            )
        )
        return tuple(rules)

    def _queue_target(self) -> targets.SqsQueue:
        """A rule's target: the queue, with the delivery dead-letter queue for what EventBridge
        cannot put there."""
        return targets.SqsQueue(
            self.queue,
            dead_letter_queue=self.delivery_dead_letter_queue,
            retry_attempts=TARGET_RETRY_ATTEMPTS,
            max_event_age=TARGET_MAX_EVENT_AGE,
        )

    def _trust_material_rule(self, config: PromotionConfig) -> events.Rule:
        """Signatures, SBOMs and attestations that arrive in the rules' sources after their image
        (ECR's `ECR Referrer Action`, and pushes of cosign's tags): workflows.late_trust carries them
        to where the image was promoted. A cosign tag in a push rule's source also matches the push
        rule; the second delivery costs reads only (idempotent)."""
        return events.Rule(
            self,
            "TrustMaterialRule",
            description="Signatures, SBOMs and attestations arriving in the rules' sources after their image",
            event_pattern=_to_events_pattern(
                trust_material_event_pattern(trust_material_globs(config), Stack.of(self).account)
            ),
            targets=[self._queue_target()],
        )

    def _rules(self, config: PromotionConfig, request_source: str) -> tuple[events.Rule | None, events.Rule]:
        """The push rule on the default bus (when some rule fires on push or writes a target in this
        registry: the targets' pushes are checked for writes behind the promoter's back) and the
        request rule on the promotion bus (always: a request naming no request rule still gets its
        failure result)."""
        target = self._queue_target()
        watched = watched_repository_globs(config)
        push_rule = None
        if watched:
            push_rule = events.Rule(
                self,
                "PushRule",
                description="Tagged ECR pushes into the push rules' sources and the target repositories",
                event_pattern=_to_events_pattern(push_event_pattern(watched, Stack.of(self).account)),
                targets=[target],
            )
        request_rule = events.Rule(
            self,
            "RequestRule",
            description="Promotion requests sent to the promotion bus",
            event_bus=self.event_bus,
            event_pattern=_to_events_pattern(
                request_event_pattern(
                    request_source, (r.name for r in config.rules_for("request") if r.requesters)
                )
            ),
            targets=[target],
        )
        return push_rule, request_rule
