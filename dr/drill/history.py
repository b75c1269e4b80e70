"""Drill history in SQLite: every drill's outcome, RTO, RPO and step durations.

`dr plan` asks it for the median measured duration of each step over recent drills; `dr history`
prints the trend and draws RTO and RPO over time (matplotlib, written as a PNG).
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dr.core.drill_report import DrillReport
from dr.errors import DrError

RECENT = 5
LATEST_TIME = 253_402_300_799.0  # 9999-12-31 23:59:59 UTC, the last moment a datetime can hold


@dataclass(frozen=True)
class HistoryEntry:
    run_id: str
    cluster: str
    kind: str
    finished_at: float
    success: bool
    rto_s: float
    rpo_s: dict[str, float]
    steps_s: dict[str, float]
    rto_target_s: float = 0.0  # 0: not recorded (drills recorded before targets were) or no target


class HistoryDamaged(DrError):
    """history.sqlite cannot be read or written."""


def _damaged(path: Path, exc: Exception) -> HistoryDamaged:
    return HistoryDamaged(f"the drill history {path} is damaged ({exc}); move it aside (mv {path} {path}.damaged) "
                          "and dr starts a new one; every drill's report stays under reports/")


def _time(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= LATEST_TIME:
        raise ValueError(f"{what} {value!r} is not a time")
    return float(value)


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} {value!r} is not a duration")
    return float(value)


def _durations(text: Any, what: str) -> dict[str, float]:
    """A JSON object of durations in seconds (the RPO per backup, the time per step)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise ValueError(f"its {what} are not JSON (torn?)") from None
    if not isinstance(value, dict):
        raise ValueError(f"its {what} are not a JSON object")
    return {str(k): _seconds(v, f"{what} {k!r}") for k, v in value.items()}


def _entry(row: Sequence[Any]) -> HistoryEntry:
    """One drill row, every value checked; ValueError saying what is wrong (an absurd time, torn JSON)."""
    run_id, cluster, kind, finished_at, success, rto_s, rpo, steps, target = row
    return HistoryEntry(str(run_id), str(cluster), str(kind), _time(finished_at, "finished_at"), bool(success),
                        _seconds(rto_s, "rto_s"), _durations(rpo, "RPOs"), _durations(steps, "step times"),
                        _seconds(target or 0, "rto_target_s"))


class History:
    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """The history at `path`; `read_only` opens an existing file without writing anything (`dr history`
        on a read-only state directory, or one it must not change)."""
        self.path = path
        try:
            if read_only:
                self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("CREATE TABLE IF NOT EXISTS drills (run_id TEXT PRIMARY KEY, cluster TEXT, kind TEXT, "
                             "finished_at REAL, success INTEGER, rto_s REAL, rpo TEXT, steps TEXT)")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(drills)")}
            if "rto_target_s" not in columns:  # a history written before targets were recorded
                self._db.execute("ALTER TABLE drills ADD COLUMN rto_target_s REAL DEFAULT 0")
            # The recent drills of a cluster, newest first, without reading the others (`recent_steps`).
            self._db.execute("CREATE INDEX IF NOT EXISTS drills_by_cluster ON drills (cluster, finished_at)")
        except sqlite3.DatabaseError as exc:
            raise _damaged(path, exc) from None

    def record(self, report: DrillReport) -> None:
        rpo = {r.backup: r.measured_s for r in report.rpo if r.measured_s is not None}
        # Only steps that ran and were timed: never an unmeasured 0 s that would shrink the predicted RTO.
        steps = {s.name: s.duration_s for s in report.steps if s.state == "succeeded" and s.duration_s > 0}
        try:
            self._db.execute("INSERT OR REPLACE INTO drills (run_id, cluster, kind, finished_at, success, rto_s, rpo, "
                             "steps, rto_target_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (report.run_id, report.cluster, report.kind, report.verified_at, int(report.success),
                              report.rto_s, json.dumps(rpo), json.dumps(steps), report.rto_target_s))
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from None

    def read(self, cluster: str | None = None) -> tuple[list[HistoryEntry], list[str]]:
        """(every drill, oldest first; what was skipped and why): a row that cannot be a drill (an absurd
        time, torn JSON) is skipped and named, never the end of the reader. HistoryDamaged when the file
        itself cannot be read."""
        try:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(drills)")}
            target = "rto_target_s" if "rto_target_s" in columns else "0"
            query = f"SELECT run_id, cluster, kind, finished_at, success, rto_s, rpo, steps, {target} FROM drills"
            rows = (self._db.execute(query + " WHERE cluster = ? ORDER BY finished_at", (cluster,)) if cluster
                    else self._db.execute(query + " ORDER BY finished_at")).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from None
        entries: list[HistoryEntry] = []
        skipped: list[str] = []
        for row in rows:
            try:
                entries.append(_entry(row))
            except ValueError as exc:
                skipped.append(f"drill {row[0]!r} in {self.path} skipped: {exc}")
        return entries, skipped

    def entries(self, cluster: str | None = None) -> list[HistoryEntry]:
        """Every readable drill, oldest first (`read` also says what was skipped)."""
        return self.read(cluster)[0]

    def recent_steps(self, cluster: str, recent: int = RECENT, kinds: tuple[str, ...] = ("stack", "hosts")
                     ) -> list[dict[str, float]]:
        """The step times of the last `recent` successful drills of these kinds, newest first. Only those
        rows are read and decoded (SQLite walks its index from the newest): a history of 200,000 drills
        costs what one of five does. A row with an absurd time or torn step times is passed over."""
        marks = ", ".join("?" * len(kinds))
        query = (f"SELECT steps FROM drills WHERE cluster = ? AND success = 1 AND kind IN ({marks}) "
                 "AND typeof(finished_at) IN ('integer', 'real') AND finished_at BETWEEN 0 AND ? "
                 "ORDER BY finished_at DESC")
        found: list[dict[str, float]] = []
        try:
            for (steps,) in self._db.execute(query, (cluster, *kinds, LATEST_TIME)):
                try:
                    found.append(_durations(steps, "step times"))
                except ValueError:
                    continue
                if len(found) >= recent:
                    break
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from None
        return found

    def step_medians(self, cluster: str, recent: int = RECENT, kinds: tuple[str, ...] = ("stack", "hosts")
                     ) -> dict[str, int]:
        """Median measured duration per step over the last `recent` successful drills of these kinds, in
        whole seconds. Sandbox drills rebuild toy data on one machine: their timings never predict a
        real rebuild, so by default only drills on real hosts and clusters count."""
        return medians_of(self.recent_steps(cluster, recent, kinds))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def medians_of(drills: Sequence[dict[str, float]]) -> dict[str, int]:
    """The median time of each step over these drills' step times, in whole seconds (at least 1)."""
    durations: dict[str, list[float]] = {}
    for steps in drills:
        for step, seconds in steps.items():
            durations.setdefault(step, []).append(seconds)
    return {step: max(1, round(statistics.median(values))) for step, values in durations.items()}


def record_drill(path: Path, report: DrillReport, say: Callable[[str], None]) -> bool:
    """Add the drill to the history; a damaged history is said, never the end of a drill without its
    verdict (the report files are written already)."""
    try:
        with History(path) as history:
            history.record(report)
    except HistoryDamaged as exc:
        say(f"warning: this drill was not added to the history: {exc}")
        return False
    return True


def render_trend(entries: list[HistoryEntry]) -> str:
    if not entries:
        return "No drills recorded yet: run `dr drill --sandbox`.\n"
    import datetime as dt

    lines = [f"{'finished (UTC)':<20} {'result':<7} {'RTO':>9}  RPO per backup"]
    for e in entries:
        when = dt.datetime.fromtimestamp(e.finished_at, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")
        rpo = ", ".join(f"{b} {s:.0f}s" for b, s in sorted(e.rpo_s.items())) or "-"
        lines.append(f"{when:<20} {'passed' if e.success else 'FAILED':<7} {e.rto_s:>8.1f}s  {rpo}")
    passed = sum(e.success for e in entries)
    lines.append(f"\n{passed} of {len(entries)} drills passed; median RTO "
                 f"{statistics.median(e.rto_s for e in entries):.1f}s")
    return "\n".join(lines) + "\n"


def draw_chart(entries: list[HistoryEntry], path: Path) -> None:
    """RTO per drill kind against its target, and RPO per backup, over time, as a PNG."""
    import datetime as dt

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    figure, (rto_axis, rpo_axis) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for kind in sorted({e.kind for e in entries}):
        mine = [e for e in entries if e.kind == kind]
        when = [dt.datetime.fromtimestamp(e.finished_at, tz=dt.UTC) for e in mine]
        line, = rto_axis.plot(when, [e.rto_s for e in mine], marker="o", label=f"{kind} drills")
        failed = [(m, e.rto_s) for m, e in zip(when, mine, strict=True) if not e.success]
        if failed:
            rto_axis.plot([m for m, _ in failed], [r for _, r in failed], linestyle="none", marker="x",
                          color="#d62728", markersize=10, label=f"{kind}: failed")
        target = next((e.rto_target_s for e in reversed(mine) if e.rto_target_s > 0), 0.0)
        if target:
            rto_axis.axhline(target, color=line.get_color(), linestyle="--", linewidth=1,
                             label=f"{kind} RTO target {target:.0f} s")
    rto_axis.set_ylabel("RTO (s)")
    rto_axis.set_ylim(bottom=0)
    rto_axis.set_title("DR drills: recovery time against its target, and data lost")
    rto_axis.legend(fontsize=8)
    for backup in sorted({b for e in entries for b in e.rpo_s}):
        points = [(dt.datetime.fromtimestamp(e.finished_at, tz=dt.UTC), e.rpo_s[backup]) for e in entries
                  if backup in e.rpo_s]
        rpo_axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=backup)
    rpo_axis.set_ylabel("RPO (s)")
    rpo_axis.set_ylim(bottom=0)
    if any(e.rpo_s for e in entries):
        rpo_axis.legend(fontsize=8)
    first, last = (dt.datetime.fromtimestamp(t, tz=dt.UTC) for t in (entries[0].finished_at, entries[-1].finished_at))
    pad = max((last - first) * 0.05, dt.timedelta(hours=1))  # one drill: a day around it, not years
    rpo_axis.set_xlim(first - pad, last + pad)
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    rpo_axis.xaxis.set_major_locator(locator)
    rpo_axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    figure.tight_layout()
    if not path.parent.is_dir():  # the chart goes where the user said; dr does not invent directories
        raise FileNotFoundError(2, "no such directory", str(path.parent))
    import io

    from dr.owned_paths import write_owned

    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=100)
    plt.close(figure)
    write_owned(path, image.getvalue())  # never through a link planted at the chart's name
