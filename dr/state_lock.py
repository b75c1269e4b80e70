"""One dr run per state directory: a second drill (a timer firing during `make demo`, two terminals) or a
second `dr sandbox up` on the same directory would destroy the first one's sandbox, journal and
processes. The lock is an advisory `flock` on `<state-dir>/dr.lock`: the kernel releases it when the
holder exits however it exits, so a crash never leaves a stale lock; the file only says who holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from dr.errors import DrError

LOCK_NAME = "dr.lock"


class StateDirBusy(DrError):
    """Another dr run holds the state directory."""


@contextlib.contextmanager
def state_dir_lock(state_dir: Path, what: str) -> Iterator[None]:
    """Hold the state directory's lock while the block runs; StateDirBusy at once when another run holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateDirBusy(f"{path} is a symbolic link; dr locks its own file only: remove it") from None
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another dr process"
            raise StateDirBusy(f"{state_dir} is in use by {holder}; wait for it to finish, or give this run "
                               "another --state-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"`{what}` (pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
