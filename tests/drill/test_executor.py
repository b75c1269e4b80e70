"""The local executor: dependency-driven starts, concurrency, retries, skips, timeouts, resume."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dr.drill.executor import Journal, StepState, Task, execute


def journal(tmp_path: Path, run: str = "r1") -> Journal:
    return Journal(tmp_path / "journal.sqlite", run)


def sleeper(seconds: float, log: list[tuple[str, str, float]], name: str):
    def run(attempt: int) -> dict[str, float]:
        log.append((name, "start", time.monotonic()))
        time.sleep(seconds)
        log.append((name, "end", time.monotonic()))
        return {"slept": seconds}
    return run


def at(log: list[tuple[str, str, float]], name: str, event: str) -> float:
    return next(t for n, e, t in log if n == name and e == event)


def test_a_step_starts_as_soon_as_its_own_dependencies_finish(tmp_path: Path) -> None:
    log: list[tuple[str, str, float]] = []
    tasks = [Task("slow", (), sleeper(0.6, log, "slow")), Task("fast", (), sleeper(0.05, log, "fast")),
             Task("after-fast", ("fast",), sleeper(0.05, log, "after-fast")),
             Task("after-both", ("slow", "fast"), sleeper(0.0, log, "after-both"))]
    records = execute(tasks, journal=journal(tmp_path), concurrency=4)
    assert all(r.state == StepState.SUCCEEDED for r in records.values())
    assert at(log, "after-fast", "start") < at(log, "slow", "end"), "not wave by wave"
    assert at(log, "after-both", "start") >= at(log, "slow", "end")


def test_concurrency_limit_is_respected(tmp_path: Path) -> None:
    active, peak, lock = [0], [0], threading.Lock()

    def run(attempt: int) -> dict[str, int]:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.1)
        with lock:
            active[0] -= 1
        return {}

    execute([Task(f"t{i}", (), run) for i in range(6)], journal=journal(tmp_path), concurrency=2)
    assert peak[0] == 2


def test_failing_step_is_retried_with_backoff(tmp_path: Path) -> None:
    calls: list[int] = []
    slept: list[float] = []

    def flaky(attempt: int) -> dict[str, int]:
        calls.append(attempt)
        if attempt < 3:
            raise RuntimeError("transient")
        return {"attempt": attempt}

    records = execute([Task("flaky", (), flaky)], journal=journal(tmp_path), retries=2, backoff_s=0.5,
                      sleep=slept.append)
    assert calls == [1, 2, 3] and slept == [0.5, 1.0]
    assert records["flaky"].state == StepState.SUCCEEDED and records["flaky"].attempts == 3


def test_failure_skips_only_descendants(tmp_path: Path) -> None:
    def broken(attempt: int) -> dict[str, int]:
        raise RuntimeError("disk full")

    ok = lambda attempt: {}  # noqa: E731
    tasks = [Task("a", (), broken), Task("b", ("a",), ok), Task("c", ("b",), ok), Task("d", (), ok),
             Task("e", ("d",), ok)]
    records = execute(tasks, journal=journal(tmp_path), retries=1, sleep=lambda s: None)
    assert records["a"].state == StepState.FAILED and "disk full" in records["a"].error
    assert records["a"].attempts == 2
    assert (records["b"].state, records["c"].state) == (StepState.SKIPPED, StepState.SKIPPED)
    assert records["b"].error == "a did not finish"
    assert (records["d"].state, records["e"].state) == (StepState.SUCCEEDED, StepState.SUCCEEDED)


def test_a_step_past_its_timeout_fails(tmp_path: Path) -> None:
    records = execute([Task("hang", (), lambda attempt: time.sleep(1.5) or {}), Task("next", ("hang",), lambda a: {})],
                      journal=journal(tmp_path), timeout_s=0.3)
    assert records["hang"].state == StepState.FAILED and "timed out" in records["hang"].error
    assert records["next"].state == StepState.SKIPPED


def test_rendered_and_not_run_steps_are_reported_as_such_and_let_dependents_go(tmp_path: Path) -> None:
    tasks = [Task("k3s", (), lambda a: {}, kind="not-run", reason="needs real hosts"),
             Task("chart", ("k3s",), lambda a: {"objects": 3}, kind="rendered"),
             Task("after", ("chart",), lambda a: {})]
    records = execute(tasks, journal=journal(tmp_path))
    assert records["k3s"].state == StepState.NOT_RUN and records["k3s"].error == "needs real hosts"
    assert records["chart"].state == StepState.RENDERED and records["chart"].outputs == {"objects": 3}
    assert records["after"].state == StepState.SUCCEEDED


def test_resume_skips_finished_steps(tmp_path: Path) -> None:
    calls: list[str] = []

    def track(name: str, fail: bool = False):
        def run(attempt: int) -> dict[str, int]:
            calls.append(name)
            if fail:
                raise RuntimeError("crash")
            return {}
        return run

    first = execute([Task("a", (), track("a")), Task("b", ("a",), track("b", fail=True))],
                    journal=journal(tmp_path), retries=0)
    assert first["b"].state == StepState.FAILED
    calls.clear()
    second = execute([Task("a", (), track("a")), Task("b", ("a",), track("b"))], journal=journal(tmp_path), retries=0)
    assert calls == ["b"]
    assert second["a"].state == second["b"].state == StepState.SUCCEEDED
    assert [name for name, _ in journal(tmp_path).attempts()] == ["a", "b", "b"]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_every_step_runs_after_its_dependencies(tmp_path: Path, concurrency: int) -> None:
    log: list[tuple[str, str, float]] = []
    deps = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()}
    tasks = [Task(n, d, sleeper(0.01, log, n)) for n, d in deps.items()]
    execute(tasks, journal=journal(tmp_path), concurrency=concurrency)
    for name, needs in deps.items():
        for need in needs:
            assert at(log, need, "end") <= at(log, name, "start")


def test_every_cleanup_stage_runs_when_a_stop_arrives_during_one() -> None:
    """A SIGTERM (KeyboardInterrupt here) during one stage of a cleanup used to end the cleanup there: the
    stages after it never stopped what they own. The interruption is raised again once all have run."""
    from dr.shutdown import run_every

    ran: list[str] = []

    def interrupted() -> None:
        ran.append("engine")
        raise KeyboardInterrupt("SIGTERM")

    def broken() -> None:
        ran.append("mirror")
        raise OSError("already gone")

    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        run_every([interrupted, broken, None, lambda: ran.append("cluster"), lambda: ran.append("files")])
    assert ran == ["engine", "mirror", "cluster", "files"]
    with pytest.raises(OSError, match="already gone"):
        run_every([broken, lambda: ran.append("after")])
    assert ran[-1] == "after"
