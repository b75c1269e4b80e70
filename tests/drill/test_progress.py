"""Plain progress (CI, logs): one line per state change, and a heartbeat naming the steps still running."""

from __future__ import annotations

import io
import time

from dr.drill.executor import StepRecord, StepState
from dr.drill.progress import plain_progress


def test_a_long_step_is_named_while_it_runs_and_no_longer_once_done() -> None:
    """A 28-second etcd restore used to print nothing between `running` and `succeeded`."""
    out = io.StringIO()
    show = plain_progress(out, heartbeat_s=0.05)
    record = StepRecord("etcd", StepState.RUNNING, 1, started=time.time())
    show(record)
    deadline = time.monotonic() + 5
    while "still running: etcd (" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "still running: etcd (" in out.getvalue()
    show(StepRecord("etcd", StepState.SUCCEEDED, 1, started=record.started, finished=time.time()))
    time.sleep(0.2)  # a few heartbeats: none may name the finished step
    after = out.getvalue().split(" etcd                       succeeded")[1]
    assert "still running" not in after

