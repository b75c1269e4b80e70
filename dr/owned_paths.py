"""What dr may delete and overwrite: only inside the state directory it owns, never through a symbolic
link, and never at a name read from a file without checking it is a name dr writes.

A run id comes back from `current-drill`, which anyone who can write the state directory can edit: `..`
or `../../victim` must not become a directory dr removes. A report or chart file replaced by a link must
not make dr write through it to the link's target.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from dr.errors import DrError

RUN_ID = re.compile(r"\A\d{8}T\d{6}Z\Z")  # what dr writes: dt.datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


class NotOwned(DrError):
    """A path dr was about to delete or write is not one it owns."""


def check_run_id(run_id: str, *, source: Path | None = None) -> str:
    if not RUN_ID.match(run_id):
        where = f"{source} holds" if source else "got"
        raise NotOwned(f"{where} {run_id[:80]!r}, which is not a run id dr writes (like 20261201T013000Z); "
                       "nothing was deleted. Remove the file if you did not write it")
    return run_id


def read_run_id(pointer: Path) -> str | None:
    """The run id a pointer file (`current-drill`) names, or None when there is none; NotOwned when the
    file is a link or holds anything but a run id."""
    if pointer.is_symlink():
        raise NotOwned(f"{pointer} is a symbolic link; dr reads its own pointer files only: remove it")
    if not pointer.is_file():
        return None
    return check_run_id(pointer.read_text(encoding="utf-8", errors="replace").strip(), source=pointer)


def owned_path(root: Path, *parts: str) -> Path:
    """`root/parts...`, refusing a part that is not one plain name and any existing component (below
    `root`) that is a symbolic link."""
    path = root
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\0" in part:
            raise NotOwned(f"{part!r} is not a plain file name under {root}")
        path = path / part
        if path.is_symlink():
            raise NotOwned(f"{path} is a symbolic link; dr writes and deletes its own files only, not through "
                           "links: remove it")
    return path


def remove_owned_tree(root: Path, *parts: str) -> None:
    """Delete the directory `root/parts...` (checked by `owned_path`; also inside `root` once resolved)."""
    path = owned_path(root, *parts)
    if not path.exists():
        return
    if not path.resolve().is_relative_to(root.resolve()):
        raise NotOwned(f"{path} resolves outside {root}; nothing was deleted")
    shutil.rmtree(path, ignore_errors=True)


def write_owned(path: Path, data: str | bytes) -> None:
    """Write one of dr's own files atomically: a link or anything but a regular file at `path` is refused,
    never written through."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise NotOwned(f"{path} is {'a symbolic link' if path.is_symlink() else 'not a regular file'}; dr "
                       "writes its own files only in place of regular files: remove it")
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
