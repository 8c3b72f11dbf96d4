"""The Lambda runtime the promoter is built for, written once (no CDK imports: the runtime harness
in tests/runtime, which `./dev setup` installs, reads it too).

- Python: the stack's `python3.13` on arm64.
- SDK: boto3 and botocore are the runtime's own, chosen by AWS per region and lagging PyPI. The
  promoter claims `SDK_FLOOR` and newer: botocore 1.40.0 is the first whose ECR model has
  `imageTagMutabilityExclusionFilters` (1.39.10 lacks it, and without it ECR's answers lose the
  exclusion filters that decide whether a tag can move). ListImageReferrers comes later (1.41.0):
  below it the adapter reads the registry's OCI referrers API instead (promoter.aws.registry).
  pyproject.toml's lower bounds for boto3/botocore say the same (tests/infra checks).
- Powertools: the layer the stack attaches and the version the tests run are one: `POWERTOOLS_VERSION`,
  pinned in pyproject.toml (tests/infra fails when they drift).
"""

from __future__ import annotations

PYTHON_VERSION = "3.13"
SDK_FLOOR = "1.40.0"
POWERTOOLS_VERSION = "3.37.0"
# The runtime interface client the harness (tests/runtime) runs the asset with: Lambda's own, on PyPI.
AWSLAMBDARIC_VERSION = "4.2.2"
# Powertools' public SSM parameter that names its layer's ARN in each region and partition where it
# is published (Powertools docs, "Lambda Layer": /aws/service/powertools/python/<arch>/<runtime>/<version>).
POWERTOOLS_LAYER_PARAMETER = (
    f"/aws/service/powertools/python/arm64/python{PYTHON_VERSION}/{POWERTOOLS_VERSION}"
)
