"""YAML text in, plain Python data plus the line of every value out.

The spec module talks to this one only: it turns raw bytes into a `LocatedDocument` whose
`line_of(path)` answers "which line of the file holds this value", so that every later error can
be printed as `path:line: message`. Duplicate keys, tabs, binary input and alias bombs are refused
here, before anything is interpreted.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
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
    """Parsed YAML data plus the composed node tree, which knows the line of every value.

    Lines are looked up only when an error is reported, by walking the nodes along the path, so a
    large valid graph pays nothing for them.
    """

    path: str
    data: Any
    root: yaml.Node | None = field(default=None, repr=False)
    # Per mapping node, its keys by text; built the first time a lookup passes through it.
    _index: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = field(default_factory=dict, repr=False,
                                                                       compare=False)

    def _keys(self, node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        index = self._index.get(id(node))
        if index is None:
            index = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    index.setdefault(k.value, (k, v))
            self._index[id(node)] = index
        return index

    def _nodes(self, path: PathKey) -> tuple[yaml.Node | None, yaml.Node | None]:
        """(key node, value node) at the deepest reachable point along `path`."""
        node, key_node = self.root, None
        for step in path:
            if isinstance(node, yaml.MappingNode):
                found = self._keys(node).get(str(step))
                if found is None:
                    return None, node
                key_node, node = found
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
                key_node, node = None, node.value[step]
            else:
                return None, node
        return key_node, node

    def line_of(self, path: PathKey) -> int:
        """Line of the value at `path`, or of its nearest located ancestor."""
        _, node = self._nodes(path)
        return node.start_mark.line + 1 if node is not None else 1

    def key_line_of(self, path: PathKey) -> int:
        """Line of the mapping key that ends `path` (where an unknown field is written)."""
        key_node, node = self._nodes(path)
        if key_node is not None:
            return key_node.start_mark.line + 1
        return node.start_mark.line + 1 if node is not None else 1


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a large acyclic tree.

    Building a 100,000-component graph allocates millions of objects; the collector would rescan
    them again and again for cycles that cannot exist, which makes loading grow faster than linearly.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
        self.active: set[int] = set()
        self.constructor = yaml.SafeLoader("")

    def convert(self, node: yaml.Node) -> Any:
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
                return [self.convert(item) for item in node.value]
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node)
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
        if key is None or isinstance(key, bool):
            return key_node.value  # a host or component called `on`, `yes` or `null` is a name, not a boolean
        try:
            hash(key)
        except TypeError:
            return key_node.value
        return key

    def _mapping(self, node: yaml.MappingNode) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                for source in self._merge_sources(value_node):
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
            result[key] = self.convert(value_node)
        for k, v in merged.items():
            result.setdefault(k, v)
        return result

    def _merge_sources(self, value_node: yaml.Node) -> list[dict[Any, Any]]:
        nodes = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        sources = []
        for item in nodes:
            if not isinstance(item, yaml.MappingNode):
                raise _fail(self.path, item.start_mark.line + 1, "'<<' merges only mappings")
            sources.append(self.convert(item))
        return sources


class YamlBoundError(yaml.YAMLError):
    """YAML refused before it becomes data: nested too deep, or aliases that expand past a bound."""

    def __init__(self, problem: str, line: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


def expanded_size(node: yaml.Node, limit: int, memo: dict[int, int] | None = None,
                  active: set[int] | None = None) -> int:
    """Roughly how many bytes the node becomes once aliases are expanded (memoised per node, so cheap):
    every scalar's text plus one per value; counting stops past `limit`. Counting values alone let long
    strings through (a 554-byte graph made `dr docs` write 107 MB). An alias inside the structure it names
    is refused (YamlBoundError)."""
    memo = {} if memo is None else memo
    active = set() if active is None else active
    key = id(node)
    if key in memo:
        return memo[key]
    if isinstance(node, yaml.ScalarNode):
        return 1 + len(node.value)
    if key in active:
        raise YamlBoundError("an alias refers to the structure that contains it; recursive YAML is not allowed",
                             node.start_mark.line + 1)
    active.add(key)
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
    total = 1
    for child in children:
        total += expanded_size(child, limit, memo, active)
        if total > limit:  # enough to refuse: stop counting
            break
    active.discard(key)
    memo[key] = total
    return total


MAX_NESTING = 100  # lists and mappings inside each other; the deepest CRD schema seen (cert-manager's) is 38


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a bound on nesting: its composer recurses once per level, so a file nested
    20,000 deep was a RecursionError (and libyaml crashes near 50,000)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlBoundError(f"nested more than {MAX_NESTING} deep", mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def expansion_limit(text: str) -> int:
    """What the documents of `text` may expand to through aliases: anchors may repeat things, not multiply
    them (a 530-byte "billion laughs" expands to gigabytes)."""
    return 1_000_000 + 10 * len(text)


def load_all_bounded(text: str, *, loader: type[BoundedLoader] = BoundedLoader) -> list[Any]:
    """Every document of `text` as plain data, like `yaml.safe_load_all`, in bounded time and memory:
    nesting past MAX_NESTING or aliases expanding past `expansion_limit` raise YamlBoundError (a
    yaml.YAMLError) naming the line."""
    limit = expansion_limit(text)
    stream = loader(text)
    documents: list[Any] = []
    try:
        while stream.check_node():
            node = stream.get_node()
            if node is not None and "*" in text and expanded_size(node, limit) > limit:
                raise YamlBoundError(f"its aliases expand to more than {limit:,} bytes ({len(text):,} written)",
                                     node.start_mark.line + 1)
            documents.append(stream.construct_document(node) if node is not None else None)
    finally:
        stream.dispose()
    return documents


def load_bounded(text: str) -> Any:
    """The one document of `text` (None when empty), bounded as `load_all_bounded`; more than one is a
    yaml.YAMLError as in `yaml.safe_load`."""
    documents = load_all_bounded(text)
    if len(documents) > 1:
        raise yaml.YAMLError("expected a single document, found more than one")
    return documents[0] if documents else None


MAX_DEPTH = 100  # far deeper than any recovery graph; libyaml crashes (SIGSEGV) near 50,000


def flow_depth(text: str) -> int:
    """The deepest nesting of flow collections ([ and {) outside quoted text and comments."""
    depth = deepest = 0
    quote = ""
    comment = False
    previous = "\n"
    for char in text:
        if comment:
            comment = char != "\n"
        elif quote:
            if char == quote:
                quote = ""
        elif char in "\"'" and (previous in " \t\n[{,:" or depth):
            quote = char
        elif char == "#" and previous in " \t\n":
            comment = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
        previous = char
    return deepest


def parse_yaml(text: str, *, path: str) -> LocatedDocument:
    """Parse one YAML document; raise GraphError (never a YAML traceback) on bad input."""
    if ("[" * MAX_DEPTH in text or "{" * MAX_DEPTH in text or
            (text.count("[") + text.count("{") > MAX_DEPTH and flow_depth(text) > MAX_DEPTH)):
        raise _fail(path, 1, f"the YAML nests lists or mappings more than {MAX_DEPTH} deep; a recovery graph "
                             "never needs that (refused before parsing: the YAML parser itself would crash)")
    try:
        with paused_gc():
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
        # Without an anchor there is no alias, so nothing can expand: skip the walk on big plain graphs.
        limit = min(MAX_VALUES, 1_000_000 + 20 * len(text))  # anchors may repeat things, not multiply them
        if "&" in text and expanded_size(documents[0], limit) > limit:
            raise _fail(path, 1, f"the document expands to more than {limit:,} bytes through its aliases "
                                 f"({len(text):,} bytes written); write the graph out without alias chains")
        with paused_gc():
            data = converter.convert(documents[0])
    except YamlBoundError as exc:
        raise _fail(path, exc.line, exc.problem) from None
    except RecursionError:
        raise _fail(path, 1, "the YAML is nested too deeply to read") from None
    return LocatedDocument(path=path, data=data, root=documents[0])
