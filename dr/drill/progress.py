"""Live progress of a run: a rich table of steps with their state and elapsed time (on a terminal),
or one plain line per change (in CI and logs)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from dr.drill.executor import StepRecord, StepState

_STYLE = {StepState.SUCCEEDED: "green", StepState.FAILED: "bold red", StepState.SKIPPED: "yellow",
          StepState.RUNNING: "cyan", StepState.RENDERED: "blue", StepState.NOT_RUN: "dim"}


class LiveProgress:
    def __init__(self, steps: list[str], title: str) -> None:
        self.records = {name: StepRecord(name) for name in steps}
        self.title = title
        self.live = Live(get_renderable=self._table, console=Console(stderr=True), refresh_per_second=4)

    def __call__(self, record: StepRecord) -> None:
        self.records[record.name] = StepRecord(record.name, record.state, record.attempts, record.started,
                                               record.finished, record.error)

    def _table(self) -> Table:
        table = Table(title=self.title, expand=False)
        for column in ("step", "state", "attempts", "elapsed"):
            table.add_column(column)
        now = time.time()
        for record in self.records.values():
            elapsed = (record.finished or now) - record.started if record.started else 0.0
            style = _STYLE.get(record.state, "")
            table.add_row(record.name, f"[{style}]{record.state.value}[/]" if style else record.state.value,
                          str(record.attempts or ""), f"{elapsed:.1f}s" if record.started else "")
        return table

    def __enter__(self) -> LiveProgress:
        self.live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.live.__exit__(kind, value, traceback)


def is_terminal(stream: Any = None) -> bool:
    """Whether `stream` (default: the current sys.stderr, looked up at the call) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


HEARTBEAT_S = 15.0  # a plain log says which steps are still running at least this often


def plain_progress(stream: Any = None, *, heartbeat_s: float = HEARTBEAT_S) -> Callable[[StepRecord], None]:
    """One line per step state to `stream` (default: sys.stderr as it is when a line is printed), and every
    `heartbeat_s` while steps run, a line naming them and how long they have run: a log never goes quiet
    for long, even during a 30-second restore."""
    running: dict[str, float] = {}
    lock = threading.Lock()
    started = threading.Event()

    def out() -> Any:
        return sys.stderr if stream is None else stream

    def beat() -> None:
        while True:
            time.sleep(heartbeat_s)
            with lock:  # printed under the lock: never a heartbeat naming a step after its last line
                now = time.time()
                names = [f"{name} ({now - since:.0f}s)" for name, since in running.items()]
                if names:
                    print(f"{time.strftime('%H:%M:%S')} still running: {', '.join(names)}", file=out(), flush=True)

    def show(record: StepRecord) -> None:
        extra = f" ({record.duration_s:.1f}s)" if record.finished else ""
        detail = f": {record.error}" if record.error and record.state != StepState.NOT_RUN else ""
        with lock:
            if record.state == StepState.RUNNING:
                running[record.name] = record.started or time.time()
            else:
                running.pop(record.name, None)
            print(f"{time.strftime('%H:%M:%S')} {record.name:<26} {record.state.value}{extra}{detail}",
                  file=out(), flush=True)
        if not started.is_set():
            started.set()
            threading.Thread(target=beat, name="dr-progress-heartbeat", daemon=True).start()
    return show
