"""ECR Image Promoter: the engine shared by the Lambda functions, the CLI and the local run."""

# The one version of the project (pyproject.toml reads it): the attestations' verifier.version.
__version__ = "0.1.0"
