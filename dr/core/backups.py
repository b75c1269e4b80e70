"""Choosing which backup to restore, and refusing a collapsed one. Pure: lists in, choice out.

The collapsed-backup guard is the Longhorn lesson: after an upgrade a volume came back blank, the
nightly backup backed up the blank volume, and restoring "latest" would have restored nothing.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from dr.errors import RestoreError

COLLAPSE_FRACTION = 0.10  # newest under 10% of the median of the ones before it
COLLAPSE_HISTORY = 5      # how many earlier backups the median is taken over


@dataclass(frozen=True)
class BackupPoint:
    """One restorable backup as the tool reports it."""

    id: str
    time: dt.datetime
    size_bytes: int
    file_count: int


class CollapsedBackup(RestoreError):
    """The backup chosen for `latest` is far smaller than the ones before it."""

    def __init__(self, collapsed: BackupPoint, last_good: BackupPoint | None, reason: str) -> None:
        self.collapsed = collapsed
        self.last_good = last_good
        good = (f"the last good backup is {last_good.id} from {last_good.time.isoformat()}; restore it with "
                "allow_collapsed: true" if last_good else "no earlier backup looks good either")
        super().__init__(f"refusing to restore backup {collapsed.id} from {collapsed.time.isoformat()}: {reason} "
                         f"(a blank volume was probably backed up); {good}")


def parse_target_time(target_time: str) -> dt.datetime | None:
    """None for 'latest', else an aware datetime."""
    if target_time == "latest":
        return None
    return dt.datetime.fromisoformat(target_time.replace("Z", "+00:00"))


def collapse_reason(point: BackupPoint, earlier: list[BackupPoint]) -> str | None:
    """Why `point` looks collapsed against the backups before it, or None."""
    history = earlier[-COLLAPSE_HISTORY:]
    if not history:
        return None
    median_size = statistics.median(p.size_bytes for p in history)
    median_files = statistics.median(p.file_count for p in history)
    if median_size > 0 and point.size_bytes < COLLAPSE_FRACTION * median_size:
        return f"its size {point.size_bytes} B is under 10% of the median {median_size:.0f} B of the previous backups"
    if median_files > 0 and point.file_count < COLLAPSE_FRACTION * median_files:
        return (f"its {point.file_count} files are under 10% of the median {median_files:.0f} files of the "
                "previous backups")
    return None


def choose_backup(points: list[BackupPoint], target_time: str, *, allow_collapsed: bool = False) -> BackupPoint:
    """The newest backup at or before `target_time`; for `latest`, refuse a collapsed one."""
    ordered = sorted(points, key=lambda p: p.time)
    if not ordered:
        raise RestoreError("no backups found in the repository; nothing to restore")
    moment = parse_target_time(target_time)
    eligible = ordered if moment is None else [p for p in ordered if p.time <= moment]
    if not eligible:
        raise RestoreError(f"no backup at or before {target_time}; the oldest is from {ordered[0].time.isoformat()}")
    chosen = eligible[-1]
    if moment is not None:
        return chosen
    reason = collapse_reason(chosen, eligible[:-1])
    if reason is None:
        return chosen
    last_good = None
    for index in range(len(eligible) - 2, -1, -1):
        if collapse_reason(eligible[index], eligible[:index]) is None:
            last_good = eligible[index]
            break
    if allow_collapsed and last_good is not None:
        return last_good
    raise CollapsedBackup(chosen, last_good, reason)
