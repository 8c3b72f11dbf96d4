"""The documentation's command lines are true: the README's "Your first promotion" blocks, every
example of the command table (docs/cli.md) and then every other `sh` block of the README and of
docs/*.md run as written (`./dev promoter` and `promoter` through this checkout's CLI, `./dev` as
this checkout's) against `promoter local`, with only what it prints pasted; the lines the README
says the first terminal shows do appear there (the push promoted with no `handle`); the exit codes
are the ones the pages give; a block that is not run says why on the line above it; the commands
docs/cli.md says take `--config` do, and no other; its Mermaid graph is `promoter graph`'s."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from promoter_cli.resources import OUTPUT_ENV_VARS

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).parents[2]
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
CLI_PAGE = DOCS / "cli.md"
SAMPLE_CONFIG = REPO_ROOT / "promotion.yaml"
README_PORT = "4566"  # the port the README's examples use; the tests serve on a free one
COMMAND_TIMEOUT_SECONDS = 300  # the demo included; a bound against a hang, not a measurement
# How long a line the README shows in the first terminal may take to appear there: a bound against
# a hang on a loaded machine (the wait ends when the line appears), not a measurement.
TERMINAL_LINE_TIMEOUT_SECONDS = 120
# In the README's terminal lines, what differs from run to run: the time and the image's digest.
VARYING = re.compile(r"^\d\d:\d\d:\d\d|sha256:[0-9a-f]{12}")


# The stack name the pages' deployed examples use (`--stack ImagePromoter`): infra.stack.STACK_NAME.
DOCS_STACK_NAME = "ImagePromoter"
# A block the tests do not run says why, on the line right above its fence.
NOT_RUN = re.compile(r"<!-- not run by the tests: (.*?) -->")
# Shell in any other fence would escape the runner: the pages write commands in `sh` blocks only.
OTHER_SHELL_FENCE = re.compile(r"^```(bash|shell|console|zsh)\s*$", flags=re.MULTILINE)


def pages() -> list[Path]:
    """The README, then every page of docs/, in name order: the order their blocks run in."""
    return [README, *sorted(DOCS.glob("*.md"))]


def section(title: str, page: Path = README) -> str:
    text = page.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


@dataclass(frozen=True)
class ShBlock:
    page: Path
    body: str
    not_run: str | None  # why the tests do not run it, or None: they do


def sh_blocks(page: Path) -> list[ShBlock]:
    """Every `sh` block of a page, with the reason it is not run when the line above gives one."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    # A fence may be indented (a block inside a list item): its lines are, by as much.
    for match in re.finditer(r"^( *)```sh\n(.*?)^\1```", text, flags=re.DOTALL | re.MULTILINE):
        above = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        reason = NOT_RUN.fullmatch(above.strip())
        blocks.append(ShBlock(page, textwrap.dedent(match[2]), reason[1].strip() if reason else None))
    return blocks


def blocks_to_run_after_the_table() -> list[ShBlock]:
    """The `sh` blocks of every page, but the first promotion's (run first) and those not run."""
    first_promotion = section("Your first promotion")
    return [
        block
        for page in pages()
        for block in sh_blocks(page)
        if block.not_run is None and not (page == README and block.body in first_promotion)
    ]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def blocks_in_order(text: str) -> list[tuple[str, str]]:
    """The `sh` and `text` blocks, (language, body), in the order they appear."""
    return re.findall(r"```(sh|text)\n(.*?)```", text, flags=re.DOTALL)


def line_pattern(shown: str) -> re.Pattern[str]:
    """A line the README shows, as a pattern: its time and its digest stand for any."""
    parts, last = [], 0
    for match in VARYING.finditer(shown):
        parts.append(re.escape(shown[last : match.start()]))
        parts.append(r"\d\d:\d\d:\d\d" if ":" in match[0][:3] else r"sha256:[0-9a-f]{12}")
        last = match.end()
    parts.append(re.escape(shown[last:]))
    return re.compile("".join(parts))


class Terminal:
    """The lines a `promoter local` process prints, read on a thread so a wait has a bound."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, pattern: re.Pattern[str], timeout: float) -> str:
        """The next line that matches, reading on from the last match; AssertionError at the bound."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line like {pattern.pattern!r}; printed: {self.seen}") from None
            if line is None:
                raise AssertionError(f"promoter local ended before {pattern.pattern!r}; printed: {self.seen}")
            self.seen.append(line)
            if pattern.fullmatch(line):
                return line


def commands_of(block: str) -> list[str]:
    """The block's command lines, comments and comment-only lines dropped."""
    return [command for command, _ in commands_with_exit(block)]


def commands_with_exit(block: str) -> list[tuple[str, int]]:
    """The block's commands (a line ending in `\\` joined with the next), each with the exit code
    its comment gives (`# exit 1: ...`), else 0."""
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        command, _, comment = line.partition("  #")
        if command.strip() and not command.strip().startswith("#"):
            expected = re.match(r"\s*\(?exit (\d+)", comment)
            commands.append((command.strip(), int(expected[1]) if expected else 0))
    return commands


def deploy_stand_in(pasted: dict[str, str], name: str) -> None:
    """What `cdk deploy` leaves for `--stack NAME` to read, on the local AWS: a CloudFormation stack
    whose outputs name `promoter local`'s bus and queues (those its `export` lines give)."""
    outputs = {output: pasted[env] for output, env in OUTPUT_ENV_VARS.items() if env in pasted}
    assert outputs, pasted
    template = {
        # A stack needs one resource; a topic is one moto's CloudFormation creates.
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    session = boto3.session.Session(
        aws_access_key_id=pasted["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=pasted["AWS_SECRET_ACCESS_KEY"],
        region_name=pasted.get("AWS_REGION") or pasted["AWS_DEFAULT_REGION"],
    )
    session.client("cloudformation", endpoint_url=pasted["AWS_ENDPOINT_URL"]).create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )


@dataclass(frozen=True)
class Row:
    command: str  # the synopsis, e.g. "promoter event push REPO:TAG [--digest D]"
    example: str
    exit_code: int


def table_rows() -> list[Row]:
    """The command table: the synopsis, its example and the exit code the example says (else 0)."""
    rows = []
    for line in section("Commands", CLI_PAGE).splitlines():
        if not line.startswith("| `promoter"):
            continue
        cells = [c.strip().replace("\0", "|") for c in line.replace("\\|", "\0").strip("|").split(" | ")]
        command, _, example, _ = cells
        spans = re.findall(r"`([^`]+)`", example)
        assert spans, f"docs/cli.md's row for {command} has no example"
        expected = re.search(r"\(exit (\d+)", example)
        rows.append(Row(command.strip("`"), spans[0], int(expected[1]) if expected else 0))
    return rows


def subcommand(synopsis: str) -> list[str]:
    """`promoter event push REPO:TAG ...` -> ["event", "push"]."""
    words = []
    for word in synopsis.split()[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        words.append(word)
    return words


class Cli:
    """Runs README lines in a directory, with `promoter` (and `./dev promoter`) as this checkout's
    CLI and only the environment a new user has: no AWS_* but the endpoint, a fresh HOME."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        shim = self.bin / "promoter"
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m promoter_cli.main "$@"\n')
        shim.chmod(0o755)
        # skopeo login keeps its credentials in the test (REGISTRY_AUTH_FILE only for skopeo:
        # docker-registry reads REGISTRY_* variables as its own configuration).
        skopeo = self.bin / "skopeo"
        skopeo.write_text(
            f"#!/bin/sh\nREGISTRY_AUTH_FILE={shlex.quote(str(tmp_path / 'auth.json'))} "
            f'exec {shlex.quote(shutil.which("skopeo") or "skopeo")} "$@"\n'
        )
        skopeo.chmod(0o755)
        home = tmp_path / "home"
        home.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(
            PATH=f"{self.bin}:{os.environ['PATH']}",
            HOME=str(home),
        )
        self.host = ""

    def line(self, text: str) -> str:
        dev = shlex.quote(str(REPO_ROOT / "dev"))
        text = text.replace("./dev promoter", "promoter").replace("./dev ", f"{dev} ")
        return text.replace(f"127.0.0.1:{README_PORT}", self.host) if self.host else text

    def run(self, text: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", self.line(text)],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )

    def serve(self, text: str, cwd: Path) -> tuple[subprocess.Popen[str], Terminal]:
        """Starts a `promoter local` line (on a free port) and reads what it prints up to Ctrl-C."""
        args = shlex.split(self.line(text).replace(f"--port {README_PORT}", "--port 0"))
        assert args[:2] == ["promoter", "local"], text
        if "--port" not in args:  # the default port is the README's
            args += ["--port", "0"]
        proc = subprocess.Popen(
            [str(self.bin / "promoter"), *args[1:]],
            cwd=cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        terminal = Terminal(proc)
        try:
            terminal.until(re.compile(r"# Ctrl-C.*"), COMMAND_TIMEOUT_SECONDS)
        except AssertionError:
            proc.kill()
            raise AssertionError(f"{text}: {proc.stderr.read() if proc.stderr else ''}") from None
        return proc, terminal


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_every_sh_block_of_the_pages_is_run_or_says_why_not():
    blocks = [block for page in pages() for block in sh_blocks(page)]
    assert any(block.not_run is None for block in blocks if block.page != README)
    for block in blocks:
        assert block.not_run != "", f"{block.page.name}: a block not run must say why"
    for page in pages():
        text = page.read_text(encoding="utf-8")
        assert not OTHER_SHELL_FENCE.search(text), f"{page.name}: commands go in `sh` blocks, run by tests"
        marks = sum(bool(NOT_RUN.fullmatch(line.strip())) for line in text.splitlines())
        assert marks == sum(block.not_run is not None for block in sh_blocks(page)), (
            f"{page.name}: a 'not run by the tests' comment must stand on the line right above its `sh` block"
        )


def test_the_first_promotion_and_every_command_of_the_pages_run_as_they_say(tmp_path: Path):
    (server, *steps) = blocks_in_order(section("Your first promotion"))
    assert server[0] == "sh"
    (serve_line,) = commands_of(server[1])
    commands = [c for language, body in steps if language == "sh" for c in commands_of(body)]
    assert not any(re.search(r"promoter (handle|event|reconcile)\b", c) for c in commands), (
        "the first promotion is promoted by promoter local itself, with no event handed over"
    )
    cli = Cli(tmp_path)
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(SAMPLE_CONFIG, first / "promotion.yaml")
    proc, terminal = cli.serve(serve_line, first)
    try:
        # "paste all three into a second terminal"
        exports = [p for p in terminal.seen if p.startswith("export ")]
        assert len(exports) == 2, terminal.seen
        pasted = dict(w.split("=", 1) for export in exports for w in shlex.split(export)[1:])
        cli.env.update(pasted)
        endpoint = pasted["AWS_ENDPOINT_URL"]
        cli.host = endpoint.split("//", 1)[1]
        (login,) = [p for p in terminal.seen if p.startswith("skopeo login ")]
        logged_in = cli.run(login, first)
        assert logged_in.returncode == 0, logged_in.stderr
        for language, body in steps:
            if language == "text":  # what the first terminal shows: wait until it does
                for shown in body.splitlines():
                    terminal.until(line_pattern(shown), TERMINAL_LINE_TIMEOUT_SECONDS)
                continue
            for step in commands_of(body):
                done = cli.run(step, first)
                assert done.returncode == 0, (step, done.stdout, done.stderr)
                assert "Traceback" not in done.stderr and "Warning" not in done.stderr, (step, done.stderr)
        status = cli.run("promoter status --json", first)
        assert '"state": "in-sync"' in status.stdout and '"state": "missing"' not in status.stdout

        table = tmp_path / "table"
        table.mkdir()
        shutil.copy(SAMPLE_CONFIG, table / "promotion.yaml")
        for row in table_rows():
            if subcommand(row.command) == ["local"]:
                other, _ = cli.serve(row.example, table)
                assert stop(other) == row.exit_code, row.example
                continue
            done = cli.run(row.example, table)
            assert done.returncode == row.exit_code, (row.example, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr, (row.example, done.stderr)

        # Then every other block, page by page; `--stack ImagePromoter` finds a stand-in deploy.
        deploy_stand_in(pasted, DOCS_STACK_NAME)
        for block in blocks_to_run_after_the_table():
            for command, expected in commands_with_exit(block.body):
                where = (block.page.name, command)
                if command.startswith(("promoter local", "./dev promoter local")):
                    other, _ = cli.serve(command, table)
                    assert stop(other) == expected, where
                    continue
                done = cli.run(command, table)
                assert done.returncode == expected, (where, done.stdout, done.stderr)
                assert "Traceback" not in done.stderr, (where, done.stderr)
    finally:
        assert stop(proc) == 0


def test_the_commands_the_cli_page_says_take_config_do_and_no_other_does(tmp_path: Path):
    text = CLI_PAGE.read_text(encoding="utf-8")
    claim = re.search(r"take `--config PATH` \(default `promotion.yaml`\): ([^;]+);", text)
    assert claim, "docs/cli.md no longer says which commands take --config"
    with_config = set(re.findall(r"`([a-z][a-z -]*)`", claim[1]))  # a sub-command: `attestation policy`
    assert "local --config PATH" in text  # local's --config is described on its own
    cli = Cli(tmp_path)
    for row in table_rows():
        words = subcommand(row.command)
        helped = cli.run(shlex.join(["promoter", *words, "--help"]), tmp_path)
        assert helped.returncode == 0, (words, helped.stderr)
        takes_config = "--config" in helped.stdout
        expected = " ".join(words) in with_config or words == ["local"]
        assert takes_config == expected, (
            f"promoter {' '.join(words)}: --config {takes_config}, docs/cli.md {expected}"
        )


def test_the_cli_page_graph_is_what_promoter_graph_prints_for_the_sample_rules(tmp_path: Path):
    (shown,) = code_blocks(section("`promoter graph`", CLI_PAGE), "mermaid")
    printed = Cli(tmp_path).run(f"promoter graph --config {shlex.quote(str(SAMPLE_CONFIG))}", tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == shown
