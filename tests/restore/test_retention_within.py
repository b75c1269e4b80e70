"""Retention by age (`within`): restic keeps by it, the audit counts it as reach."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dr.audit.checks import oldest_restore_point_s
from dr.core.spec import Retention
from dr.restore.restic import forget_args


def test_within_becomes_keep_within_in_whole_hours() -> None:
    assert forget_args(Retention(daily=7, within_s=30 * 86400)) == ["--keep-daily", "7", "--keep-within", "720h"]
    assert forget_args(Retention(within_s=600)) == ["--keep-within", "1h"], "restic has no minutes ('m' is months)"


def test_the_audit_counts_a_within_policy_as_reach() -> None:
    assert oldest_restore_point_s(Retention(last=2, within_s=30 * 86400), interval_s=3600) == 30 * 86400
    assert oldest_restore_point_s(Retention(last=2), interval_s=3600) == 7200


@pytest.mark.integration
def test_real_restic_accepts_the_flags(tmp_path: Path) -> None:
    env = {**os.environ, "RESTIC_PASSWORD": "test-only", "RESTIC_REPOSITORY": str(tmp_path / "repo")}
    subprocess.run(["restic", "init", "-q"], env=env, check=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f").write_text("x")
    subprocess.run(["restic", "backup", "-q", str(tmp_path / "data")], env=env, check=True)
    done = subprocess.run(["restic", "forget", "--dry-run", *forget_args(Retention(daily=7, within_s=3 * 86400))],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "keep 1 snapshots" in done.stdout
