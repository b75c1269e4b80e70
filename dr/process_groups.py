"""The process groups dr's steps start, so a step that times out or a drill that is interrupted can be
stopped with everything it started (ansible-playbook, ssh, pg_ctl, restic...), not only abandoned.

A step's work runs in an executor thread; the executor names the step for that thread (`step_scope`),
and every process group started from the thread (`start`) is filed under that step. `stop(step)` stops
one step's groups (a timeout), `stop()` all of them (a signal). Stopping sends SIGTERM to the whole
group, then SIGKILL to what is left after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

_local = threading.local()
_groups: dict[subprocess.Popen[Any], str | None] = {}
_lock = threading.Lock()


@contextlib.contextmanager
def step_scope(step: str) -> Iterator[None]:
    """Within this block, process groups started by this thread belong to `step`."""
    previous = getattr(_local, "step", None)
    _local.step = step
    try:
        yield
    finally:
        _local.step = previous


def current_step() -> str | None:
    return getattr(_local, "step", None)


def start(argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """Start `argv` in a new session (its own process group), filed under the current step."""
    process: subprocess.Popen[Any] = subprocess.Popen(list(argv), start_new_session=True, **popen_kwargs)
    with _lock:
        _groups[process] = current_step()
    return process


def forget(process: subprocess.Popen[Any]) -> None:
    """The process has been waited for: it no longer needs stopping."""
    with _lock:
        _groups.pop(process, None)


def running(step: str | None = None) -> list[subprocess.Popen[Any]]:
    with _lock:
        return [p for p, owner in _groups.items() if (step is None or owner == step) and p.poll() is None]


def stop(step: str | None = None, *, grace_s: float = 10.0) -> int:
    """Stop the process groups of `step` (of every step when None). Returns how many were running."""
    targets = running(step)
    for process in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in targets:
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # The group may outlive its leader (a child that ignored SIGTERM): make sure it is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    return len(targets)


def run_bounded(argv: Sequence[str], *, timeout_s: float, env: Mapping[str, str] | None = None,
                grace_s: float = 2.0) -> subprocess.CompletedProcess[str]:
    """Run `argv` to its end in its own process group (filed under the current step), output captured as
    text, no standard input. Past `timeout_s` the whole group is stopped (a child that outlives its parent,
    as under runuser, too) and subprocess.TimeoutExpired raised; so it is when the caller is interrupted."""
    process = start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    env=None if env is None else dict(env))
    try:
        out, err = process.communicate(timeout=timeout_s)
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        raise
    finally:
        forget(process)
    return subprocess.CompletedProcess(list(argv), process.returncode, out, err)
