"""Regular expressions matched in linear time: a safe subset of Python's syntax, never backtracking.

A `re:` pattern from the configuration is matched against every pushed tag and repository name.
Python's `re` backtracks: `(a+)+$` against 33 characters outlasts a Lambda's timeout. So a
pattern is parsed with Python's own regex parser (the syntax users know), refused when it uses
what cannot be matched without backtracking (backreferences, lookarounds, conditionals, atomic
groups, possessive quantifiers, word boundaries, inline flags), compiled into a small program
(Thompson's construction) and run as an automaton:

- `matches` follows the set of live program states one character at a time (a lazily built DFA
  whose transitions are cached), so its cost is linear in the name's length whatever the pattern;
- `captures` runs a Pike VM (the same program, one thread per state, captures carried along in
  priority order), which gives the groups Python's leftmost-first `fullmatch` would give.

The program's size is bounded (`MAX_PROGRAM_SIZE`), so a counted repeat cannot blow it up either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

try:  # Python 3.11+: the parser is private but stable; it moved out of `sre_parse`.
    import re._constants as _c  # type: ignore[import-not-found]
    import re._parser as _parser  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - older interpreters
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _parser  # type: ignore[no-redef]

# Instructions of the compiled program; each is a tuple whose first item is one of these.
_CHAR, _SPLIT, _JMP, _SAVE, _ASSERT, _MATCH = range(6)
# Positions an assertion can require (`^`/`\A` at the start, `$`/`\Z` at the end).
_AT_START, _AT_END, _AT_END_OR_BEFORE_NEWLINE = 1, 2, 4
# Upper bound on instructions: a counted repeat such as `a{1000}` is expanded, and the cost of a
# new automaton state is proportional to the program's size.
MAX_PROGRAM_SIZE = 256
# Cached automaton transitions per pattern before the cache starts over (memory bound).
_MAX_CACHED_TRANSITIONS = 20000

_CATEGORIES: dict[object, re.Pattern[str]] = {
    _c.CATEGORY_DIGIT: re.compile(r"\d"),
    _c.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    _c.CATEGORY_SPACE: re.compile(r"\s"),
    _c.CATEGORY_NOT_SPACE: re.compile(r"\S"),
    _c.CATEGORY_WORD: re.compile(r"\w"),
    _c.CATEGORY_NOT_WORD: re.compile(r"\W"),
}
_REFUSED = {
    _c.GROUPREF: "a backreference",
    _c.GROUPREF_EXISTS: "a conditional group",
    _c.ASSERT: "a lookahead or lookbehind",
    _c.ASSERT_NOT: "a negative lookahead or lookbehind",
    getattr(_c, "ATOMIC_GROUP", "ATOMIC_GROUP"): "an atomic group",
    getattr(_c, "POSSESSIVE_REPEAT", "POSSESSIVE_REPEAT"): "a possessive quantifier",
}
_ASSERTIONS = {
    _c.AT_BEGINNING: _AT_START,
    _c.AT_BEGINNING_STRING: _AT_START,
    _c.AT_END: _AT_END_OR_BEFORE_NEWLINE,
    _c.AT_END_STRING: _AT_END,
}


class UnsupportedRegexError(ValueError):
    """The pattern is not valid, or uses a construct that cannot be matched in linear time."""


@dataclass(frozen=True)
class _CharClass:
    """What one character may be: literals, ranges and categories, possibly negated."""

    negate: bool
    literals: frozenset[int] = frozenset()
    ranges: tuple[tuple[int, int], ...] = ()
    categories: tuple[re.Pattern[str], ...] = ()
    any_but_newline: bool = False

    def accepts(self, char: str) -> bool:
        code = ord(char)
        if self.any_but_newline:
            return char != "\n"
        hit = (
            code in self.literals
            or any(lo <= code <= hi for lo, hi in self.ranges)
            or any(cat.match(char) for cat in self.categories)
        )
        return hit != self.negate


@dataclass
class _Compiler:
    program: list[tuple] = field(default_factory=list)

    def emit(self, *instruction: object) -> int:
        if len(self.program) >= MAX_PROGRAM_SIZE:
            raise UnsupportedRegexError(
                f"the pattern is too large (over {MAX_PROGRAM_SIZE} automaton states once its repeats "
                "are expanded); use fewer or smaller counted repeats"
            )
        self.program.append(instruction)
        return len(self.program) - 1

    def patch(self, at: int, *instruction: object) -> None:
        self.program[at] = instruction

    def sequence(self, items: object) -> None:
        for op, arg in items:  # type: ignore[attr-defined]
            self.node(op, arg)

    def node(self, op: object, arg: object) -> None:
        if op in _REFUSED:
            raise UnsupportedRegexError(f"{_REFUSED[op]} cannot be matched in linear time")
        if op is _c.LITERAL:
            self.emit(_CHAR, _CharClass(negate=False, literals=frozenset({arg})))
        elif op is _c.NOT_LITERAL:
            self.emit(_CHAR, _CharClass(negate=True, literals=frozenset({arg})))
        elif op is _c.ANY:
            self.emit(_CHAR, _CharClass(negate=False, any_but_newline=True))
        elif op is _c.IN:
            self.emit(_CHAR, _char_class(arg))
        elif op is _c.AT:
            if arg not in _ASSERTIONS:
                raise UnsupportedRegexError("word boundaries (\\b, \\B) are not supported")
            self.emit(_ASSERT, _ASSERTIONS[arg])
        elif op is _c.SUBPATTERN:
            group, add_flags, del_flags, items = arg  # type: ignore[misc]
            if add_flags or del_flags:
                raise UnsupportedRegexError("inline flags such as (?i) are not supported")
            if group is None:
                self.sequence(items)
            else:
                self.emit(_SAVE, 2 * group)
                self.sequence(items)
                self.emit(_SAVE, 2 * group + 1)
        elif op is _c.BRANCH:
            self.branch(arg[1])  # type: ignore[index]
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            low, high, items = arg  # type: ignore[misc]
            self.repeat(low, None if high is _c.MAXREPEAT else high, items, greedy=op is _c.MAX_REPEAT)
        else:
            raise UnsupportedRegexError(f"the regex construct {op} is not supported")

    def branch(self, alternatives: list) -> None:
        jumps = []
        for alternative in alternatives[:-1]:
            split = self.emit(_SPLIT, 0, 0)
            self.sequence(alternative)
            jumps.append(self.emit(_JMP, 0))
            self.patch(split, _SPLIT, split + 1, len(self.program))
        self.sequence(alternatives[-1])
        for jump in jumps:
            self.patch(jump, _JMP, len(self.program))

    def repeat(self, low: int, high: int | None, items: object, *, greedy: bool) -> None:
        for _ in range(low):
            self.sequence(items)
        if high is None:
            # L1: split L2, L3; L2: items; jmp L1; L3:
            split = self.emit(_SPLIT, 0, 0)
            self.sequence(items)
            self.emit(_JMP, split)
            self._split(split, split + 1, len(self.program), greedy)
            return
        # Each optional copy: split into it or past all of them.
        splits = []
        for _ in range(high - low):
            splits.append(self.emit(_SPLIT, 0, 0))
            self.sequence(items)
        for split in splits:
            self._split(split, split + 1, len(self.program), greedy)

    def _split(self, at: int, body: int, past: int, greedy: bool) -> None:
        self.patch(at, _SPLIT, *((body, past) if greedy else (past, body)))


def _char_class(items: list) -> _CharClass:
    negate = False
    literals: set[int] = set()
    ranges: list[tuple[int, int]] = []
    categories: list[re.Pattern[str]] = []
    for op, arg in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            literals.add(arg)
        elif op is _c.RANGE:
            ranges.append(arg)
        elif op is _c.CATEGORY and arg in _CATEGORIES:
            categories.append(_CATEGORIES[arg])
        else:
            raise UnsupportedRegexError(f"the character-class item {op} {arg} is not supported")
    return _CharClass(negate, frozenset(literals), tuple(ranges), tuple(categories))


def _where(position: int, length: int, name: str) -> int:
    """Which assertions hold at `position` of a name of `length` characters."""
    flags = 0
    if position == 0:
        flags |= _AT_START
    if position == length:
        flags |= _AT_END | _AT_END_OR_BEFORE_NEWLINE
    elif position == length - 1 and name[position] == "\n":
        flags |= _AT_END_OR_BEFORE_NEWLINE
    return flags


class LinearRegex:
    """A compiled pattern; `fullmatch` semantics (the whole name must match)."""

    def __init__(self, pattern: str) -> None:
        """Raises UnsupportedRegexError when the pattern is invalid or not in the safe subset."""
        try:
            parsed = _parser.parse(pattern)
        except (re.error, RecursionError, OverflowError) as exc:
            raise UnsupportedRegexError(f"invalid regex: {exc}") from exc
        if parsed.state.flags & ~(_c.SRE_FLAG_UNICODE):
            raise UnsupportedRegexError("inline flags such as (?i) are not supported")
        compiler = _Compiler()
        try:
            compiler.sequence(parsed)
        except RecursionError as exc:
            raise UnsupportedRegexError("the pattern is nested too deeply") from exc
        compiler.emit(_MATCH)
        self.pattern = pattern
        self.program: tuple[tuple, ...] = tuple(compiler.program)
        self.group_count: int = parsed.state.groups
        self.group_names: Mapping[str, int] = dict(parsed.state.groupdict)
        self.parsed = parsed
        self._match_mask = 1 << (len(self.program) - 1)  # _MATCH is the last instruction
        self._transitions: dict[tuple[int, str, int], int] = {}
        self._closures: dict[tuple[int, int], int] = {}
        self._chunk_closures: dict[tuple[int, int], int] = {}
        self._taking_char: dict[str, int] = {}

    # -- matching: a lazily built DFA; a state is a bitset of program counters ------------------
    # Bit `pc` set: the thread at instruction `pc` (a character test or the match) is alive.
    # One step: the live tests that accept the character (`&`), moved to their next instruction
    # (`<< 1`), closed over the instructions that consume nothing. The closure of a bitset is the
    # union of its bits' closures, taken eight bits at a time from a table filled on demand, so a
    # new state costs O(program size / 8) big-integer operations and a known one a dict lookup.

    def _closure_of(self, start: int, where: int) -> int:
        """The character and match instructions reachable from `start` without consuming a
        character, as a bitset; cached (an explicit stack: no recursion)."""
        key = (start, where)
        cached = self._closures.get(key)
        if cached is not None:
            return cached
        program = self.program
        seen: set[int] = set()
        out = 0
        stack = [start]
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            instruction = program[pc]
            kind = instruction[0]
            if kind == _SPLIT:
                stack.extend((instruction[1], instruction[2]))
            elif kind == _JMP:
                stack.append(instruction[1])
            elif kind == _SAVE:
                stack.append(pc + 1)
            elif kind == _ASSERT:
                if where & instruction[1]:
                    stack.append(pc + 1)
            else:
                out |= 1 << pc
        self._closures[key] = out
        return out

    def _closure(self, pcs: int, where: int) -> int:
        """The closure of a bitset of instructions."""
        out = 0
        if where:  # the first, the last or the next-to-last position only: bit by bit
            while pcs:
                low = pcs & -pcs
                out |= self._closure_of(low.bit_length() - 1, where)
                pcs ^= low
            return out
        chunks = self._chunk_closures
        chunk = 0
        while pcs:
            byte = pcs & 0xFF
            if byte:
                key = (chunk, byte)
                closed = chunks.get(key)
                if closed is None:
                    closed = 0
                    for bit in range(8):
                        if byte >> bit & 1:
                            closed |= self._closure_of(chunk * 8 + bit, 0)
                    chunks[key] = closed
                out |= closed
            pcs >>= 8
            chunk += 1
        return out

    def _taking(self, char: str) -> int:
        """The character instructions that accept `char`, as a bitset, cached per character."""
        taking = self._taking_char.get(char)
        if taking is None:
            taking = 0
            for pc, instruction in enumerate(self.program):
                if instruction[0] == _CHAR and instruction[1].accepts(char):
                    taking |= 1 << pc
            if len(self._taking_char) >= _MAX_CACHED_TRANSITIONS:
                self._taking_char.clear()
            self._taking_char[char] = taking
        return taking

    def matches(self, name: str) -> bool:
        """Whether the whole name matches; time linear in len(name) for a fixed pattern."""
        length = len(name)
        state = self._closure(1, _where(0, length, name))
        transitions = self._transitions
        for position, char in enumerate(name, start=1):
            where = _where(position, length, name)
            key = (state, char, where)
            following = transitions.get(key)
            if following is None:
                following = self._closure((state & self._taking(char)) << 1, where)
                if len(transitions) >= _MAX_CACHED_TRANSITIONS:
                    transitions.clear()
                transitions[key] = following
            if not following:
                return False
            state = following
        return bool(state & self._match_mask)

    # -- captures: a Pike VM ------------------------------------------------------------------

    def captures(self, name: str) -> dict[str, str | None] | None:
        """The named groups of the whole-name match (None for a group that took no part), or None
        when the name does not match. Same groups as Python's `re.fullmatch`."""
        if not self.matches(name):
            return None
        length = len(name)
        slots = 2 * (self.group_count + 1)
        threads = self._add([], set(), 0, (None,) * slots, _where(0, length, name))
        for position, char in enumerate(name, start=1):
            where = _where(position, length, name)
            following: list[tuple[int, tuple]] = []
            seen: set[int] = set()
            for pc, saved in threads:
                instruction = self.program[pc]
                if instruction[0] == _CHAR and instruction[1].accepts(char):
                    following = self._add(following, seen, pc + 1, saved, where, position)
            threads = following
        for pc, saved in threads:
            if self.program[pc][0] == _MATCH:
                return {
                    group: None if saved[2 * index] is None else name[saved[2 * index] : saved[2 * index + 1]]
                    for group, index in self.group_names.items()
                }
        return None  # pragma: no cover - `matches` said it matches

    def _add(
        self,
        threads: list[tuple[int, tuple]],
        seen: set[int],
        start: int,
        saved: tuple,
        where: int,
        position: int = 0,
    ) -> list[tuple[int, tuple]]:
        """Adds the thread at `start` and everything it reaches without a character, in priority
        order (an explicit stack, so a deep program cannot exhaust Python's recursion)."""
        stack: list[tuple[int, tuple]] = [(start, saved)]
        while stack:
            pc, saved = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            instruction = self.program[pc]
            kind = instruction[0]
            if kind == _SPLIT:
                stack.append((instruction[2], saved))
                stack.append((instruction[1], saved))
            elif kind == _JMP:
                stack.append((instruction[1], saved))
            elif kind == _SAVE:
                slot = instruction[1]
                stack.append((pc + 1, (*saved[:slot], position, *saved[slot + 1 :])))
            elif kind == _ASSERT:
                if where & instruction[1]:
                    stack.append((pc + 1, saved))
            else:
                threads.append((pc, saved))
        return threads


def literal_glob(regex: LinearRegex) -> str:
    """A glob (`*`, `?`) matching every name the regex matches: literal characters stay, a single
    character class becomes `?`, anything that can vary in length becomes `*`. Used to scope IAM
    resources and EventBridge patterns, which know only such wildcards."""
    text = _glob_of(regex.parsed)
    return re.sub(r"\*+", "*", text)


def _glob_of(items: object) -> str:
    parts = []
    for op, arg in items:  # type: ignore[attr-defined]
        if op is _c.LITERAL:
            char = chr(arg)
            parts.append("?" if char in "*?" else char)
        elif op in (_c.NOT_LITERAL, _c.ANY, _c.IN):
            parts.append("?")
        elif op is _c.AT:
            continue
        elif op is _c.SUBPATTERN:
            parts.append(_glob_of(arg[3]))
        elif op is _c.BRANCH:
            alternatives = {_glob_of(alternative) for alternative in arg[1]}
            parts.append(alternatives.pop() if len(alternatives) == 1 else "*")
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            low, high, sub = arg
            inner = _glob_of(sub)
            parts.append(inner * low if low == high and "*" not in inner and low <= 8 else "*")
        else:
            parts.append("*")
    return "".join(parts)
