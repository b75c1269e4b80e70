"""The journal keeps exactly what the executor saved, and resume continues from it: unit tests of the
logic a crash depends on (finished steps never rerun, interrupted ones do, attempts carry over)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from dr import process_groups
from dr.drill.executor import Journal, StepRecord, StepState, Task, execute


def journal(tmp_path: Path, run_id: str = "run-1") -> Journal:
    return Journal(tmp_path / "journal.sqlite", run_id)


def test_a_record_comes_back_exactly_as_saved_and_only_for_its_run(tmp_path: Path) -> None:
    saved = StepRecord(name="etcd", state=StepState.FAILED, attempts=3, started=100.5, finished=130.25,
                       error="boom: host unreachable", outputs={"restored": "snap-1", "changed": 2})
    j = journal(tmp_path)
    j.save(saved)
    j.save(StepRecord(name="empty"))
    other = journal(tmp_path, "run-2")
    other.save(StepRecord(name="etcd", state=StepState.SUCCEEDED))
    loaded = j.load()
    assert loaded["etcd"] == saved
    assert loaded["empty"] == StepRecord(name="empty", error="", outputs={})
    assert set(loaded) == {"etcd", "empty"} and other.load()["etcd"].state == StepState.SUCCEEDED


def test_attempts_and_phases_are_kept_per_run(tmp_path: Path) -> None:
    j = journal(tmp_path)
    j.attempt("a", 1)
    j.attempt_failed("a", 1, "first failure")
    j.attempt("a", 2)
    assert j.attempts() == [("a", 1), ("a", 2)]
    assert j.attempt_errors("a") == ["first failure"]
    assert j.phase("disaster") is None
    j.phase_done("disaster", {"at": 12.5})
    assert j.phase("disaster") == {"at": 12.5}
    assert journal(tmp_path, "run-2").phase("disaster") is None


def test_resume_skips_finished_reruns_interrupted_and_continues_attempt_numbers(tmp_path: Path) -> None:
    j = journal(tmp_path)
    j.save(StepRecord(name="done", state=StepState.SUCCEEDED, attempts=1, started=1.0, finished=2.0))
    j.save(StepRecord(name="rendered", state=StepState.RENDERED, attempts=0))
    j.save(StepRecord(name="crashed", state=StepState.RUNNING, attempts=2, started=3.0))  # running at the crash
    j.save(StepRecord(name="failed", state=StepState.FAILED, attempts=1, error="x"))
    calls: list[tuple[str, int]] = []

    def runner(name: str):  # type: ignore[no-untyped-def]
        def run(attempt: int) -> dict[str, int]:
            calls.append((name, attempt))
            return {"attempt": attempt}
        return run

    tasks = [Task("done", (), runner("done")), Task("rendered", (), runner("rendered"), kind="rendered"),
             Task("crashed", ("done",), runner("crashed")), Task("failed", (), runner("failed")),
             Task("after", ("crashed", "rendered"), runner("after"))]
    records = execute(tasks, journal=j, concurrency=2, retries=0)
    assert sorted(calls) == [("after", 1), ("crashed", 3), ("failed", 2)], "finished steps never run again"
    assert records["done"].state == StepState.SUCCEEDED and records["done"].started == 1.0
    assert records["crashed"].state == StepState.SUCCEEDED and records["crashed"].attempts == 3
    assert j.load()["crashed"].outputs == {"attempt": 3}


def test_a_failure_skips_every_descendant_and_nothing_else(tmp_path: Path) -> None:
    def fail(attempt: int) -> dict[str, int]:
        raise RuntimeError("disk on fire")

    ok = lambda attempt: {}  # noqa: E731
    tasks = [Task("a", (), fail), Task("b", ("a",), ok), Task("c", ("b",), ok), Task("d", ("c",), ok),
             Task("x", (), ok), Task("y", ("x",), ok)]
    records = execute(tasks, journal=journal(tmp_path), retries=0)
    assert records["a"].state == StepState.FAILED and records["a"].error == "RuntimeError: disk on fire"
    assert [records[n].state for n in "bcd"] == [StepState.SKIPPED] * 3
    assert records["b"].error == "a did not finish" and records["d"].error == "c did not finish"
    assert records["x"].state == records["y"].state == StepState.SUCCEEDED


def test_retries_count_attempts_and_back_off(tmp_path: Path) -> None:
    seen: list[int] = []
    sleeps: list[float] = []

    def flaky(attempt: int) -> dict[str, int]:
        seen.append(attempt)
        if attempt < 3:
            raise OSError(f"attempt {attempt}")
        return {}

    j = journal(tmp_path)
    records = execute([Task("f", (), flaky)], journal=j, retries=2, backoff_s=0.5, sleep=sleeps.append)
    assert seen == [1, 2, 3] and records["f"].attempts == 3 and records["f"].state == StepState.SUCCEEDED
    assert sleeps == [0.5, 1.0]
    assert j.attempt_errors("f") == ["OSError: attempt 1", "OSError: attempt 2"]
    records = execute([Task("g", (), flaky)], journal=journal(tmp_path, "r2"), retries=1, sleep=sleeps.append)
    assert records["g"].state == StepState.FAILED and records["g"].attempts == 2


def test_concurrency_is_a_ceiling_and_not_run_steps_do_not_take_a_slot(tmp_path: Path) -> None:
    active, peak = [0], [0]
    lock = threading.Lock()

    def work(attempt: int) -> dict[str, int]:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return {}

    running_now: set[str] = set()
    most_marked_running = [0]

    def on_event(record: StepRecord) -> None:  # what the journal and the progress table are told
        (running_now.add if record.state == StepState.RUNNING else running_now.discard)(record.name)
        most_marked_running[0] = max(most_marked_running[0], len(running_now))

    tasks = [Task(f"t{i}", (), work) for i in range(6)] + [Task("skip", (), work, kind="not-run", reason="why")]
    records = execute(tasks, journal=journal(tmp_path), concurrency=2, on_event=on_event)
    assert peak[0] == 2 and most_marked_running[0] == 2
    assert records["skip"].state == StepState.NOT_RUN and records["skip"].error == "why"
    execute([Task(f"u{i}", (), work) for i in range(3)], journal=journal(tmp_path, "r2"), concurrency=1)
    assert peak[0] == 2


def test_a_step_that_outlives_its_timeout_fails_with_the_configured_timeout(tmp_path: Path) -> None:
    release, ended = threading.Event(), threading.Event()

    def slow(attempt: int) -> dict[str, int]:
        release.wait(30)
        ended.set()
        return {}

    records = execute([Task("slow", (), slow), Task("after", ("slow",), lambda a: {})], journal=journal(tmp_path),
                      retries=0, timeout_s=0.3)
    assert not ended.is_set(), "execute returned without waiting for the timed-out step"
    release.set()
    assert records["slow"].state == StepState.FAILED and records["slow"].error == "timed out after 0.3s"
    assert records["after"].state == StepState.SKIPPED


@pytest.mark.parametrize("kind", ["rendered", "not-run"])
def test_rendered_and_not_run_steps_let_dependents_go(tmp_path: Path, kind: str) -> None:
    records = execute([Task("k", (), lambda a: {"objects": 1}, kind=kind), Task("app", ("k",), lambda a: {})],
                      journal=journal(tmp_path))
    assert records["app"].state == StepState.SUCCEEDED


def test_the_journal_has_a_schema_version_and_refuses_a_newer_or_damaged_one(tmp_path: Path) -> None:
    import sqlite3

    from dr.drill.executor import JOURNAL_SCHEMA, JournalError

    j = journal(tmp_path)
    j.close()
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == JOURNAL_SCHEMA
        db.execute(f"PRAGMA user_version = {JOURNAL_SCHEMA + 1}")
    with pytest.raises(JournalError, match="written by a newer dr"):
        journal(tmp_path)
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "journal.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(JournalError, match="cannot be used"):
        journal(tmp_path / "damaged")


def test_a_timed_out_step_has_its_process_group_stopped_and_is_not_retried(tmp_path: Path) -> None:
    """The work a step started (here a shell and its child, as ansible-playbook and ssh would be) is
    stopped when the step times out; the step's thread does not go on to a second attempt."""
    started: list[subprocess.Popen[bytes]] = []
    pid_file = tmp_path / "child.pid"

    def slow(attempt: int) -> dict[str, int]:
        process = process_groups.start(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"])
        started.append(process)
        process.wait()
        process_groups.forget(process)
        raise RuntimeError("the step's process was stopped")

    records = execute([Task("slow", (), slow)], journal=journal(tmp_path), retries=2, backoff_s=0.01,
                      timeout_s=0.5)
    assert records["slow"].state == StepState.FAILED
    assert records["slow"].error == "timed out after 0.5s; stopped 1 process group it started"
    assert started[0].poll() is not None, "the step's shell still runs after its timeout"
    child = int(pid_file.read_text())
    deadline = time.time() + 5
    while time.time() < deadline and Path(f"/proc/{child}").exists():
        time.sleep(0.05)  # the zombie is reaped by init shortly after the kill
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2], \
        "the shell's child (sleep) outlived the step's timeout"
    time.sleep(0.3)  # would be long enough for a retry to start
    assert len(started) == 1, "the timed-out step was retried behind the executor's back"


def open_files(path: Path) -> int:
    """How many descriptors of this process point at `path`."""
    import os

    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve()))


@pytest.mark.parametrize(("phases", "continued"), [((), ""), (("disaster",), "run-1"),
                                                    (("disaster", "cleaned"), "")])
def test_deciding_what_to_resume_leaves_no_journal_open(tmp_path: Path, phases: tuple[str, ...],
                                                        continued: str) -> None:
    """The resume decision opened the journal twice and never closed it."""
    from dr.drill.run import DrillPaths, _run_to_continue

    paths = DrillPaths(tmp_path)
    paths.current.write_text("run-1")
    with Journal(paths.journal, "run-1") as journal:
        for phase in phases:
            journal.phase_done(phase, {"at": 1.0})
    abandoned: list[str] = []
    said: list[str] = []
    chosen = _run_to_continue("run-1", resume=True, paths=paths, say=said.append, abandon=abandoned.append)
    assert chosen == continued
    assert abandoned == ([] if phases else ["run-1"])  # stopped before its disaster: what it left is stopped
    assert open_files(paths.journal) == 0
    assert said and ("resuming" in said[0]) == bool(continued)


def test_a_step_times_out_on_its_own_timeout_and_says_why_and_what_it_waited_for(tmp_path: Path) -> None:
    """Each step has its own timeout (from its estimate), not the run's flat one: the short step fails on
    its own, the message says where its timeout came from and what it was waiting for, and the step with a
    longer timeout beside it finishes."""
    release = threading.Event()

    def stuck(attempt: int) -> dict[str, int]:
        release.wait(30)
        return {}

    def slower(attempt: int) -> dict[str, int]:
        time.sleep(1.0)
        return {"done": 1}

    tasks = [Task("stuck", (), stuck, timeout_s=0.4, timeout_reason="3 x its estimate of 0s",
                  waiting_for=lambda: "Restore velero/grafana until jsonpath={.status.phase}=Completed"),
             Task("slower", (), slower, timeout_s=20)]
    records = execute(tasks, journal=journal(tmp_path), retries=0)
    release.set()
    assert records["stuck"].state == StepState.FAILED
    assert records["stuck"].error == ("timed out after 0.4s (3 x its estimate of 0s); it was waiting for Restore "
                                      "velero/grafana until jsonpath={.status.phase}=Completed")
    assert records["slower"].state == StepState.SUCCEEDED, records["slower"].error
