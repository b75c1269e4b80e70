"""Drill history in SQLite: every drill's outcome, RTO, RPO and step durations.

`dr plan` asks it for the median measured duration of each step over recent drills; `dr history`
prints the trend and draws RTO and RPO over time (matplotlib, written as a PNG).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dr.core.drill_report import DrillReport
from dr.errors import DrError

RECENT = 5


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


class HistoryDamaged(DrError):
    """history.sqlite cannot be read or written."""


def _damaged(path: Path, exc: Exception) -> HistoryDamaged:
    return HistoryDamaged(f"the drill history {path} is damaged ({exc}); move it aside (mv {path} {path}.damaged) "
                          "and dr starts a new one; every drill's report stays under reports/")


class History:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("CREATE TABLE IF NOT EXISTS drills (run_id TEXT PRIMARY KEY, cluster TEXT, kind TEXT, "
                             "finished_at REAL, success INTEGER, rto_s REAL, rpo TEXT, steps TEXT)")
        except sqlite3.DatabaseError as exc:
            raise _damaged(path, exc) from None

    def record(self, report: DrillReport) -> None:
        rpo = {r.backup: r.measured_s for r in report.rpo if r.measured_s is not None}
        # Only steps that ran and were timed: never an unmeasured 0 s that would shrink the predicted RTO.
        steps = {s.name: s.duration_s for s in report.steps if s.state == "succeeded" and s.duration_s > 0}
        try:
            self._db.execute("INSERT OR REPLACE INTO drills VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (report.run_id, report.cluster, report.kind, report.verified_at, int(report.success),
                              report.rto_s, json.dumps(rpo), json.dumps(steps)))
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from None

    def entries(self, cluster: str | None = None) -> list[HistoryEntry]:
        query = "SELECT run_id, cluster, kind, finished_at, success, rto_s, rpo, steps FROM drills"
        try:
            rows = (self._db.execute(query + " WHERE cluster = ? ORDER BY finished_at", (cluster,)) if cluster
                    else self._db.execute(query + " ORDER BY finished_at")).fetchall()
            return [HistoryEntry(str(r[0]), str(r[1]), str(r[2]), float(r[3]), bool(r[4]), float(r[5]),
                                 dict(json.loads(r[6])), dict(json.loads(r[7]))) for r in rows]
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            raise _damaged(self.path, exc) from None

    def step_medians(self, cluster: str, recent: int = RECENT, kinds: tuple[str, ...] = ("stack", "hosts")
                     ) -> dict[str, int]:
        """Median measured duration per step over the last `recent` successful drills of these kinds, in
        whole seconds. Sandbox drills rebuild toy data on one machine: their timings never predict a
        real rebuild, so by default only drills on real hosts and clusters count."""
        durations: dict[str, list[float]] = {}
        for entry in [e for e in self.entries(cluster) if e.success and e.kind in kinds][-recent:]:
            for step, seconds in entry.steps_s.items():
                durations.setdefault(step, []).append(seconds)
        return {step: max(1, round(statistics.median(values))) for step, values in durations.items()}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    """RTO and RPO per backup over time, as a PNG."""
    import datetime as dt

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    when = [dt.datetime.fromtimestamp(e.finished_at, tz=dt.UTC) for e in entries]
    figure, (rto_axis, rpo_axis) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    rto_axis.plot(when, [e.rto_s for e in entries], marker="o", color="#1f77b4")
    for moment, entry in zip(when, entries, strict=True):
        if not entry.success:
            rto_axis.plot([moment], [entry.rto_s], marker="x", color="#d62728", markersize=10)
    rto_axis.set_ylabel("RTO (s)")
    rto_axis.set_title("DR drills: recovery time and data lost")
    for backup in sorted({b for e in entries for b in e.rpo_s}):
        points = [(m, e.rpo_s[backup]) for m, e in zip(when, entries, strict=True) if backup in e.rpo_s]
        rpo_axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=backup)
    rpo_axis.set_ylabel("RPO (s)")
    rpo_axis.legend(fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    if not path.parent.is_dir():  # the chart goes where the user said; dr does not invent directories
        raise FileNotFoundError(2, "no such directory", str(path.parent))
    import io

    from dr.owned_paths import write_owned

    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=100)
    plt.close(figure)
    write_owned(path, image.getvalue())  # never through a link planted at the chart's name
