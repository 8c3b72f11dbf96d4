"""The README's command line is true: its "Your first promotion" blocks and every example of its
command table run as written (`./dev promoter` and `promoter` through this checkout's CLI) against
`promoter local`, with only what it prints pasted; the lines it says the first terminal shows do
appear there (the push promoted with no `handle`); the exit codes are the ones the README gives;
the commands it says take `--config` do, and no other; its Mermaid graph is `promoter graph`'s."""

from __future__ import annotations

import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).parents[2]
README = REPO_ROOT / "README.md"
SAMPLE_CONFIG = REPO_ROOT / "promotion.yaml"
README_PORT = "4566"  # the port the README's examples use; the tests serve on a free one
COMMAND_TIMEOUT_SECONDS = 300  # the demo included; a bound against a hang, not a measurement
# How long a line the README shows in the first terminal may take to appear there: a bound against
# a hang on a loaded machine (the wait ends when the line appears), not a measurement.
TERMINAL_LINE_TIMEOUT_SECONDS = 120
# In the README's terminal lines, what differs from run to run: the time and the image's digest.
VARYING = re.compile(r"^\d\d:\d\d:\d\d|sha256:[0-9a-f]{12}")


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


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
    lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@dataclass(frozen=True)
class Row:
    command: str  # the synopsis, e.g. "promoter event push REPO:TAG [--digest D]"
    example: str
    exit_code: int


def table_rows() -> list[Row]:
    """The command table: the synopsis, its example and the exit code the example says (else 0)."""
    rows = []
    for line in section("The command line").splitlines():
        if not line.startswith("| `promoter"):
            continue
        cells = [c.strip().replace("\0", "|") for c in line.replace("\\|", "\0").strip("|").split(" | ")]
        command, _, example, _ = cells
        spans = re.findall(r"`([^`]+)`", example)
        assert spans, f"the README's row for {command} has no example"
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
        text = text.replace("./dev promoter", "promoter")
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


def test_the_first_promotion_and_every_command_example_run_as_the_readme_says(tmp_path: Path):
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
    finally:
        assert stop(proc) == 0


def test_the_commands_the_readme_says_take_config_do_and_no_other_does(tmp_path: Path):
    text = section("The command line")
    claim = re.search(r"take `--config PATH` \(default `promotion.yaml`\): ([^;]+);", text)
    assert claim, "the README no longer says which commands take --config"
    with_config = set(re.findall(r"`([a-z-]+)`", claim[1]))
    assert "local --config PATH" in text  # local's --config is described on its own
    cli = Cli(tmp_path)
    for row in table_rows():
        words = subcommand(row.command)
        helped = cli.run(shlex.join(["promoter", *words, "--help"]), tmp_path)
        assert helped.returncode == 0, (words, helped.stderr)
        takes_config = "--config" in helped.stdout
        expected = " ".join(words) in with_config or words == ["local"]
        assert takes_config == expected, (
            f"promoter {' '.join(words)}: --config {takes_config}, README {expected}"
        )


def test_the_readme_graph_is_what_promoter_graph_prints_for_the_sample_rules(tmp_path: Path):
    (shown,) = code_blocks(section("The command line"), "mermaid")
    printed = Cli(tmp_path).run(f"promoter graph --config {shlex.quote(str(SAMPLE_CONFIG))}", tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == shown
