"""Durations from the monotonic clock, timestamps from the wall clock.

A wall clock stepped back two hours during a drill gave `PASSED; RTO -7153s`. Every duration dr
reports (RTO, a step's time) is measured with CLOCK_MONOTONIC, which on Linux is one clock for every
process since boot, so a drill resumed by a new process still measures from its disaster. Across a
reboot (another boot id) only the wall clock is left: the duration then comes from it, never negative.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    try:
        return BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Moment:
    wall: float  # for timestamps people read
    mono: float  # for durations
    boot: str

    @classmethod
    def now(cls) -> Moment:
        return cls(wall=time.time(), mono=time.monotonic(), boot=boot_id())

    def to_json(self) -> dict[str, Any]:
        return {"at": self.wall, "mono": self.mono, "boot": self.boot}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Moment:
        return cls(wall=float(data.get("at", 0.0)), mono=float(data.get("mono", -1.0)), boot=str(data.get("boot", "")))


def elapsed(since: Moment, until: Moment) -> float:
    """Seconds from `since` to `until`: monotonic within one boot, else the wall clock's, never negative."""
    if since.boot and since.boot == until.boot and since.mono >= 0:
        return max(0.0, until.mono - since.mono)
    return max(0.0, until.wall - since.wall)
