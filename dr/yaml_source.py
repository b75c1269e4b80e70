"""YAML text in, plain Python data plus the line of every value out.

The spec module talks to this one only: it turns raw bytes into a `LocatedDocument` whose
`line_of(path)` answers "which line of the file holds this value", so that every later error can
be printed as `path:line: message`. Duplicate keys, tabs, binary input and alias bombs are refused
here, before anything is interpreted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from dr.errors import Diagnostic, GraphError

# libyaml's parser is several times faster than the pure-Python one; both give the same nodes.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Guards against "billion laughs" alias expansion turning a small file into a huge tree.
MAX_VALUES = 5_000_000

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class LocatedDocument:
    """Parsed YAML data with the 1-based line of each value and of each mapping key."""

    path: str
    data: Any
    value_lines: Mapping[PathKey, int] = field(repr=False)
    key_lines: Mapping[PathKey, int] = field(repr=False)

    def line_of(self, path: PathKey) -> int:
        """Line of the value at `path`, or of its nearest located ancestor."""
        probe = tuple(path)
        while probe:
            if probe in self.value_lines:
                return self.value_lines[probe]
            probe = probe[:-1]
        return self.value_lines.get((), 1)

    def key_line_of(self, path: PathKey) -> int:
        """Line of the mapping key that ends `path` (where an unknown field is written)."""
        if tuple(path) in self.key_lines:
            return self.key_lines[tuple(path)]
        return self.line_of(path)


def _fail(path: str, line: int, message: str) -> GraphError:
    return GraphError([Diagnostic(path, line, message)])


def decode_text(raw: bytes, *, path: str) -> str:
    """Bytes of a graph file to text, refusing binary data and non-UTF-8 encodings."""
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise _fail(path, line, "this is a binary file, not YAML text; point --graph at the recovery graph")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _fail(path, line, "the file is not UTF-8 text; save the recovery graph as UTF-8") from None
    return text


def _yaml_error_to_graph_error(exc: yaml.YAMLError, text: str, path: str) -> GraphError:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return _fail(path, line, f"the file holds a control character ({exc.character!r}) that YAML "
                                 "does not allow; is this really the recovery graph?")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or str(exc)
    lines = text.splitlines()
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    leading = source_line[: len(source_line) - len(source_line.lstrip(" \t"))]
    if "\t" in leading or "'\\t'" in str(problem):
        return _fail(path, line, "a tab character is used for indentation; YAML needs spaces")
    context = getattr(exc, "context", None)
    detail = f"{context}, {problem}" if context else str(problem)
    return _fail(path, line, f"invalid YAML: {detail}")


class _Converter:
    """Walks composed YAML nodes into plain data, recording lines and refusing duplicates."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.value_lines: dict[PathKey, int] = {}
        self.key_lines: dict[PathKey, int] = {}
        self.count = 0
        self.active: set[int] = set()
        self.constructor = yaml.SafeLoader("")

    def convert(self, node: yaml.Node, where: PathKey) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _fail(self.path, node.start_mark.line + 1,
                        f"the document expands to more than {MAX_VALUES} values (aliases?)")
        self.value_lines[where] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            if node.tag == "tag:yaml.org,2002:str":
                return node.value
            try:
                return self.constructor.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                raise _fail(self.path, node.start_mark.line + 1,
                            f"cannot read value {node.value!r}: {getattr(exc, 'problem', exc)}") from None
            except (ValueError, OverflowError) as exc:
                raise _fail(self.path, node.start_mark.line + 1,
                            f"cannot read value {node.value!r}: {exc}") from None
        if id(node) in self.active:
            raise _fail(self.path, node.start_mark.line + 1,
                        "an alias refers to the structure that contains it; recursive YAML is not allowed")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, (*where, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, where)
        finally:
            self.active.discard(id(node))
        raise _fail(self.path, node.start_mark.line + 1, "unsupported YAML node")  # pragma: no cover

    def _key(self, key_node: yaml.Node) -> Any:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _fail(self.path, key_node.start_mark.line + 1,
                        "a mapping key must be a plain name, not a list or mapping")
        if key_node.tag == "tag:yaml.org,2002:str":
            return key_node.value
        try:
            key = self.constructor.construct_object(key_node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError):
            return key_node.value
        try:
            hash(key)
        except TypeError:
            return key_node.value
        return key

    def _mapping(self, node: yaml.MappingNode, where: PathKey) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                for source in self._merge_sources(value_node, where):
                    for k, v in source.items():
                        merged.setdefault(k, v)
                continue
            key = self._key(key_node)
            key_line = key_node.start_mark.line + 1
            if key in seen:
                raise _fail(self.path, key_line,
                            f"duplicate key {key!r} (first on line {seen[key]}); "
                            "YAML would silently keep only one: remove or rename one of them")
            seen[key] = key_line
            child = (*where, key)
            self.key_lines[child] = key_line
            result[key] = self.convert(value_node, child)
        for k, v in merged.items():
            result.setdefault(k, v)
        return result

    def _merge_sources(self, value_node: yaml.Node, where: PathKey) -> list[dict[Any, Any]]:
        nodes = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        sources = []
        for item in nodes:
            if not isinstance(item, yaml.MappingNode):
                raise _fail(self.path, item.start_mark.line + 1, "'<<' merges only mappings")
            sources.append(self.convert(item, (*where, "<<")))
        return sources


def parse_yaml(text: str, *, path: str) -> LocatedDocument:
    """Parse one YAML document; raise GraphError (never a YAML traceback) on bad input."""
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise _yaml_error_to_graph_error(exc, text, path) from None
    except RecursionError:
        raise _fail(path, 1, "the YAML is nested too deeply to read") from None
    documents = [n for n in nodes if n is not None]
    if not documents:
        raise _fail(path, 1, "the file is empty; a recovery graph needs at least 'cluster' and 'components'")
    if len(documents) > 1:
        raise _fail(path, documents[1].start_mark.line + 1,
                    "the file holds more than one YAML document ('---'); keep one recovery graph per file")
    converter = _Converter(path)
    try:
        data = converter.convert(documents[0], ())
    except RecursionError:
        raise _fail(path, 1, "the YAML is nested too deeply to read") from None
    return LocatedDocument(path=path, data=data, value_lines=converter.value_lines,
                           key_lines=converter.key_lines)
