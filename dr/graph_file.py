"""Reading a recovery graph and the files it names from disk: the edge in front of `dr.core.spec`.

The core never opens a file; the CLI and the Pulumi program call `load_graph_file` and pass
`read_text` into the core for manifest files.
"""

from __future__ import annotations

from pathlib import Path

from dr.core.spec import GraphSpec
from dr.core.yaml_source import decode_text
from dr.errors import Diagnostic, GraphError


def load_graph_file(path: str | Path) -> GraphSpec:
    """Read and parse a graph file; a missing or unreadable file is a GraphError too."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise GraphError([Diagnostic(name, 0, "no such file; pass --graph PATH to the recovery graph")]) from None
    except IsADirectoryError:
        raise GraphError([Diagnostic(name, 0, "this is a directory; pass --graph PATH to a YAML file")]) from None
    except OSError as exc:
        raise GraphError([Diagnostic(name, 0, f"cannot read the file: {exc.strerror}")]) from None
    return GraphSpec.from_yaml(decode_text(raw, path=name), path=name)


def read_text(path: Path) -> str:
    """A manifest or other text file the graph names; undecodable bytes are replaced, never fatal."""
    return Path(path).read_text(encoding="utf-8", errors="replace")
