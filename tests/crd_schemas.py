"""The admission controllers' CRD schemas (tests/fixtures/crds) and a check of a policy against one
as `kubectl apply` checks it by default: the attestation policy tests, unit and on the local AWS."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from promoter_cli import attestation_policy as ap
from tests.fixtures import FIXTURES

CRDS = FIXTURES / "crds"
# (controller, kyverno api) -> (CRD schema file, apiVersion, kind)
SCHEMAS = {
    (ap.KYVERNO, ap.IMAGE_VALIDATING_POLICY): (
        "kyverno-v1.19.0-imagevalidatingpolicies.policies.kyverno.io-v1.json",
        "policies.kyverno.io/v1",
        "ImageValidatingPolicy",
    ),
    (ap.KYVERNO, ap.CLUSTER_POLICY): (
        "kyverno-v1.19.0-clusterpolicies.kyverno.io-v1.json",
        "kyverno.io/v1",
        "ClusterPolicy",
    ),
    (ap.POLICY_CONTROLLER, ap.IMAGE_VALIDATING_POLICY): (
        "policy-controller-v0.15.1-clusterimagepolicies.policy.sigstore.dev-v1beta1.json",
        "policy.sigstore.dev/v1beta1",
        "ClusterImagePolicy",
    ),
}


def crd_schema(kind: tuple[str, str]) -> dict[str, Any]:
    return json.loads((CRDS / SCHEMAS[kind][0]).read_text())


def strict(schema: Any) -> Any:
    """The schema as `kubectl apply` uses it by default (--validate=strict, server-side field
    validation): an object that lists its properties admits no other field, unless the schema says
    it keeps unknown fields (`x-kubernetes-preserve-unknown-fields`) or sets additionalProperties."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


# What the API server admits at every object's root whatever its schema says (a CRD schema need not
# list them: the policy-controller's does not), with metadata.name a DNS-1123 label.
ROOT_FIELDS = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}


def schema_errors(kind: tuple[str, str], document: dict[str, Any]) -> list[str]:
    schema = crd_schema(kind)
    schema["properties"] = {**schema["properties"], **ROOT_FIELDS}
    validator = jsonschema.Draft7Validator(strict(schema))
    return sorted(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)
    )
