"""Files a user names on the command line (--secrets, --k8s-status, --textfile): read only when they are
regular files of bounded size (a FIFO or a device must not hang or flood dr), written atomically (a
reader never sees half a file, and a FIFO or a directory at the path is an error, not a hang)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from dr.graph_file import _read_regular_file


def read_user_text(path: str | Path) -> str:
    """The text of a regular UTF-8 file; OSError or UnicodeDecodeError otherwise."""
    return _read_regular_file(Path(path)).decode("utf-8")


def write_atomic(path: str | Path, text: str) -> None:
    target = Path(path)
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise OSError(0, "exists and is not a regular file", str(target))
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
