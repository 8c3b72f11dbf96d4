"""CDK constructs and stack for the promoter."""
