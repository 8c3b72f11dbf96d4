"""What the promoter does, end to end: promote one action, handle one event (service), reconcile,
roll back. One path for the Lambda, the CLI and the local runs."""
