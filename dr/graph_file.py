"""Reading a recovery graph and the files it names from disk: the edge in front of `dr.core.spec`.

The core never opens a file; the CLI and the Pulumi program call `load_graph_file` and pass
`read_text` into the core for manifest files.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from dr.core.spec import CommandAction, GraphSpec, ManifestsAction, PlaybookAction, TalosAction
from dr.core.yaml_source import decode_text
from dr.errors import Diagnostic, GraphError

MAX_FILE_BYTES = 10 * 1024 * 1024  # a graph, a manifest or a playbook; /dev/zero is not one


def _playbook_dir() -> Path:
    """dr's own playbooks: beside the package in a checkout, under <prefix>/share/dr/playbooks in an
    installed wheel (pyproject's data-files puts them there)."""
    package = Path(__file__).resolve().parent
    candidates = [package.parent / "playbooks", Path(sys.prefix) / "share" / "dr" / "playbooks"]
    if len(package.parents) > 3:  # <prefix>/lib/pythonX.Y/site-packages/dr
        candidates.append(package.parents[3] / "share" / "dr" / "playbooks")
    return next((c for c in candidates if (c / "os-prepare.yml").is_file()), candidates[0])


PLAYBOOK_DIR = _playbook_dir()


def load_graph_file(path: str | Path) -> GraphSpec:
    """Read and parse a graph file; a missing or unreadable file is a GraphError too."""
    name = str(path)
    try:
        raw = _read_regular_file(Path(path))
    except FileNotFoundError:
        raise GraphError([Diagnostic(name, 0, "no such file; pass --graph PATH to the recovery graph")]) from None
    except IsADirectoryError:
        raise GraphError([Diagnostic(name, 0, "this is a directory; pass --graph PATH to a YAML file")]) from None
    except OSError as exc:
        raise GraphError([Diagnostic(name, 0, f"cannot read the file: {exc.strerror}")]) from None
    spec = GraphSpec.from_yaml(decode_text(raw, path=name), path=name)
    problems = file_problems(spec)
    if problems:
        raise GraphError(problems)
    return spec


def _read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file of bounded size; a FIFO, a device or a huge file is an OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "is a directory", str(path))
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file", str(path))
        if info.st_size > MAX_FILE_BYTES:
            raise OSError(0, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB", str(path))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(0, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB", str(path))
    return data


def read_text(path: Path) -> str:
    """A manifest or other text file the graph names; undecodable bytes are replaced, never fatal."""
    return _read_regular_file(Path(path)).decode("utf-8", errors="replace")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def file_problems(spec: GraphSpec, *, playbook_dir: Path = PLAYBOOK_DIR) -> list[Diagnostic]:
    """Files the graph names must be where they belong: manifests inside the graph's directory,
    playbooks inside the playbook directory, both existing regular files of bounded size."""
    problems = []
    if spec.playbooks and (not _inside(spec.base_dir / spec.playbooks, spec.base_dir)
                           or not (spec.base_dir / spec.playbooks).is_dir()):
        problems.append(Diagnostic(spec.path, spec.line_of("playbooks"), f"playbooks {spec.playbooks!r} must be a "
                                   f"directory inside the graph's directory {spec.base_dir.resolve()}"))
    for i, directory in enumerate(spec.crds):
        target = spec.base_dir / directory
        if not _inside(target, spec.base_dir) or not target.is_dir():
            problems.append(Diagnostic(spec.path, spec.line_of("crds", i) or spec.line_of("crds"),
                                       f"crds entry {directory!r} must be a directory inside the graph's directory "
                                       f"(looked for {target})"))
    for name, component in spec.components.items():
        action = component.action
        if isinstance(action, PlaybookAction):
            problems += _playbook_problems(spec, name, action, playbook_dir)
        elif isinstance(action, TalosAction):
            problems += _talos_problems(spec, name, action)
        elif isinstance(action, CommandAction) and not (spec.base_dir / action.cwd).is_dir():
            problems.append(Diagnostic(spec.path, spec.line_of("components", name, "command"),
                                       f"component {name!r}: command cwd {action.cwd!r} is not a directory "
                                       f"(relative to {spec.base_dir.resolve()})"))
        elif isinstance(action, ManifestsAction):
            problems += _manifest_problems(spec, name, action)
    return problems


def _playbook_problems(spec: GraphSpec, name: str, action: PlaybookAction, playbook_dir: Path) -> list[Diagnostic]:
    where = spec.line_of("components", name, "playbook")
    directories = [*([spec.base_dir / spec.playbooks] if spec.playbooks else []), playbook_dir]
    shown = " or ".join(str(d) for d in directories)
    if Path(action.playbook).is_absolute() or not all(_inside(d / action.playbook, d) for d in directories):
        return [Diagnostic(spec.path, where, f"component {name!r}: playbook {action.playbook!r} "
                                             f"must be a file name inside {shown}")]
    if not any((d / action.playbook).is_file() for d in directories):
        return [Diagnostic(spec.path, where, f"component {name!r}: playbook {action.playbook!r} "
                                             f"does not exist in {shown}")]
    return []


def _talos_problems(spec: GraphSpec, name: str, action: TalosAction) -> list[Diagnostic]:
    problems = []
    for key in ("config", "talosconfig"):
        relative = getattr(action, key)
        target = spec.base_dir / relative
        if relative and (Path(relative).is_absolute() or not _inside(target, spec.base_dir) or not target.is_file()):
            problems.append(Diagnostic(spec.path, spec.line_of("components", name, "talos", key),
                                       f"component {name!r}: talos {key} {relative!r} must be a file inside "
                                       f"the graph's directory {spec.base_dir.resolve()}"))
    return problems


def _manifest_problems(spec: GraphSpec, name: str, action: ManifestsAction) -> list[Diagnostic]:
    problems = []
    for i, manifest in enumerate(action.paths):
        where = spec.line_of("components", name, "manifests", i)
        target = spec.base_dir / manifest
        if Path(manifest).is_absolute() or not _inside(target, spec.base_dir):
            problems.append(Diagnostic(spec.path, where, f"component {name!r}: manifest {manifest!r} must "
                                       f"be inside the graph's directory {spec.base_dir.resolve()}"))
            continue
        try:
            _read_regular_file(target)
        except OSError as exc:
            problems.append(Diagnostic(spec.path, where, f"component {name!r}: manifest {manifest!r} "
                                       f"cannot be used: {exc.strerror or exc}"))
    return problems
