"""Repository creation templates on the local ECR (issue 21, item 3): templates are created,
described, updated and deleted as ECR's API says; a push (a layer upload or PutImage, skopeo's
manifest PUT on /v2) into a repository that does not exist, covered by a CREATE_ON_PUSH template,
creates it with the template's settings (tag mutability and exclusions, encryption, lifecycle
policy, repository policy, tags); without such a template the push is refused as before. The
promoter promotes into such a missing target (its first push creates it); without a template a
missing target stays a failed promotion that says why."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from botocore.exceptions import ClientError

from local_aws import images as im
from local_aws.images import EcrPusher
from promoter import handler, settings
from promoter.aws.history import DynamoDbHistory
from tests.integration.test_handler import push_event, tag_digest
from tests.integration.test_local_registry_api import v2
from tests.lambda_events import FakeLambdaContext, sqs_batch

pytestmark = pytest.mark.integration
LIFECYCLE = {
    "rules": [
        {
            "rulePriority": 1,
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePulled",
                "countUnit": "days",
                "countNumber": 30,
            },
            "action": {"type": "expire"},
        }
    ]
}
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "pull",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
            "Action": "ecr:BatchGetImage",
        }
    ],
}


@pytest.fixture
def template(ecr, unique_name):
    """A CREATE_ON_PUSH template for a fresh prefix; deleted after the test."""
    prefix = unique_name("tpl")
    ecr.create_repository_creation_template(
        prefix=prefix,
        description="releases",
        appliedFor=["CREATE_ON_PUSH", "REPLICATION"],
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}],
        encryptionConfiguration={"encryptionType": "KMS"},
        lifecyclePolicy=json.dumps(LIFECYCLE),
        repositoryPolicy=json.dumps(POLICY),
        resourceTags=[{"Key": "team", "Value": "platform"}],
    )
    yield prefix
    ecr.delete_repository_creation_template(prefix=prefix)


def _assert_created_with_the_templates_settings(ecr, name: str) -> None:
    (repo,) = ecr.describe_repositories(repositoryNames=[name])["repositories"]
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repo["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "latest"}]
    assert repo["encryptionConfiguration"]["encryptionType"] == "KMS"
    assert json.loads(ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]) == LIFECYCLE
    assert json.loads(ecr.get_repository_policy(repositoryName=name)["policyText"]) == POLICY
    assert ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"] == [
        {"Key": "team", "Value": "platform"}
    ]


def test_templates_are_created_described_updated_and_deleted_as_ecr_does(ecr, template):
    (found,) = ecr.describe_repository_creation_templates(prefixes=[template])["repositoryCreationTemplates"]
    assert (found["prefix"], found["appliedFor"], found["description"]) == (
        template,
        ["CREATE_ON_PUSH", "REPLICATION"],
        "releases",
    )
    assert template in [
        t["prefix"] for t in ecr.describe_repository_creation_templates()["repositoryCreationTemplates"]
    ]

    updated = ecr.update_repository_creation_template(prefix=template, appliedFor=["PULL_THROUGH_CACHE"])
    assert updated["repositoryCreationTemplate"]["appliedFor"] == ["PULL_THROUGH_CACHE"]
    assert updated["repositoryCreationTemplate"]["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"  # kept

    refusals = [
        (
            ecr.create_repository_creation_template,
            {"prefix": template, "appliedFor": ["CREATE_ON_PUSH"]},
            "TemplateAlreadyExistsException",
        ),
        (
            ecr.delete_repository_creation_template,
            {"prefix": template + "-never"},
            "TemplateNotFoundException",
        ),
        (
            ecr.create_repository_creation_template,
            {"prefix": "Bad_Prefix", "appliedFor": ["CREATE_ON_PUSH"]},
            "InvalidParameterException",
        ),
        (
            ecr.create_repository_creation_template,
            {"prefix": template + "-x", "appliedFor": ["ON_PULL"]},
            "InvalidParameterException",
        ),
    ]
    for call, params, code in refusals:
        with pytest.raises(ClientError) as exc:
            call(**params)
        assert exc.value.response["Error"]["Code"] == code, params


def test_a_layer_upload_and_put_image_into_a_missing_repository_create_it_with_the_templates_settings(
    ecr, template
):
    name = f"{template}/app"
    image = im.image((64,))

    ecr.initiate_layer_upload(repositoryName=name)  # a push begins with an upload
    EcrPusher(ecr).push(name, image, "v1")

    _assert_created_with_the_templates_settings(ecr, name)
    assert ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "v1"}])["imageDetails"]


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo needed")
def test_skopeo_pushing_into_a_missing_repository_under_the_prefix_creates_it(
    local_aws, ecr, template, tmp_path
):
    name = f"{template}/team/api"
    image = im.image((64,))
    layout = tmp_path / "layout"
    im.write_oci_layout(layout, image, tag="build")
    host = local_aws.endpoint.split("//", 1)[1]

    done = subprocess.run(
        ["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{local_aws.password}",
         f"oci:{layout}:build", f"docker://{host}/{name}:v1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    _assert_created_with_the_templates_settings(ecr, name)
    (detail,) = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "v1"}])["imageDetails"]
    assert detail["imageDigest"] == image.digest


def test_without_a_create_on_push_template_a_push_into_a_missing_repository_is_refused(
    local_aws, ecr, template, unique_name
):
    ecr.update_repository_creation_template(prefix=template, appliedFor=["PULL_THROUGH_CACHE"])
    outside = unique_name("none") + "/app"  # no template covers it
    for name in (f"{template}/app", outside, template):  # a prefix covers what is under it, not itself
        with pytest.raises(ClientError) as exc:
            ecr.initiate_layer_upload(repositoryName=name)
        assert exc.value.response["Error"]["Code"] == "RepositoryNotFoundException", name
        assert v2(local_aws, "POST", f"/v2/{name}/blobs/uploads/", b"")[0] == 404
        with pytest.raises(ClientError):
            ecr.describe_repositories(repositoryNames=[name])


def test_validate_says_which_template_will_create_a_missing_target_and_when_none_will(
    aws_env, ecr, template, unique_name, tmp_path
):
    from tests.integration.test_mutability_warnings import _config, _env, _run

    covered, uncovered, existing = f"{template}/prod", unique_name("gone"), unique_name("here")
    created = unique_name("made")
    ecr.create_repository(repositoryName=existing)
    config = _config(
        tmp_path, {covered: ["{tag}"], uncovered: ["{tag}"], existing: ["{tag}"], created: ["{tag}"]}
    )
    named = f"{{repository: {created},"  # the target the promoter creates itself says so
    config.write_text(config.read_text().replace(named, f"{named} create_missing: {{}},"))

    done = _run(_env(aws_env), "validate", "--config", str(config))

    assert done.returncode == 0, done.stderr
    warnings = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("warning:")]
    (will,) = [w for w in warnings if covered in w]
    assert f"the repository creation template {template!r} (CREATE_ON_PUSH) will create it" in will
    assert "IMMUTABLE_WITH_EXCLUSION" in will
    (wont,) = [w for w in warnings if uncovered in w]
    assert "no CREATE_ON_PUSH repository creation template covers it" in wont
    assert "promotions into it fail until it is created" in wont
    (made,) = [w for w in warnings if created in w]
    assert "the promoter creates it (create_missing)" in made
    assert not [w for w in warnings if existing in w]


@pytest.fixture
def staged_rules(aws_env, tmp_path, monkeypatch):
    """Stages the function's configuration with the given rules (as test_handler's lambda_env)."""

    def stage(rules: list[dict]) -> None:
        path = tmp_path / settings.STAGED_CONFIG_FILE
        path.write_text(json.dumps({"rules": rules}))
        monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
        handler.runtime.cache_clear()

    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    yield stage
    handler.runtime.cache_clear()


def test_the_promoter_promotes_into_a_missing_target_a_create_on_push_template_creates(
    aws_env, ecr, pusher, template, unique_name, staged_rules
):
    source, covered, uncovered = unique_name("dev"), f"{template}/app", unique_name("gone")
    ecr.create_repository(repositoryName=source)
    image = im.image((2048, 512))
    pusher.push(source, image, "sha-abc")
    staged_rules(
        [
            {
                "name": "dev-to-release",
                "source": {"repository": source, "tags": ["sha-*"]},
                "targets": [{"repository": covered, "tags": ["{tag}", "latest"]}],
            },
            {
                "name": "dev-to-nowhere",
                "source": {"repository": source, "tags": ["sha-*"]},
                "targets": [{"repository": uncovered, "tags": ["{tag}"]}],
            },
        ]
    )
    aws_env.control.reset_calls()

    response = handler.handle_queue(
        sqs_batch(json.dumps(push_event(source, image.digest, "sha-abc"))), FakeLambdaContext()
    )

    assert response["batchItemFailures"] == []
    _assert_created_with_the_templates_settings(ecr, covered)
    assert tag_digest(ecr, covered, "sha-abc") == image.digest
    assert tag_digest(ecr, covered, "latest") == image.digest
    digests = [b.digest for b in image.blobs]
    blobs = ecr.batch_check_layer_availability(repositoryName=covered, layerDigests=digests)
    assert {b["layerDigest"] for b in blobs["layers"] if b["layerAvailability"] == "AVAILABLE"} == {
        b.digest for b in image.blobs
    }
    [promoted] = DynamoDbHistory().for_target(covered, "sha-abc")
    assert (promoted["outcome"], promoted["target_digest"]) == ("promoted", image.digest)
    # Without a template the missing target stays a failure that says so, and is not created.
    [refused] = DynamoDbHistory().for_target(uncovered, "sha-abc")
    assert refused["outcome"] == "failed"
    assert "no CREATE_ON_PUSH repository creation template covers it" in refused["reason"]
    with pytest.raises(ClientError):
        ecr.describe_repositories(repositoryNames=[uncovered])
    # Two missing targets, the registry's templates read once.
    assert aws_env.control.calls()["DescribeRepositoryCreationTemplates"] == 1


def test_a_target_that_says_create_missing_is_created_with_its_settings_and_promoted_into(
    aws_env, ecr, pusher, unique_name, staged_rules
):
    source, target = unique_name("dev"), unique_name("made")  # no template covers it
    ecr.create_repository(repositoryName=source)
    image = im.image((1024,))
    pusher.push(source, image, "sha-abc")
    staged_rules(
        [
            {
                "name": "dev-to-made",
                "source": {"repository": source, "tags": ["sha-*"]},
                "targets": [
                    {
                        "repository": target,
                        "tags": ["{tag}"],
                        "create_missing": {
                            "image_tag_mutability": "IMMUTABLE",
                            "scan_on_push": True,
                            "tags": {"team": "platform"},
                        },
                    }
                ],
            }
        ]
    )

    response = handler.handle_queue(
        sqs_batch(json.dumps(push_event(source, image.digest, "sha-abc"))), FakeLambdaContext()
    )

    assert response["batchItemFailures"] == []
    (repo,) = ecr.describe_repositories(repositoryNames=[target])["repositories"]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"] == [
        {"Key": "team", "Value": "platform"}
    ]
    assert tag_digest(ecr, target, "sha-abc") == image.digest
    [promoted] = DynamoDbHistory().for_target(target, "sha-abc")
    assert (promoted["outcome"], promoted["target_digest"]) == ("promoted", image.digest)
