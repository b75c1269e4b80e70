"""The local executor: runs a plan's steps as soon as their dependencies finish, and survives crashes.

Each step starts the moment all of its dependencies have finished (not wave by wave), up to a
concurrency limit; a failing step is retried with exponential backoff; a step that runs past its
timeout fails, and the process groups it started are stopped (it is not retried behind its back);
a failed step skips its descendants only, and everything independent still runs.
Every state change is committed to a SQLite journal before anything else happens, so after a crash
or `kill -9` a resumed run skips the steps that finished and reruns only the unfinished ones.
Steps that cannot run here are reported for what they are: `rendered` (Kubernetes objects,
schema-checked) or `not-run` (they need real hosts), never as restored.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from dr import process_groups
from dr.errors import DrError


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    RENDERED = "rendered"
    NOT_RUN = "not-run"


# States after which dependents may start.
FINISHED_OK = frozenset({StepState.SUCCEEDED, StepState.RENDERED, StepState.NOT_RUN})
FINAL = FINISHED_OK | {StepState.FAILED, StepState.SKIPPED}


@dataclass(frozen=True)
class Task:
    """One step for the executor. `run(attempt)` does the work and returns outputs, or raises."""

    name: str
    depends_on: tuple[str, ...]
    run: Callable[[int], Mapping[str, Any]]
    kind: str = "run"  # run | rendered | not-run
    reason: str = ""   # for not-run: why not
    timeout_s: float | None = None  # this step's own timeout (the run's when None)
    timeout_reason: str = ""        # where it came from, for the message (`dr.core.durations.step_timeout_reason`)
    waiting_for: Callable[[], str] | None = None  # what the step waits for now, said when it times out


@dataclass
class StepRecord:
    name: str
    state: StepState = StepState.PENDING
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    error: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    mono_started: float | None = None  # time.monotonic() at the start: durations never follow the wall clock
    elapsed_s: float | None = None

    def start(self) -> None:
        self.started, self.mono_started = time.time(), time.monotonic()

    def finish(self) -> None:
        self.finished = time.time()
        if self.mono_started is not None:
            self.elapsed_s = time.monotonic() - self.mono_started

    @property
    def duration_s(self) -> float:
        if self.elapsed_s is not None:
            return self.elapsed_s
        if self.started is None or self.finished is None:
            return 0.0
        return max(0.0, self.finished - self.started)  # a record loaded from the journal of another process


JOURNAL_SCHEMA = 1  # PRAGMA user_version of the journal file; bump when its tables change


class JournalError(DrError):
    """The journal file cannot be used: damaged, unreadable, or written by a newer dr."""


class Journal:
    """Step states and every attempt, in SQLite; safe to read while a run writes it."""

    def __init__(self, path: Path, run_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.run_id = path, run_id
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._open()
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"the drill journal {path} cannot be used ({exc}); move it aside to start afresh "
                               "(a damaged journal cannot be resumed)") from None

    def _open(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > JOURNAL_SCHEMA:
            raise JournalError(f"the drill journal {self.path} was written by a newer dr (schema {version}, this dr "
                               f"reads {JOURNAL_SCHEMA}); use that dr, or move the journal aside")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA user_version = {JOURNAL_SCHEMA}")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS steps (run_id TEXT, name TEXT, state TEXT, attempts INTEGER,
                started REAL, finished REAL, error TEXT, outputs TEXT, PRIMARY KEY (run_id, name));
            CREATE TABLE IF NOT EXISTS attempts (run_id TEXT, name TEXT, attempt INTEGER, started REAL,
                error TEXT);
            CREATE TABLE IF NOT EXISTS phases (run_id TEXT, name TEXT, finished REAL, data TEXT,
                PRIMARY KEY (run_id, name));
        """)

    def save(self, record: StepRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.run_id, record.name, record.state.value, record.attempts, record.started, record.finished,
                 record.error, json.dumps(record.outputs, sort_keys=True, default=str)))

    def attempt(self, name: str, attempt: int) -> None:
        with self._lock:
            self._db.execute("INSERT INTO attempts VALUES (?, ?, ?, ?, NULL)",
                             (self.run_id, name, attempt, time.time()))

    def attempt_failed(self, name: str, attempt: int, error: str) -> None:
        with self._lock:
            self._db.execute("UPDATE attempts SET error = ? WHERE run_id = ? AND name = ? AND attempt = ?",
                             (error, self.run_id, name, attempt))

    def attempt_errors(self, name: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT error FROM attempts WHERE run_id = ? AND name = ? AND error IS NOT NULL ORDER BY started",
                (self.run_id, name))]

    def _damaged(self, what: str) -> JournalError:
        """The same error for a damaged row as for a damaged file: the file, what is wrong, what to do."""
        return JournalError(f"the drill journal {self.path} is damaged ({what}); move it aside to start afresh "
                            "(a damaged journal cannot be resumed)")

    def _rows(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(query, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._damaged(str(exc)) from None

    def _record(self, row: Sequence[Any]) -> StepRecord:
        """One step row as a record, every column checked (a row torn by a crash, or edited by hand)."""
        name, state, attempts, started, finished, error, outputs = row
        what = f"step {name!r}"
        if state not in {s.value for s in StepState}:
            raise self._damaged(f"{what}: unknown state {state!r}")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise self._damaged(f"{what}: attempts {attempts!r} is not a count")
        for column, value in (("started", started), ("finished", finished)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise self._damaged(f"{what}: {column} {value!r} is not a time")
        if error is not None and not isinstance(error, str):
            raise self._damaged(f"{what}: its error {error!r} is not text")
        return StepRecord(name=str(name), state=StepState(state), attempts=attempts, started=started,
                          finished=finished, error=error or "",
                          outputs=self._json_object(outputs, f"{what}: its outputs"))

    def _json_object(self, text: Any, what: str) -> dict[str, Any]:
        try:
            value = json.loads(text or "{}")
        except (TypeError, ValueError):
            raise self._damaged(f"{what} are not JSON (torn?)") from None
        if not isinstance(value, dict):
            raise self._damaged(f"{what} are not JSON of an object")
        return value

    def load(self) -> dict[str, StepRecord]:
        """Every step of this run as last saved; JournalError naming the file when a row is damaged."""
        rows = self._rows("SELECT name, state, attempts, started, finished, error, outputs FROM steps "
                          "WHERE run_id = ?", (self.run_id,))
        return {str(r[0]): self._record(r) for r in rows}

    def attempts(self) -> list[tuple[str, int]]:
        with self._lock:
            return [(r[0], r[1]) for r in self._db.execute(
                "SELECT name, attempt FROM attempts WHERE run_id = ? ORDER BY started", (self.run_id,))]

    def phase_done(self, name: str, data: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO phases VALUES (?, ?, ?, ?)",
                             (self.run_id, name, time.time(), json.dumps(dict(data or {}), default=str)))

    def phase(self, name: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT data FROM phases WHERE run_id = ? AND name = ?", (self.run_id, name))
        return None if not rows else self._json_object(rows[0][0], f"phase {name!r}: its data")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


EventCallback = Callable[[StepRecord], None]


def execute(tasks: Sequence[Task], *, journal: Journal, concurrency: int = 4, retries: int = 2,
            backoff_s: float = 0.5, timeout_s: float | None = None, on_event: EventCallback | None = None,
            sleep: Callable[[float], None] = time.sleep) -> dict[str, StepRecord]:
    """Run `tasks` (in any order; dependencies decide) and return every step's record."""
    run = _Scheduler(tasks, journal=journal, concurrency=concurrency, retries=retries, backoff_s=backoff_s,
                     timeout_s=timeout_s, on_event=on_event, sleep=sleep)
    return run.run()


class _Scheduler:
    """One run of `execute`: which steps are ready, running, finished; a thread pool does the work."""

    def __init__(self, tasks: Sequence[Task], *, journal: Journal, concurrency: int, retries: int, backoff_s: float,
                 timeout_s: float | None, on_event: EventCallback | None, sleep: Callable[[float], None]) -> None:
        self.tasks, self.journal, self.concurrency = tasks, journal, max(1, concurrency)
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self.on_event, self.sleep = on_event, sleep
        self.records = {t.name: StepRecord(t.name) for t in tasks}
        self._task = {t.name: t for t in tasks}
        for name, previous in journal.load().items():
            if name in self.records and previous.state in FINISHED_OK:
                self.records[name] = previous  # finished before a crash: never run again
            elif name in self.records:
                self.records[name].attempts = previous.attempts
        self.timed_out: set[str] = set()
        self.running: dict[Future[Mapping[str, Any]], str] = {}

    def emit(self, record: StepRecord) -> None:
        self.journal.save(record)
        if self.on_event is not None:
            self.on_event(record)

    def run(self) -> dict[str, StepRecord]:
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            while True:
                progressed = self._start_ready(pool)
                if not self.running:
                    if progressed:
                        continue
                    break
                timed = self.timeout_s or any(self._task[n].timeout_s for n in self.running.values())
                done, _ = wait(list(self.running), timeout=0.2 if timed else None, return_when=FIRST_COMPLETED)
                for future in done:
                    self._collect(future)
                if timed:
                    self._enforce_timeouts()
        finally:
            # A timed-out step's thread cannot be joined in time: do not wait for it.
            pool.shutdown(wait=False, cancel_futures=True)
        for record in self.records.values():
            if record.state == StepState.PENDING:  # unreachable: a dependency is missing
                record.state, record.error = StepState.SKIPPED, "a dependency is not in this run"
                self.emit(record)
        return self.records

    def _start_ready(self, pool: ThreadPoolExecutor) -> bool:
        """Start (or settle) every pending step whose dependencies finished; whether anything changed."""
        progressed = False
        for task in self.tasks:
            record = self.records[task.name]
            if record.state != StepState.PENDING or task.name in self.running.values():
                continue
            deps = [self.records[d] for d in task.depends_on if d in self.records]
            blocked = [d.name for d in deps if d.state in (StepState.FAILED, StepState.SKIPPED)]
            if blocked:
                record.state, record.error = StepState.SKIPPED, f"{', '.join(blocked)} did not finish"
                self.emit(record)
                progressed = True
            elif all(d.state in FINISHED_OK for d in deps) and (task.kind != "run"
                                                                  or len(self.running) < self.concurrency):
                self._start(task, record, pool)
                progressed = True
        return progressed

    def _start(self, task: Task, record: StepRecord, pool: ThreadPoolExecutor) -> None:
        record.start()
        if task.kind == "not-run":
            record.state, record.finished, record.error = StepState.NOT_RUN, record.started, task.reason
            record.elapsed_s = 0.0
        elif task.kind == "rendered":
            try:
                record.outputs = dict(task.run(1))
                record.state = StepState.RENDERED
            except Exception as exc:
                record.state, record.error = StepState.FAILED, str(exc)
            record.finish()
        else:
            record.state = StepState.RUNNING
            self.running[pool.submit(self._attempts, task, record.attempts + 1)] = task.name
        self.emit(record)

    def _attempts(self, task: Task, first_attempt: int) -> Mapping[str, Any]:
        attempt = first_attempt
        while True:
            if task.name in self.timed_out:  # no retry behind the back of a step that already failed
                raise TimeoutError(f"{task.name} timed out")
            self.journal.attempt(task.name, attempt)
            self.records[task.name].attempts = attempt
            # Saved before the work starts: after a crash, the resumed attempt counts on from here and
            # knows it is a rerun (the sandbox and host drills then restore with force).
            self.journal.save(self.records[task.name])
            try:
                with process_groups.step_scope(task.name):
                    return task.run(attempt)
            except Exception as exc:
                self.journal.attempt_failed(task.name, attempt, f"{type(exc).__name__}: {exc}")
                if attempt - first_attempt >= self.retries:
                    raise
                self.sleep(self.backoff_s * 2 ** (attempt - first_attempt))
                attempt += 1

    def _collect(self, future: Future[Mapping[str, Any]]) -> None:
        record = self.records[self.running.pop(future)]
        record.finish()
        try:
            record.outputs = dict(future.result())
            record.state = StepState.SUCCEEDED
        except Exception as exc:
            record.state, record.error = StepState.FAILED, f"{type(exc).__name__}: {exc}"
        self.emit(record)

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for future, name in list(self.running.items()):
            record, task = self.records[name], self._task[name]
            timeout_s = task.timeout_s or self.timeout_s
            if not timeout_s or record.mono_started is None or now - record.mono_started <= timeout_s:
                continue
            waiting = _waiting_for(task)  # asked before its processes are stopped: what it was doing
            # The thread cannot be killed, but the processes it started can: their whole process groups
            # are stopped, the thread's result is ignored and the step fails.
            self.running.pop(future)
            self.timed_out.add(name)
            record.state = StepState.FAILED
            record.finish()
            stopped = process_groups.stop(name, grace_s=5)
            record.error = "".join((
                f"timed out after {timeout_s:g}s",
                f" ({task.timeout_reason})" if task.timeout_reason else "",
                f"; it was waiting for {waiting}" if waiting else "",
                f"; stopped {stopped} process group{'s' if stopped != 1 else ''} it started" if stopped else ""))
            self.emit(record)
            future.cancel()


def _waiting_for(task: Task) -> str:
    if task.waiting_for is None:
        return ""
    try:
        return task.waiting_for()
    except Exception as exc:  # the cluster it would be asked of may be the thing that is stuck
        return f"(what it waited for could not be read: {type(exc).__name__}: {exc})"
