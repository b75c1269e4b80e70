"""The collapsed-backup guard at its edges: exactly 10 % is not collapsed, a history of one-byte backups
still counts, a backup exactly at the target time is chosen, and "last good" looks at the right ones."""

from __future__ import annotations

import datetime as dt

import pytest

from dr.core.backups import BackupPoint, CollapsedBackup, choose_backup, collapse_reason
from dr.errors import RestoreError

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def point(i: int, size: int, files: int = 100) -> BackupPoint:
    return BackupPoint(id=f"b{i}", time=T0 + dt.timedelta(hours=i), size_bytes=size, file_count=files)


def test_exactly_ten_percent_is_not_collapsed_just_under_is() -> None:
    history = [point(i, 1000, 100) for i in range(3)]
    assert collapse_reason(point(9, 100, 100), history) is None
    assert collapse_reason(point(9, 99, 100), history) is not None
    assert collapse_reason(point(9, 1000, 10), history) is None
    reason = collapse_reason(point(9, 1000, 9), history)
    assert reason == "its 9 files are under 10% of the median 100 files of the previous backups"


def test_tiny_backups_still_have_a_median() -> None:
    ones = [point(i, 1, 1) for i in range(3)]
    assert collapse_reason(point(9, 0, 1), ones) == (
        "its size 0 B is under 10% of the median 1 B of the previous backups")
    assert collapse_reason(point(9, 1, 0), ones) is not None
    assert collapse_reason(point(9, 0, 0), [point(i, 0, 0) for i in range(3)]) is None, "all empty: nothing lost"


def test_only_the_last_five_backups_make_the_median() -> None:
    history = [point(i, 100_000) for i in range(10)] + [point(10 + i, 1000) for i in range(5)]
    assert collapse_reason(point(20, 500), history) is None


def test_a_backup_exactly_at_the_target_time_is_the_one_restored() -> None:
    points = [point(i, 1000) for i in range(4)]
    assert choose_backup(points, (T0 + dt.timedelta(hours=2)).isoformat()).id == "b2"
    with pytest.raises(RestoreError, match="no backup at or before"):
        choose_backup(points, (T0 - dt.timedelta(seconds=1)).isoformat())
    with pytest.raises(RestoreError, match="^no backups found in the repository; nothing to restore$"):
        choose_backup([], "latest")


def test_last_good_is_the_newest_good_one_judged_against_its_own_predecessors() -> None:
    points = [point(0, 1000), point(1, 1000), point(2, 1000), point(3, 1000), point(4, 5), point(5, 5)]
    with pytest.raises(CollapsedBackup) as caught:
        choose_backup(points, "latest")
    assert caught.value.collapsed.id == "b5"
    assert caught.value.last_good is not None and caught.value.last_good.id == "b3"
    assert choose_backup(points, "latest", allow_collapsed=True).id == "b3"


def test_collapse_is_judged_against_every_earlier_backup_not_only_the_first() -> None:
    points = [point(0, 10), point(1, 1000), point(2, 1000), point(3, 50)]
    with pytest.raises(CollapsedBackup):
        choose_backup(points, "latest")


def test_the_oldest_backup_is_always_a_fallback_and_a_small_history_is_not_a_collapse() -> None:
    # The oldest backup has nothing before it, so it is never judged collapsed: a last good one exists
    # whenever there are two or more (why the guard's "none found" branch cannot be reached from here).
    only_bad = [point(0, 1000), point(1, 1), point(2, 1)]
    with pytest.raises(CollapsedBackup) as caught:
        choose_backup(only_bad, "latest")
    assert caught.value.last_good is not None and caught.value.last_good.id == "b0"
    assert choose_backup(only_bad, "latest", allow_collapsed=True).id == "b0"
    assert choose_backup([point(0, 1), point(1, 1)], "latest").id == "b1", "one-byte history: not collapsed"
