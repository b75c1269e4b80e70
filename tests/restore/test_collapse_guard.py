"""Choosing a backup for a target time, and the collapsed-backup guard (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from dr.core.backups import BackupPoint, CollapsedBackup, choose_backup
from dr.errors import RestoreError

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def point(hour: int, size: int = 1000, files: int = 100) -> BackupPoint:
    return BackupPoint(id=f"b{hour}", time=T0 + dt.timedelta(hours=hour), size_bytes=size, file_count=files)


def test_latest_is_the_newest() -> None:
    assert choose_backup([point(2), point(1), point(3)], "latest").id == "b3"


def test_target_time_takes_the_newest_at_or_before_it() -> None:
    target = (T0 + dt.timedelta(hours=2, minutes=30)).isoformat()
    assert choose_backup([point(1), point(2), point(3)], target).id == "b2"


def test_target_before_every_backup_is_an_error() -> None:
    with pytest.raises(RestoreError, match="no backup at or before"):
        choose_backup([point(5)], T0.isoformat())


def test_empty_repository_is_an_error() -> None:
    with pytest.raises(RestoreError, match="no backups found"):
        choose_backup([], "latest")


def test_collapsed_size_is_refused_and_the_last_good_one_named() -> None:
    points = [point(1), point(2), point(3), point(4, size=50)]
    with pytest.raises(CollapsedBackup) as caught:
        choose_backup(points, "latest")
    assert caught.value.last_good == points[2]
    assert "the last good backup is b3" in str(caught.value)


def test_collapsed_file_count_is_refused() -> None:
    with pytest.raises(CollapsedBackup, match="files are under 10%"):
        choose_backup([point(1), point(2), point(3, files=3)], "latest")


def test_allow_collapsed_restores_the_last_good_backup() -> None:
    points = [point(1), point(2), point(3, size=10), point(4, size=10)]
    assert choose_backup(points, "latest", allow_collapsed=True).id == "b2"


def test_a_smaller_but_not_collapsed_backup_is_fine() -> None:
    assert choose_backup([point(1), point(2), point(3, size=200, files=20)], "latest").id == "b3"


def test_explicit_target_time_is_not_second_guessed() -> None:
    points = [point(1), point(2, size=1)]
    assert choose_backup(points, (T0 + dt.timedelta(hours=3)).isoformat()).id == "b2"
