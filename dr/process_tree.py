"""Processes by their parents, read from /proc: the children and descendants of a process dr started, each
recorded with its start time, so dr signals a process only while it is still the one it found (a pid
reused since names another process and is left alone)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from dr.process_identity import start_ticks

Process = tuple[int, int | None]  # pid, start time in clock ticks after boot

__all__ = ["Process", "alive", "children", "descendants", "reap", "signal_if_same", "start_ticks", "stop",
           "wait_gone", "with_argument", "with_environment"]


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        with contextlib.suppress(IndexError, ValueError):
            parents[int(entry.name)] = int(fields[1])  # the field after state is the parent's pid
    return parents


def children(pid: int) -> list[int]:
    return sorted(child for child, parent in _parents().items() if parent == pid)


def descendants(pid: int) -> list[Process]:
    """Every process below `pid`, with its start time, parents before children."""
    parents = _parents()
    found: list[Process] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop(0)
        for child in sorted(c for c, p in parents.items() if p == current):
            found.append((child, start_ticks(child)))
            frontier.append(child)
    return found


def _holding(name: str, entry: bytes) -> list[int]:
    """The processes whose /proc/PID/<name> (NUL-separated: environ, cmdline) holds exactly `entry`."""
    found = []
    for directory in Path("/proc").iterdir():
        if not directory.name.isdigit():
            continue
        try:
            entries = (directory / name).read_bytes()
        except OSError:
            continue
        if entry in entries.split(b"\0"):
            found.append(int(directory.name))
    return found


def with_environment(entry: bytes) -> list[int]:
    """The processes whose environment holds exactly this `NAME=value` entry."""
    return _holding("environ", entry)


def with_argument(argument: str) -> list[int]:
    """The processes (not zombies: they have no command line) one of whose arguments is exactly `argument`."""
    return _holding("cmdline", argument.encode())


def alive(process: Process) -> bool:
    pid, start = process
    ticks = start_ticks(pid)
    if ticks is None or (start is not None and ticks != start):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace").rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def signal_if_same(process: Process, signum: int) -> bool:
    """Send `signum` when the process is still the one recorded (same pid, same start time)."""
    if not alive(process):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(process[0], signum)
        return True
    return False


def reap(pids: Iterable[int]) -> None:
    """Collect the exit status of those that are our children now (dr is the subreaper of what its commands
    left behind). Never for a process some code of dr still waits for (subprocess would take the missing
    status for success)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.waitpid(pid, os.WNOHANG)


def wait_gone(processes: list[Process], timeout_s: float) -> bool:
    """Wait until none of them is alive (a zombie counts as gone: whoever started it collects it); whether
    they all went."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not any(alive(p) for p in processes):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop(processes: list[Process], grace_s: float, first: int = signal.SIGTERM) -> None:
    """`first` to each process still the one recorded, SIGKILL to those left after `grace_s`."""
    for process in processes:
        signal_if_same(process, first)
    if not wait_gone(processes, grace_s):
        for process in processes:
            signal_if_same(process, signal.SIGKILL)
        wait_gone(processes, 5.0)
