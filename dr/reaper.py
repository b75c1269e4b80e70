"""dr reaps everything a drill starts, whatever it did to its session.

Stopping a step's process group is not enough: ansible-core's task workers call `setsid`, and
PostgreSQL, etcd and pgBackRest daemonise, so after a SIGTERM they kept running (a `pgbackrest
restore` writing into a deleted directory). Two mechanisms close that gap:

- a marker every child inherits: `DR_RUN=<token>` is put in dr's environment for the drill, so every
  descendant (setsid or not, reparented or not) carries it in /proc/PID/environ; `sweep` stops each
  process that carries this run's token (never another run's, never a process without it);
- dr becomes a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so orphaned descendants are reparented
  to dr instead of init and dr reaps them: no zombie outlives the drill either.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import time
from collections.abc import Iterator

from dr.process_tree import with_environment

MARKER = "DR_RUN"
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def marked_run() -> Iterator[str]:
    """Within this block every process dr starts carries `DR_RUN=<token>`; yields the token."""
    token = secrets.token_hex(8)
    previous = os.environ.get(MARKER)
    os.environ[MARKER] = token
    become_subreaper()
    try:
        yield token
    finally:
        if previous is None:
            os.environ.pop(MARKER, None)
        else:
            os.environ[MARKER] = previous


def marked(token: str) -> list[int]:
    """The processes (not this one) whose environment carries this run's token."""
    return [pid for pid in with_environment(f"{MARKER}={token}".encode()) if pid != os.getpid()]


def current_token() -> str | None:
    """The token of the marked run this process is in, if any."""
    return os.environ.get(MARKER) or None


def _reap(pids: list[int]) -> None:
    """Reap those of `pids` that are our children (reparented to us as subreaper) and have exited; never
    any other child, whose owner still expects to wait for it."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.waitpid(pid, os.WNOHANG)


def sweep(token: str, *, grace_s: float = 5.0) -> int:
    """SIGTERM every process carrying `token`, SIGKILL what is left after `grace_s`; returns how many
    there were. Zombies among our children are reaped."""
    found = marked(token)
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(found)
        if not marked(token):
            break
        time.sleep(0.1)
    for pid in marked(token):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(found)
        if not marked(token):
            break
        time.sleep(0.05)
    return len(found)
