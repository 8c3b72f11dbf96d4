"""Reading a configuration file into plain data that remembers where each value was written.

YAML is read with a SafeLoader that records the line of every mapping key and sequence item, and
refuses what would make the reviewed file differ from the effective one (a key written twice: YAML
would silently keep the last) or what could exhaust the reader (a file over `MAX_CONFIG_BYTES`,
nesting deeper than `MAX_CONFIG_DEPTH`, more than `MAX_CONFIG_NODES` values once aliases are
expanded). The limits are checked on the parser's event stream before any object is built, so a
"billion laughs" file or a 100,000-deep list costs no more than reading it once.

JSON (the configuration the stack stages into the Lambda) is read with the standard library only:
the Lambda never imports PyYAML. Every refusal is a `ConfigError` with the file, line and column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promoter.exceptions import ConfigError

# Far above any real rule set (a rule takes ~10 lines), far below what hurts a CLI or a synth.
MAX_CONFIG_BYTES = 1024 * 1024
# A JSON configuration is usually the staged form of a YAML one (indented, defaults written out:
# a few times larger); it must load in the Lambda whenever its YAML passed validation.
MAX_JSON_CONFIG_BYTES = 8 * MAX_CONFIG_BYTES
MAX_CONFIG_DEPTH = 20
MAX_CONFIG_NODES = 100_000


class LocatedDict(dict):
    """A mapping read from YAML, with the line of the mapping and of each of its keys (1-based)."""

    line: int | None = None
    key_lines: dict[Any, int]


class LocatedList(list):
    """A sequence read from YAML, with the line of the sequence and of each of its items."""

    line: int | None = None
    item_lines: list[int]


def read_config_data(path: Path) -> object:
    """The file's contents as plain data (dicts and lists that know their lines, for YAML).
    Raises ConfigError naming the file (and line and column where the problem is)."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=where) from exc
    limit = MAX_JSON_CONFIG_BYTES if path.suffix == ".json" else MAX_CONFIG_BYTES
    if len(raw) > limit:
        raise ConfigError(
            f"the file is {len(raw)} bytes, over the {limit} a configuration may have", path=where
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", path=where) from exc
    if path.suffix == ".json":
        return _read_json(text, where)
    return _read_yaml(text, where)


def _read_json(text: str, where: str) -> object:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, value in pairs:
            if key in data:
                raise ConfigError(f"duplicate key {key!r} in one object", path=where)
            data[key] = value
        return data

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON: {exc.msg}", path=where, line=exc.lineno, column=exc.colno
        ) from exc
    except RecursionError as exc:
        raise ConfigError(f"nested deeper than {MAX_CONFIG_DEPTH} levels", path=where) from exc
    _check_depth(data, where)
    return data


def _check_depth(data: object, where: str) -> None:
    """Iteratively (a recursive walk is what a deep file would break)."""
    todo: list[tuple[object, int]] = [(data, 0)]
    nodes = 0
    while todo:
        value, depth = todo.pop()
        nodes += 1
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"nested deeper than {MAX_CONFIG_DEPTH} levels", path=where)
        if nodes > MAX_CONFIG_NODES:
            raise ConfigError(f"more than {MAX_CONFIG_NODES} values", path=where)
        if isinstance(value, Mapping):
            todo.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            todo.extend((item, depth + 1) for item in value)


def _read_yaml(text: str, where: str) -> object:
    import yaml  # only the CLI and synth read YAML; the Lambda package never imports it

    try:
        _check_yaml_shape(yaml, text, where)
        return yaml.load(text, Loader=_located_loader(yaml, where))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(
            f"not valid YAML: {problem}",
            path=where,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=where) from exc


def _check_yaml_shape(yaml: Any, text: str, where: str) -> None:
    """Depth and size (aliases expanded) from the event stream, before anything is composed."""
    sizes: dict[str, int] = {}  # anchor -> values under it
    frames: list[list[Any]] = [[0, None]]  # [values so far, anchor] per open collection
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            frames.append([1, event.anchor])
            if len(frames) - 1 > MAX_CONFIG_DEPTH:
                raise ConfigError(
                    f"nested deeper than {MAX_CONFIG_DEPTH} levels",
                    path=where,
                    line=event.start_mark.line + 1,
                    column=event.start_mark.column + 1,
                )
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            count, anchor = frames.pop()
        elif isinstance(event, yaml.ScalarEvent):
            count, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            count, anchor = sizes.get(event.anchor, 1), None
        else:
            continue
        if anchor is not None:
            sizes[anchor] = count
        frames[-1][0] += count
        if frames[-1][0] > MAX_CONFIG_NODES or sum(frame[0] for frame in frames) > MAX_CONFIG_NODES:
            raise ConfigError(
                f"more than {MAX_CONFIG_NODES} values once aliases are expanded",
                path=where,
                line=event.start_mark.line + 1,
            )


def _located_loader(yaml: Any, where: str) -> type:
    class LocatedLoader(yaml.SafeLoader):
        """SafeLoader whose mappings and sequences know their lines; duplicate keys refused."""

    def construct_mapping(loader: Any, node: Any) -> LocatedDict:
        first: dict[Any, int] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first:
                raise ConfigError(
                    f"duplicate key {key!r} (first written on line {first[key]}): YAML would silently "
                    "keep only the last one",
                    path=where,
                    line=line,
                    column=key_node.start_mark.column + 1,
                )
            first[key] = line
        mapping = LocatedDict(yaml.SafeLoader.construct_mapping(loader, node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = first
        return mapping

    def construct_sequence(loader: Any, node: Any) -> LocatedList:
        sequence = LocatedList(loader.construct_sequence(node, deep=True))
        sequence.line = node.start_mark.line + 1
        sequence.item_lines = [item.start_mark.line + 1 for item in node.value]
        return sequence

    LocatedLoader.add_constructor("tag:yaml.org,2002:map", construct_mapping)
    LocatedLoader.add_constructor("tag:yaml.org,2002:seq", construct_sequence)
    return LocatedLoader


_FIELD_STEP = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def line_of(raw: object, field: str | None) -> int | None:
    """The line a field path (`targets[1].tags[0]`) was written on in `raw`, or of the deepest part
    of it that exists; None when `raw` was not read from YAML."""
    line = getattr(raw, "line", None)
    node = raw
    for index, key in _FIELD_STEP.findall(field or ""):
        if index and isinstance(node, LocatedList) and int(index) < len(node):
            line = node.item_lines[int(index)]
            node = node[int(index)]
        elif key and isinstance(node, LocatedDict) and key in node:
            line = node.key_lines.get(key, line)
            node = node[key]
        else:
            break
    return line
