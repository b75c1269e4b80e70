"""Is the process at a recorded pid still the one dr started? After a reboot, or long enough, a pid in
`cluster.json` or a drill's state names some other process: dr must never signal it, nor call it
"running". A process is dr's when its start time (clock ticks since boot, /proc/PID/stat) is the one
recorded when dr started it, and its command line names what dr gave it (its state directory or data
directory)."""

from __future__ import annotations

from pathlib import Path


def cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", "surrogateescape") for part in raw.split(b"\0") if part]


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # fields after "(comm)": state is 3rd field overall, starttime the 22nd
    except (IndexError, ValueError):
        return None


def is_ours(pid: int, *, marker: str, start: int | None = None) -> bool:
    """Whether `pid` is a live process whose command line mentions `marker` (a path dr gave it) and, when
    `start` was recorded, that started at that tick."""
    if pid <= 0 or not marker:
        return False
    args = cmdline(pid)
    if not args:  # gone, or a zombie
        return False
    if start is not None and start_ticks(pid) != start:
        return False
    return any(marker in arg for arg in args)
