#!/usr/bin/env python3
"""CDK entry point (cdk.json runs it with the repository's venv). The work is in infra.app."""

import os
import sys

# cdk-nag 3.0.2's EventBusOpenAccess rule reads the deprecated CfnEventBusPolicy#principal of every
# bus policy (the stack writes the statement form, through EventBus.add_to_resource_policy), so jsii
# would warn on every synth about an API the stack does not use. The jsii kernel reads this when
# aws_cdk is first imported, below. tests/infra/test_synth_warnings.py builds the stacks with
# JSII_DEPRECATED=fail, so a deprecated API in our own code still fails; `JSII_DEPRECATED=warn cdk
# synth` shows every warning again.
os.environ.setdefault("JSII_DEPRECATED", "quiet")

from infra.app import main  # after the variable the jsii kernel reads at start

if __name__ == "__main__":
    sys.exit(main())
