"""Reads a GitOps repository from disk: every Kubernetes object in its YAML files (the edge of import)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import yaml

from dr.core.yaml_source import BoundedLoader, YamlBoundError, load_all_bounded
from dr.errors import UsageError
from dr.gitops_import.infer import Doc

MAX_FILES = 20_000
MAX_FILE_BYTES = 2 * 1024 * 1024
SKIPPED_DIRS = {".git", "node_modules", ".terraform", "vendor"}


class _GoYamlLoader(BoundedLoader):
    """PyYAML refuses an anchor defined twice; Go's YAML (what Flux and kubectl read with) takes the
    later definition, and so does import. Nesting and alias expansion are bounded (a repository's file
    could be an alias bomb, or nested 20,000 deep)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if not isinstance(event, yaml.AliasEvent) and event.anchor is not None:
            self.anchors.pop(event.anchor, None)
        return super().compose_node(parent, index)


def load_all(text: str) -> list[object]:
    """Every document of a repository's file, as Go's YAML reads them, in bounded time and memory
    (YamlBoundError, a yaml.YAMLError, past the bounds)."""
    return load_all_bounded(text, loader=_GoYamlLoader)


def read_repository(root: Path) -> tuple[list[Doc], list[str]]:
    """(objects, problems): files that are not valid YAML or too big are skipped and named, never fatal;
    Helm templates and Kustomize patches without apiVersion/kind are not objects and are ignored."""
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory (give the root of a GitOps repository checkout)")
    docs: list[Doc] = []
    problems: list[str] = []
    seen = 0
    real_root = root.resolve()
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for file in sorted(files):
            if not file.endswith((".yaml", ".yml")):
                continue
            seen += 1
            if seen > MAX_FILES:
                raise UsageError(f"{root}: more than {MAX_FILES} YAML files; point at the repository's "
                                 "cluster directory")
            path = Path(directory, file)
            relative = path.relative_to(root).as_posix()
            if not path.resolve().is_relative_to(real_root):
                # A link in the repository to a file outside it: never read in (it could be any file here).
                problems.append(f"{relative}: skipped, a link to a file outside the repository")
                continue
            if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
                problems.append(f"{relative}: skipped (not a regular file, or over {MAX_FILE_BYTES} bytes)")
                continue
            try:
                text = path.read_text(encoding="utf-8")
                loaded = load_all(text)
            except UnicodeDecodeError:
                problems.append(f"{relative}: skipped, not UTF-8 text")
                continue
            except YamlBoundError as exc:  # written to stop whoever reads it
                problems.append(f"{relative}: skipped ({exc.problem}, at line {exc.line})")
                continue
            except RecursionError:
                problems.append(f"{relative}: skipped (nested too deeply to read)")
                continue
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1}" if mark is not None else ""
                why = "a Helm template, which only Helm renders" if "{{" in text else \
                    f"{getattr(exc, 'problem', None) or type(exc).__name__}{where}"
                problems.append(f"{relative}: skipped, not valid YAML ({why})")
                continue
            docs += [Doc(relative, obj) for obj in loaded if isinstance(obj, dict)
                     and isinstance(obj.get("kind"), str) and isinstance(obj.get("apiVersion"), str)]
    return docs, problems


def list_paths(root: Path) -> tuple[list[str], list[str]]:
    """(directories, files) of the checkout, relative and POSIX, as the walk above sees them."""
    directories: list[str] = []
    files: list[str] = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS and not d.startswith("."))
        relative = Path(directory).relative_to(root).as_posix()
        if relative != ".":
            directories.append(relative)
        files += [f"{relative}/{n}" if relative != "." else n for n in sorted(names)]
        if len(files) > 4 * MAX_FILES:
            raise UsageError(f"{root}: more than {4 * MAX_FILES} files; point at the repository's cluster directory")
    return directories, files


def file_reader(root: Path) -> Callable[[str], str | None]:
    """Reads a file of the checkout by its relative path: never through a link out of it, never a big one."""
    real_root = root.resolve()

    def read(relative: str) -> str | None:
        path = (root / relative).resolve()
        if not path.is_relative_to(real_root) or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
    return read
