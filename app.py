#!/usr/bin/env python3
"""CDK entry point (cdk.json runs it with the repository's venv). The work is in infra.app."""

import sys

from infra.app import main

if __name__ == "__main__":
    sys.exit(main())
