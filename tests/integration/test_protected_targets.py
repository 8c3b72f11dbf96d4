"""Protected targets on the local AWS with its policy enforcement (issue 18.2): the statements the
stack builds (promoter.model.protection), put in place by the custom resource's own code
(promoter.protection_handler.apply), refuse a direct push of a new image while the promoter's
promotion into the repository succeeds; the repository's other statements are kept, and removing
the protection takes out only the promoter's. `promoter local --config` applies the same statements
to the repositories it creates, and `validate`, `plan`, `status` and `graph` say what is protected."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local_aws import images as im
from local_aws.images import EcrPusher
from local_aws.principals import credentials_for
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.aws.repository_policy import RepositoryPolicies
from promoter.model.outcomes import PROMOTED
from promoter.model.plan import Action, SourceImage
from promoter.model.protection import PROTECTION_SID_PREFIX, is_protected, protection_statements
from promoter.protection_handler import apply
from promoter.workflows.promote import Promoter

pytestmark = pytest.mark.integration

PROMOTER = [sys.executable, "-m", "promoter_cli.main"]


def client(endpoint: str, principal_arn: str):
    """An ECR client acting as `principal_arn` on the local AWS (no retries: a refusal is final)."""
    creds = credentials_for(principal_arn)
    return boto3.client(
        "ecr",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def principals(aws_env) -> dict[str, str]:
    account = aws_env.account
    return {
        name: f"arn:aws:iam::{account}:role/{role}"
        for name, role in (
            ("promoter", "ImagePromoter-us-east-1-promoter"),
            ("manager", "ImagePromoter-protection"),
            ("break_glass", "break-glass"),
            ("ci", "ci"),
        )
    } | {"root": f"arn:aws:iam::{account}:root"}


def cloudformation(request: str, repository: str, statements: list[dict] | None = None) -> dict:
    """The event CloudFormation sends the protection's custom resource."""
    event = {"RequestType": request, "ResourceProperties": {"RepositoryName": repository}}
    if statements is not None:
        event["ResourceProperties"]["Statements"] = json.dumps(statements)
    if request == "Delete":
        event["PhysicalResourceId"] = repository
    return event


@pytest.fixture
def protected(aws_env, ecr, unique_name, principals):
    """dev and prod; prod holds a statement of its own and then gets the protection, as the custom
    resource puts it (its role: `manager`)."""
    dev, prod = unique_name("dev"), unique_name("prod")
    ecr.create_repository(repositoryName=dev)
    ecr.create_repository(repositoryName=prod)
    own = {
        "Sid": "PullFromProdAccount",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
    }
    ecr.set_repository_policy(
        repositoryName=prod, policyText=json.dumps({"Version": "2012-10-17", "Statement": [own]})
    )
    statements = protection_statements(
        [principals["promoter"]], [principals["manager"]], [principals["break_glass"]]
    )
    manager = RepositoryPolicies(client(aws_env.endpoint, principals["manager"]))
    assert apply(cloudformation("Create", prod, statements), manager) == prod
    return dev, prod, own, manager


def refused(call) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"]


def test_a_direct_push_is_refused_while_the_promoters_promotion_succeeds(aws_env, ecr, protected, principals):
    dev, prod, _own, _manager = protected
    image = im.image((512,))
    EcrPusher(ecr).push(dev, image, "v1")

    for who in ("ci", "root", "manager"):
        pusher = EcrPusher(client(aws_env.endpoint, principals[who]))
        assert refused(lambda p=pusher: p.push(prod, im.image((256,)), "v1")) == "AccessDeniedException", who
    # Nor may anyone but the manager and break-glass change the policy, or delete an image.
    ci = client(aws_env.endpoint, principals["ci"])
    assert refused(lambda: ci.delete_repository_policy(repositoryName=prod)) == "AccessDeniedException"

    session = boto3.session.Session(
        aws_access_key_id=credentials_for(principals["promoter"]).access_key_id,
        aws_secret_access_key=credentials_for(principals["promoter"]).secret_access_key,
        region_name="us-east-1",
    )
    registry = EcrRegistry(make_ecr_client(session))
    action = Action("to-prod", SourceImage(dev, "v1", image.digest), prod, "v1")

    result = Promoter(registry).promote(action)

    assert (result.outcome, result.target_digest) == (PROMOTED, image.digest)
    held = ecr.batch_get_image(repositoryName=prod, imageIds=[{"imageTag": "v1"}])["images"]
    assert held[0]["imageId"]["imageDigest"] == image.digest
    # The named break-glass principal is let through.
    EcrPusher(client(aws_env.endpoint, principals["break_glass"])).push(prod, im.image((128,)), "hotfix")


def test_existing_statements_are_kept_and_removing_the_protection_takes_out_only_its_own(
    aws_env, ecr, protected, principals
):
    _dev, prod, own, manager = protected
    policy = json.loads(ecr.get_repository_policy(repositoryName=prod)["policyText"])
    assert own in policy["Statement"]
    assert is_protected(json.dumps(policy))
    # Applied again (a stack update): still one copy of each statement.
    statements = protection_statements([principals["promoter"]], [principals["manager"]])
    apply(cloudformation("Update", prod, statements), manager)
    again = json.loads(ecr.get_repository_policy(repositoryName=prod)["policyText"])
    assert [s.get("Sid", "") for s in again["Statement"]].count(f"{PROTECTION_SID_PREFIX}Images") == 1

    assert apply(cloudformation("Delete", prod), manager) == prod

    assert json.loads(ecr.get_repository_policy(repositoryName=prod)["policyText"])["Statement"] == [own]
    EcrPusher(client(aws_env.endpoint, principals["ci"])).push(prod, im.image((128,)), "v2")  # open again


def test_removing_the_protection_of_a_repository_without_other_statements_deletes_the_policy(
    aws_env, ecr, unique_name, principals
):
    name = unique_name("prod")
    ecr.create_repository(repositoryName=name)
    manager = RepositoryPolicies(client(aws_env.endpoint, principals["manager"]))
    apply(
        cloudformation(
            "Create", name, protection_statements([principals["promoter"]], [principals["manager"]])
        ),
        manager,
    )

    apply(cloudformation("Delete", name), manager)

    assert (
        refused(lambda: ecr.get_repository_policy(repositoryName=name)) == "RepositoryPolicyNotFoundException"
    )
    # A repository deleted before the stack: nothing to take out, and no failure.
    assert apply(cloudformation("Delete", f"{name}-gone"), manager) == f"{name}-gone"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args], env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


def test_validate_plan_status_and_graph_say_which_targets_are_protected(
    aws_env, ecr, unique_name, pusher, tmp_path
):
    dev, prod, qa = unique_name("dev"), unique_name("prod"), unique_name("qa")
    for name in (dev, prod, qa):
        ecr.create_repository(repositoryName=name)
    config = tmp_path / "promotion.yaml"
    config.write_text(
        f"rules:\n  - name: to-prod\n    source: {{repository: {dev}, tags: ['v*']}}\n"
        f"    targets: [{{repository: {prod}, protect: true}}, {{repository: {qa}}}]\n"
    )
    image = im.image((128,))
    pusher.push(dev, image, "v1")

    validate = cli("validate", "--config", str(config))
    assert validate.returncode == 0, validate.stderr
    assert f"-> {prod}:{{tag}} (this account, this region, protected)" in validate.stdout
    assert f"-> {qa}:{{tag}} (this account, this region)" in validate.stdout

    event = cli("event", "push", f"{dev}:v1").stdout
    plan = subprocess.run(
        [*PROMOTER, "plan", "-", "--config", str(config), "--json"],
        env=dict(os.environ),
        input=event,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plan.returncode == 0, plan.stderr
    assert {a["target_repository"]: a["protected"] for a in json.loads(plan.stdout)["actions"]} == {
        prod: True,
        qa: False,
    }

    status = cli("status", "--config", str(config), "--json")
    assert status.returncode == 0, status.stderr
    (rule,) = json.loads(status.stdout)["rules"]
    assert {t["repository"]: t["protected"] for t in rule["targets"]} == {prod: True, qa: False}
    assert f"{prod}:{{tag}} (protected)" in cli("status", "--config", str(config)).stdout

    graph = cli("graph", "--config", str(config))
    assert f"{prod} (protected)" in graph.stdout and f"{qa} (protected)" not in graph.stdout


def test_promoter_local_protects_the_protected_targets_it_creates(aws_env, unique_name, principals):
    """What `promoter local --config` runs at start: the stack's statements, with the principal the
    local promoter runs as (the account's administrator) as the writer; anyone else is refused."""
    from promoter.model.config import parse_config
    from promoter_cli.cmd_local import (
        LOCAL_ACCESS_KEY_ID,
        LOCAL_SECRET_ACCESS_KEY,
        create_configured_repositories,
    )

    dev, prod, qa = unique_name("dev"), unique_name("prod"), unique_name("qa")
    config = parse_config(
        {
            "rules": [
                {
                    "name": "to-prod",
                    "source": {"repository": dev, "tags": ["v*"]},
                    "targets": [{"repository": prod, "protect": True}, {"repository": qa}],
                }
            ]
        }
    )

    created = create_configured_repositories(config, aws_env.endpoint, "us-east-1", account=aws_env.account)

    assert created == sorted([dev, prod, qa])
    ci = EcrPusher(client(aws_env.endpoint, principals["ci"]))
    assert refused(lambda: ci.push(prod, im.image((128,)), "v1")) == "AccessDeniedException"
    ci.push(qa, im.image((128,)), "v1")  # not protected
    local_promoter = boto3.client(
        "ecr",
        endpoint_url=aws_env.endpoint,
        region_name="us-east-1",
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
    )
    EcrPusher(local_promoter).push(prod, im.image((128,)), "v1")
    assert is_protected(local_promoter.get_repository_policy(repositoryName=prod)["policyText"])
