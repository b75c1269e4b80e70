"""Durations come from the monotonic clock (issue 21, item 6): a wall clock stepped back two hours in the
middle of a drill gave `PASSED; RTO -7153s`. Here the wall clock (time.time) is stepped back while a
step runs; RTO and step durations stay what really elapsed, timestamps still come from the wall clock."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dr.core.drill_report import CheckResult
from dr.drill.clock import Moment, elapsed
from dr.drill.executor import Journal, Task, execute
from dr.drill.run import DrillPaths, stack_drill
from dr.graph_file import load_graph_file, read_text
from tests.conftest import EXAMPLE_GRAPH


class SteppedWallClock:
    """time.time() that an NTP step moves back by `offset` seconds."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.real = time.time

    def __call__(self) -> float:
        return self.real() - self.offset


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> SteppedWallClock:
    clock = SteppedWallClock()
    monkeypatch.setattr(time, "time", clock)
    return clock


class SteppingStack:
    def __init__(self, wall: SteppedWallClock) -> None:
        self.wall = wall

    def up(self, on_output: Any) -> dict[str, Any]:
        self.wall.offset = 7200.0  # the clock is stepped back two hours during the rebuild
        time.sleep(0.05)
        return {"recovery_order": [], "mode": "drill"}

    def destroy(self, on_output: Any) -> None:
        return None


def test_rto_is_what_elapsed_when_the_wall_clock_steps_back(wall: SteppedWallClock, tmp_path: Path) -> None:
    report, _ = stack_drill(load_graph_file(EXAMPLE_GRAPH), stack=SteppingStack(wall), paths=DrillPaths(tmp_path),
                            verify=lambda plan, outputs: [CheckResult("gitea", "http", True, "ok")],
                            read_text=read_text, say=lambda line: None)
    assert 0.05 <= report.rto_s < 60, report.rto_s
    assert report.verified_at < report.disaster_at, "timestamps are the wall clock's, stepped back"
    assert report.success


def test_a_step_duration_is_what_elapsed(wall: SteppedWallClock, tmp_path: Path) -> None:
    def step(attempt: int) -> dict[str, Any]:
        wall.offset = 7200.0
        time.sleep(0.05)
        return {}

    records = execute([Task("etcd", (), step)], journal=Journal(tmp_path / "journal.sqlite", "r"), concurrency=1,
                      retries=0, backoff_s=0, timeout_s=60)
    assert 0.05 <= records["etcd"].duration_s < 60


def test_across_a_reboot_only_the_wall_clock_is_left_and_never_negative() -> None:
    before = Moment(wall=1000.0, mono=50.0, boot="boot-a")
    assert elapsed(before, Moment(wall=1030.0, mono=80.5, boot="boot-a")) == 30.5
    assert elapsed(before, Moment(wall=1100.0, mono=5.0, boot="boot-b")) == 100.0
    assert elapsed(before, Moment(wall=900.0, mono=5.0, boot="boot-b")) == 0.0
    assert elapsed(Moment.from_json({"at": 1000.0}), Moment(wall=1010.0, mono=1.0, boot="x")) == 10.0
