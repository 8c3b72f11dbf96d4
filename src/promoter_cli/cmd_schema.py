"""`promoter schema`: the configuration file's JSON Schema, for editors, or its reference page.

`promoter schema > promotion.schema.json` regenerates the committed schema (the sample
`promotion.yaml` names it on its first line, for the YAML language server);
`promoter schema --markdown > docs/configuration.md` the reference page. Reads nothing, exit 0.
"""

from __future__ import annotations

import argparse
import json
import sys

from promoter_cli.cmd_engine import EXIT_OK
from promoter_cli.config_reference import render_markdown
from promoter_cli.config_schema import REFERENCE_PAGE, SCHEMA_FILE, build_schema


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `schema`."""
    schema = sub.add_parser(
        "schema",
        help=f"print the configuration's JSON Schema (the committed {SCHEMA_FILE}), for editors",
    )
    schema.add_argument(
        "--markdown",
        action="store_true",
        help=f"print the configuration reference generated from the schema ({REFERENCE_PAGE}) instead",
    )
    schema.set_defaults(func=cmd_schema)


def schema_text() -> str:
    """The schema as committed: two-space JSON, one trailing newline."""
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


def cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(render_markdown(build_schema()) if args.markdown else schema_text())
    return EXIT_OK
