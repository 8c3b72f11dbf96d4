"""CDK constructs and stack for the promoter.

Importing this package first quiets jsii: on Node 20 it prints a multi-line "Node 20 is
end-of-life" box to stderr each time `aws_cdk` is imported, burying real synth errors. The box is
keyed on `JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION` (a list of major versions), not on the
older `..._DEPRECATED_NODE_VERSION`, so both are set, before anything imports `aws_cdk`.
"""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
