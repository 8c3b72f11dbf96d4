"""Synthesize the stack once per session and share the template, the assembly and the report.

aws_cdk is imported only through `infra` (whose __init__ silences jsii's multi-line Node
end-of-life banner first) or inside functions, so the banner never reaches the test output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from infra.app import build_app
from infra.stack import STACK_NAME
from promoter.model.config import PromotionConfig, parse_config
from tests.fixtures import EVENTS_DIR

if TYPE_CHECKING:
    from aws_cdk.assertions import Template

REPO_ROOT = Path(__file__).parents[2]
# The construct id of the scheduled reconciliation inside ImagePromoter (in its logical ids).
RECONCILIATION_ID = "Reconciliation"

# Rules that exercise every shape the stack derives something from: an exact push source (the
# samples' `my-repository-name`), a prefix glob (`team/*`, the samples' `team/service`), a glob
# with an inner wildcard, and a request-only rule whose source must not widen the push pattern.
TEST_CONFIG: dict[str, Any] = {
    "rules": [
        {
            "name": "sample-push",
            "source": {"repository": "my-repository-name", "tags": ["*"]},
            "targets": [{"repository": "my-repository-name-prod", "tags": ["{tag}"]}],
        },
        {
            "name": "team-releases",
            "source": {"repository": "team/*", "tags": ["v*"]},
            "targets": [{"repository": "release/{repository}", "tags": ["{tag}", "latest"]}],
        },
        {
            "name": "svc-mirror",
            "source": {"repository": "svc-?-api", "tags": ["*"]},
            "targets": [{"repository": "mirror/{repository}", "tags": ["{tag}"]}],
        },
        {
            "name": "staging-to-prod",
            "trigger": "request",
            "source": {"repository": "app-staging", "tags": ["v*"]},
            "targets": [{"repository": "app-prod", "tags": ["{tag}"]}],
        },
    ]
}


@dataclass(frozen=True)
class Synthesized:
    """One synthesized app: the stack's template and where the cloud assembly was written."""

    config: PromotionConfig
    outdir: Path
    template_dict: dict[str, Any]
    template: Template
    error: str | None  # the synth error (cdk-nag's validation failure), if any

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template_dict["Resources"].items() if v["Type"] == cfn_type}

    def only(self, cfn_type: str) -> dict[str, Any]:
        found = list(self.resources(cfn_type).values())
        assert len(found) == 1, f"expected one {cfn_type}, found {len(found)}"
        return found[0]

    def of_promoter(self, cfn_type: str) -> dict[str, Any]:
        """The one resource of this type that is the promoter's own, not its reconciliation's."""
        found = [r for k, r in self.resources(cfn_type).items() if RECONCILIATION_ID not in k]
        assert len(found) == 1, f"expected one promoter {cfn_type}, found {len(found)}"
        return found[0]

    def event_rules(self) -> list[dict[str, Any]]:
        """The rules that route events (not the reconciliation's schedule)."""
        return [r for r in self.resources("AWS::Events::Rule").values() if "EventPattern" in r["Properties"]]

    def event_rule(self, name: str) -> dict[str, Any]:
        """The one rule whose logical id holds `name` (`PushRule`, `RequestRule`, `TrustMaterialRule`)."""
        (rule,) = [r for logical_id, r in self.resources("AWS::Events::Rule").items() if name in logical_id]
        return rule


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context (its feature flags), which the cdk CLI hands the app: an in-process App
    gets the same, so these tests see the template a deploy makes."""
    return dict(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])


def synthesize(config: PromotionConfig, outdir: Path) -> Synthesized:
    """Synth exactly as app.py does (stack + AwsSolutions checks) into `outdir`."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    app = cdk.App(outdir=str(outdir), context=cdk_json_context())
    build_app(app, config)
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # jsii surfaces ValidationFailed (cdk-nag) as RuntimeError
        error = str(exc)
    template_dict = json.loads((outdir / f"{STACK_NAME}.template.json").read_text())
    return Synthesized(config, outdir, template_dict, Template.from_json(template_dict), error)


@pytest.fixture
def test_config_data() -> dict[str, Any]:
    """A fresh copy of TEST_CONFIG as plain data, for tests that write or alter it."""
    return json.loads(json.dumps(TEST_CONFIG))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def test_config() -> PromotionConfig:
    return parse_config(TEST_CONFIG)


@pytest.fixture(scope="session")
def synthesized(
    test_config: PromotionConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Synthesized]:
    yield synthesize(test_config, tmp_path_factory.mktemp("cdk-out"))


@pytest.fixture(scope="session")
def synth() -> Callable[[PromotionConfig, Path], Synthesized]:
    """`synth(config, outdir)`: another configuration, synthesized as app.py does it."""
    return synthesize


@pytest.fixture(scope="session")
def load_event() -> Callable[[str], dict[str, Any]]:
    """`load_event("ecr-push.json")`: one of the shared ECR event samples, parsed."""

    def load(name: str) -> dict[str, Any]:
        return json.loads((EVENTS_DIR / name).read_text())

    return load
