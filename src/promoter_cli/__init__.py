"""The `promoter` command line: one engine, the same code path as the Lambda."""
