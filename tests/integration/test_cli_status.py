"""`promoter status` and `promoter graph` as processes on the local AWS: what each stage holds,
which targets are behind, what waits on a gate, and the rule graph as Mermaid."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from local_aws import images as im

pytestmark = pytest.mark.integration

PROMOTER = [sys.executable, "-m", "promoter_cli.main"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTER, *args], env=dict(os.environ), input=stdin, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def chain(aws_env, ecr, unique_name, pusher, tmp_path):
    """dev -(push sha-*)-> stage -(request v*, scan gate)-> prod; config file path and names."""
    dev, stage, prod = unique_name("dev"), unique_name("stage"), unique_name("prod")
    for name in (dev, stage, prod):
        ecr.create_repository(repositoryName=name)
    config = tmp_path / "promotion.yaml"
    config.write_text(
        f"rules:\n"
        f"  - name: to-stage\n    source: {{repository: {dev}, tags: ['sha-*']}}\n"
        f"    targets: [{{repository: {stage}}}]\n"
        f"  - name: to-prod\n    trigger: request\n    source: {{repository: {stage}, tags: ['sha-*']}}\n"
        f"    require: {{scan: {{max_severity: HIGH}}}}\n"
        f"    targets: [{{repository: {prod}, tags: ['{{tag}}', 'current']}}]\n"
    )
    return dev, stage, prod, str(config)


def test_status_shows_what_each_stage_holds_what_is_behind_and_what_waits_on_a_gate(chain, pusher):
    dev, stage, prod, config = chain
    first, second = im.image((128,)), im.image((128,))
    pusher.push(dev, first, "sha-1")
    event = run("event", "push", f"{dev}:sha-1")
    assert run("handle", "-", "--config", config, stdin=event.stdout).returncode == 0
    pusher.push(dev, second, "sha-2")  # its event lost: stage is behind
    request = run("event", "request", f"{stage}:sha-1", "--rule", "to-prod")
    pending = run("handle", "-", "--config", config, "--json", stdin=request.stdout)
    assert [a["outcome"] for a in json.loads(pending.stdout)["actions"]] == ["gate-pending"] * 2

    result = run("status", "--config", config, "--json")

    assert result.returncode == 0, result.stderr
    to_stage, to_prod = json.loads(result.stdout)["rules"]
    assert [(i["repository"], i["tags"], i["digest"]) for i in to_stage["images"]] == [
        (dev, ["sha-2"], second.digest),
        (dev, ["sha-1"], first.digest),
    ]
    states = {
        (t["repository"], t["tag"]): (t["state"], t["holds"], t["should_hold"]) for t in to_stage["targets"]
    }
    assert states == {
        (stage, "sha-1"): ("in-sync", first.digest, first.digest),
        (stage, "sha-2"): ("missing", None, second.digest),
    }
    (promoted,) = [t for t in to_stage["targets"] if t["tag"] == "sha-1"]
    assert (promoted["last_change"]["outcome"], promoted["last_change"]["trigger"]) == ("promoted", "push")
    assert [(w["repository"], w["digest"]) for w in to_prod["waiting"]] == [(stage, first.digest)]
    assert to_prod["gates"] == ["scan up to HIGH"]
    assert {(t["repository"], t["tag"], t["state"]) for t in to_prod["targets"]} == {
        (prod, "sha-1", "not-requested"),
        (prod, "current", "not-requested"),
    }

    newest_only = run("status", "--config", config, "--rule", "to-stage", "--images", "1", "--json")
    (narrow,) = json.loads(newest_only.stdout)["rules"]
    assert [i["tags"] for i in narrow["images"]] == [["sha-2"]]
    assert [(t["tag"], t["state"]) for t in narrow["targets"]] == [("sha-2", "missing")]
    assert narrow["states"] == {"in-sync": 1, "missing": 1}  # the older image's target still counts

    table = run("status", "--config", config, "--rule", "to-stage").stdout
    assert f"{stage}  sha-2" in table and "missing: would get " + second.digest[:19] in table
    assert "to-prod" not in table


def test_status_lists_only_the_waits_of_the_rules_own_sources(chain, pusher, unique_name, ecr, tmp_path):
    _, stage, prod, config = chain
    # A wait of a rule by the same name whose source is another repository (another configuration,
    # or a source this rule no longer takes): the shared gates table holds it, status must not.
    other = unique_name("stage")
    ecr.create_repository(repositoryName=other)
    other_config = tmp_path / "other.yaml"
    other_config.write_text(
        f"rules:\n  - name: to-prod\n    trigger: request\n    source: {{repository: {other}}}\n"
        f"    require: {{scan: {{max_severity: HIGH}}}}\n    targets: [{{repository: {prod}}}]\n"
    )
    theirs, ours = im.image((128,)), im.image((128,))
    pusher.push(other, theirs, "sha-1")
    pusher.push(stage, ours, "sha-1")
    for repository, rules in ((other, other_config), (stage, config)):
        request = run("event", "request", f"{repository}:sha-1", "--rule", "to-prod")
        pending = run("handle", "-", "--config", str(rules), "--json", stdin=request.stdout)
        assert {a["outcome"] for a in json.loads(pending.stdout)["actions"]} == {"gate-pending"}

    everything = json.loads(run("status", "--config", config, "--rule", "to-prod", "--json").stdout)
    of_stage = json.loads(
        run("status", "--config", config, "--rule", "to-prod", "--repository", stage, "--json").stdout
    )

    for result in (everything, of_stage):
        (to_prod,) = result["rules"]
        assert [(w["repository"], w["digest"]) for w in to_prod["waiting"]] == [(stage, ours.digest)]


def test_status_agrees_with_reconcile_once_reconcile_has_run(chain, pusher):
    dev, stage, _, config = chain
    pusher.push(dev, im.image((64,)), "sha-9")
    assert run("reconcile", "--config", config).returncode == 0

    result = run("status", "--config", config, "--repository", stage, "--json")

    rules = json.loads(result.stdout)["rules"]
    assert [r["rule"] for r in rules] == ["to-stage", "to-prod"]  # stage is to-prod's source too
    assert {t["state"] for t in rules[0]["targets"]} == {"in-sync"}
    assert rules[0]["targets"][0]["last_change"]["trigger"] == "reconcile"


def test_status_refuses_an_unknown_rule_with_exit_2(chain):
    *_, config = chain
    result = run("status", "--config", config, "--rule", "nope")
    assert result.returncode == 2
    assert "no rule 'nope'" in result.stderr


def test_graph_prints_the_rules_as_a_mermaid_flowchart(chain):
    dev, stage, prod, config = chain

    result = run("graph", "--config", config)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    ids = {label: line.split("[", 1)[0].strip() for line in lines[1:4] for label in [line.split('"')[1]]}
    assert set(ids) == {dev, stage, prod}
    push_edge, request_edge = lines[4:]
    assert push_edge.startswith(f"  {ids[dev]} -->|") and push_edge.endswith(f"| {ids[stage]}")
    assert request_edge.startswith(f"  {ids[stage]} -.->|") and "scan up to HIGH" in request_edge
    assert "#123;tag#125;" in request_edge  # template braces escaped for Mermaid


def test_status_follows_a_chain_into_another_account_and_another_region(
    aws_env, ecr, unique_name, pusher, tmp_path
):
    import boto3

    prod_account, west = "210987654321", "eu-west-1"
    name = unique_name("app")
    ecr.create_repository(repositoryName=name)
    kw = {"endpoint_url": aws_env.endpoint, "aws_secret_access_key": "test"}
    boto3.client("ecr", region_name="us-east-1", aws_access_key_id=prod_account, **kw).create_repository(
        repositoryName=name
    )
    boto3.client("ecr", region_name=west, aws_access_key_id=aws_env.account, **kw).create_repository(
        repositoryName=name
    )
    config = tmp_path / "promotion.yaml"
    config.write_text(
        f"rules:\n  - name: out\n    source: {{repository: {name}, tags: ['v*']}}\n    targets:\n"
        f"      - {{repository: {name}, account: '{prod_account}', "
        f"role: 'arn:aws:iam::{prod_account}:role/image-promoter-target'}}\n"
        f"      - {{repository: {name}, region: {west}}}\n"
    )
    first, second = im.image((64,)), im.image((64,))
    pusher.push(name, first, "v1")
    event = run("event", "push", f"{name}:v1")
    handled = run("handle", "-", "--config", str(config), stdin=event.stdout)
    assert handled.returncode == 0, handled.stdout + handled.stderr
    pusher.push(name, second, "v2")  # not handled: behind in both registries

    result = run("status", "--config", str(config), "--json")

    assert result.returncode == 0, result.stderr
    (rule,) = json.loads(result.stdout)["rules"]
    states = {(t["account"], t["region"], t["tag"]): t["state"] for t in rule["targets"]}
    assert states == {
        (prod_account, None, "v1"): "in-sync",
        (None, west, "v1"): "in-sync",
        (prod_account, None, "v2"): "missing",
        (None, west, "v2"): "missing",
    }
    synced = [t for t in rule["targets"] if t["tag"] == "v1"]
    assert all(t["last_change"] and t["last_change"]["outcome"] == "promoted" for t in synced)
    table = run("status", "--config", str(config)).stdout
    assert f"{name}@{prod_account}" in table and f"{name}@{west}" in table
