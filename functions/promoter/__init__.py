"""ECR Image Promoter: the engine shared by the Lambda functions, the CLI and the local run."""
