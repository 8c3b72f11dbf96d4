"""Least-privilege IAM for the promoter function, derived from the promotion rules.

Action lists are named constants, as in the CDK's own `aws-ecr` module (`REPO_PULL_ACTIONS`):
reads are scoped to the source repositories, writes to the target repositories, and only the two
ECR actions without resource-level permissions get `*`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from promoter.aws.gate_store import WAIT_ID_INDEX

# Pull an image out of a source repository, exactly the calls promoter.aws.registry makes there:
# manifests and children (BatchGetImage), referrers (ListImageReferrers), blobs
# (BatchCheckLayerAvailability, GetDownloadUrlForLayer; the same pair is the read side of a /v2
# cross-repository mount), and DescribeImages: an unreadable source's status (archived or gone), the
# push times that order two images of a rule (model/ordering.py), the tags of an image requested by
# digest alone.
# ListImages and DescribeImageScanFindings are left out: the engine calls neither on a source.
ECR_SOURCE_READ_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:ListImageReferrers",
)
# Restore an archived source (rules with `source.restore_archived`), on those sources only.
ECR_SOURCE_RESTORE_ACTIONS = ("ecr:UpdateImageStorageClass",)
# Push blobs and manifests into a target repository. BatchGetImage and BatchCheckLayerAvailability
# find what is already there (a target at the wanted digest is skipped without a PutImage);
# DescribeImages reads the tags of the image a floating tag holds (its version). Issue 19:
# ListImageReferrers finds the promotion's attestation among the promoted digest's referrers (one
# of ours is never written twice), DescribeRepositories tells a tag move ECR would refuse (an
# immutable tag) before the attestation is written.
ECR_TARGET_WRITE_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:InitiateLayerUpload",
    "ecr:ListImageReferrers",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
# Targets that say `create_missing`: the promoter creates such a repository when it is missing
# (promoter.workflows.promote, CreateRepository), on those exact repository ARNs only; TagResource
# too for the ones created with resource tags (tagging on create is authorized as tagging).
ECR_CREATE_REPOSITORY_ACTIONS = ("ecr:CreateRepository",)
ECR_TAG_ON_CREATE_ACTIONS = ("ecr:TagResource",)
# A repository created with a customer managed KMS key: ECR creates a grant on it for the creator
# and describes it (ECR user guide, "Encryption at rest"), on the named keys only.
KMS_CREATE_REPOSITORY_ACTIONS = ("kms:CreateGrant", "kms:DescribeKey")
# The only ECR actions without resource-level permissions (Service Authorization Reference).
ECR_ACCOUNT_ACTIONS = ("ecr:GetAccountSetting", "ecr:GetAuthorizationToken")
# A target repository that does not exist is promoted into when a repository creation template
# applied for CREATE_ON_PUSH covers it (ECR creates it on the first push): the engine reads the
# registry's templates (promoter.aws.registry, creation_template_for). A registry-level read with no
# resource type, so on '*' beside the two above; granted only to a role that has targets.
ECR_CREATION_TEMPLATE_READ_ACTIONS = ("ecr:DescribeRepositoryCreationTemplates",)
# Scan gates (promoter.gates.scan.check_scan): read an image's findings, on the source repositories of
# gated rules only.
ECR_SCAN_READ_ACTIONS = ("ecr:DescribeImageScanFindings",)
# promoter.aws.gate_store.DynamoDbGates: hold (conditional PutItem, GetItem), waiting_for (Query),
# expired (Scan, the sweep), release (DeleteItem).
GATES_TABLE_ACTIONS = (
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
)
# ... and find (Query on the `by-wait-id` index: an approval decision names its wait by id).
GATES_INDEX_ACTIONS = ("dynamodb:Query",)
# Approval gates (promoter.aws.approval_waits.ApprovalWaits): announcing a wait once
# (claim_announcement) and ending the older wait a newer request supersedes (supersede) are one
# conditional UpdateItem each on the wait's record; only when some rule requires approval.
APPROVAL_WAITS_TABLE_ACTIONS = ("dynamodb:UpdateItem",)
# promoter.aws.notify tells an approval gate's approvers on its `notify` topic, on exactly the topics
# the rules name (and the stack's alarm topic for `notify: alarm-topic`).
SNS_NOTIFY_ACTIONS = ("sns:Publish",)
# Publishing to a topic encrypted with a customer managed key (the stack's alarm topic,
# infra.monitoring.notification_topic) also takes these two on its key (SNS developer guide, "Key
# management": a publisher to an SSE topic needs kms:GenerateDataKey and kms:Decrypt).
KMS_ENCRYPTED_PUBLISH_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# Signature gates (promoter.gates.signature): cosign's awskms:/// keys are checked with KMS Verify,
# granted on the keys the rules name and no other.
KMS_VERIFY_ACTIONS = ("kms:Verify",)
# Notation signatures by AWS Signer: their revocation (promoter.aws.signer). GetRevocationStatus has
# no resource type in the Service Authorization Reference for AWS Signer: '*' is all it takes.
SIGNER_REVOCATION_ACTIONS = ("signer:GetRevocationStatus",)
# Exactly what Powertools' DynamoDBPersistenceLayer calls.
IDEMPOTENCY_TABLE_ACTIONS = (
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)
# The function appends history (promoter.aws.history.DynamoDbHistory.record: one PutItem per
# action). Its only read is one target tag's records (`for_target`, a Query: the out-of-band check
# and late trust material), granted beside this (infra.reconciliation.HISTORY_READ_ACTIONS); the
# listings `promoter history` makes are the CLI's, with the operator's credentials.
HISTORY_TABLE_ACTIONS = ("dynamodb:PutItem",)

# fnmatch classes (`[abc]`) have no IAM equivalent: each one stands for exactly one character.
_GLOB_CLASS = re.compile(r"\[[^\]]*\]")


def iam_resource_pattern(glob: str) -> str:
    """A repository glob as an IAM resource-name pattern (`*` and `?` mean the same in both)."""
    if not glob:
        raise ValueError("repository glob must not be empty")
    return _GLOB_CLASS.sub("?", glob)


def repository_arns(scope: Construct, globs: Iterable[str]) -> list[str]:
    """ECR repository ARNs (partition, region and account of the stack) for the given globs.
    Raises ValueError for a glob with no literal part (it would grant on every repository)."""
    stack = Stack.of(scope)
    names = sorted({iam_resource_pattern(glob) for glob in globs})
    for name in names:
        if not any(c.isalnum() for c in name):
            # `repository/*` (or `*/*`, `?*`): every repository of the account. The configuration
            # refuses the rules that would need it (promoter.model.config); this is the last guard.
            raise ValueError(
                f"repository glob {name!r} has no literal part: it would grant on every repository"
            )
    return [
        stack.format_arn(
            service="ecr",
            resource="repository",
            resource_name=name,
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        for name in names
    ]


def grant_ecr(
    scope: Construct,
    grantee: iam.IGrantable,
    source_globs: Iterable[str],
    target_globs: Iterable[str],
    restore_globs: Iterable[str] = (),
) -> None:
    """Give `grantee` read on the sources, write on the targets, restores on the sources whose
    rules restore archived images, and the account-wide actions (the creation templates' read
    only with targets)."""
    sources = repository_arns(scope, source_globs)
    targets = repository_arns(scope, target_globs)
    restores = repository_arns(scope, restore_globs)
    if restores:
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(ECR_SOURCE_RESTORE_ACTIONS), resource_arns=restores
        )
    if sources:
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(ECR_SOURCE_READ_ACTIONS), resource_arns=sources
        )
    if targets:
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(ECR_TARGET_WRITE_ACTIONS), resource_arns=targets
        )
    account_actions = [*ECR_ACCOUNT_ACTIONS, *(ECR_CREATION_TEMPLATE_READ_ACTIONS if targets else ())]
    iam.Grant.add_to_principal(grantee=grantee, actions=account_actions, resource_arns=["*"])


def grant_create_missing(
    scope: Construct,
    grantee: iam.IGrantable,
    repositories: Iterable[str],
    tagged: Iterable[str] = (),
    kms_keys: Iterable[str] = (),
) -> None:
    """ecr:CreateRepository on the exact target repositories rules create when missing
    (`create_missing`), TagResource on those created with tags, the KMS actions on their keys;
    nothing without such targets. Raises ValueError for a name that is a pattern."""
    names = sorted(set(repositories))
    for name in names:
        if any(c in name for c in "*?[{"):
            raise ValueError(f"create_missing needs an exact repository name, got {name!r}")
    if names:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(ECR_CREATE_REPOSITORY_ACTIONS),
            resource_arns=repository_arns(scope, names),
        )
    tagged_names = sorted(set(tagged) & set(names))
    if tagged_names:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(ECR_TAG_ON_CREATE_ACTIONS),
            resource_arns=repository_arns(scope, tagged_names),
        )
    keys = sorted(set(kms_keys))
    if keys:
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(KMS_CREATE_REPOSITORY_ACTIONS), resource_arns=keys
        )


def grant_tables(
    grantee: iam.IGrantable, idempotency_table: dynamodb.ITable, history_table: dynamodb.ITable
) -> None:
    """The four Powertools idempotency actions and the history's actions, each on its own table."""
    idempotency_table.grant(grantee, *IDEMPOTENCY_TABLE_ACTIONS)
    history_table.grant(grantee, *HISTORY_TABLE_ACTIONS)


def grant_scan_findings(scope: Construct, grantee: iam.IGrantable, gated_source_globs: Iterable[str]) -> None:
    """DescribeImageScanFindings on the source repositories of gated rules; nothing without gates."""
    sources = repository_arns(scope, gated_source_globs)
    if sources:
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(ECR_SCAN_READ_ACTIONS), resource_arns=sources
        )


def grant_gates_table(grantee: iam.IGrantable, gates_table: dynamodb.ITable) -> None:
    """What promoter.aws.gate_store calls: GATES_TABLE_ACTIONS on the gates table, and Query on
    its `by-wait-id` index by name (Table.grant would add `index/*`)."""
    iam.Grant.add_to_principal(
        grantee=grantee, actions=list(GATES_TABLE_ACTIONS), resource_arns=[gates_table.table_arn]
    )
    iam.Grant.add_to_principal(
        grantee=grantee,
        actions=list(GATES_INDEX_ACTIONS),
        resource_arns=[f"{gates_table.table_arn}/index/{WAIT_ID_INDEX}"],
    )


def grant_signature_checks(grantee: iam.IGrantable, kms_key_arns: Iterable[str], notation: bool) -> None:
    """kms:Verify on the named keys only; signer:GetRevocationStatus when a rule accepts Notation
    signatures. Nothing for a configuration without signature gates."""
    keys = sorted(set(kms_key_arns))
    if keys:
        iam.Grant.add_to_principal(grantee=grantee, actions=list(KMS_VERIFY_ACTIONS), resource_arns=keys)
    if notation:
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(SIGNER_REVOCATION_ACTIONS), resource_arns=["*"]
        )


def grant_approval_gates(
    grantee: iam.IGrantable,
    gates_table: dynamodb.ITable,
    *,
    approval_gated: bool,
    notify_topic_arns: Iterable[str],
    alarm_topic: sns.ITopic | None,
) -> None:
    """What an approval gate's announcement calls beyond the gate store: UpdateItem on the gates
    table (`approval_gated`), sns:Publish on exactly `notify_topic_arns` and on `alarm_topic` (for
    `notify: alarm-topic`; None: no rule says it), with the two KMS actions on the alarm topic's key
    when the stack made it encrypted. Nothing for a configuration without approval gates."""
    if approval_gated:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(APPROVAL_WAITS_TABLE_ACTIONS),
            resource_arns=[gates_table.table_arn],
        )
    topics = sorted(set(notify_topic_arns))
    if alarm_topic is not None:
        topics.append(alarm_topic.topic_arn)
    if topics:
        iam.Grant.add_to_principal(grantee=grantee, actions=list(SNS_NOTIFY_ACTIONS), resource_arns=topics)
    key = alarm_topic.master_key if isinstance(alarm_topic, sns.Topic) else None
    if key is not None:
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(KMS_ENCRYPTED_PUBLISH_ACTIONS), resource_arns=[key.key_arn]
        )
