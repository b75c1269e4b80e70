"""Damaged state and history: a journal with a torn JSON value or a state no dr writes is a JournalError
naming the file and what is wrong (as a garbage file already was), never an internal error; a history row
with an absurd time is skipped and said, not the end of `dr history` or `dr audit`; a drill dated years
ahead proves no recency; and `dr plan` reads only the recent rows it needs from a long history."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import types
from pathlib import Path

import pytest

from dr.audit.checks import AuditInput, audit
from dr.core.spec import GraphSpec
from dr.drill.executor import Journal, JournalError, StepRecord, StepState
from dr.drill.history import RECENT, History
from tests.audit.test_drill_kinds import drill
from tests.audit.test_sources import FIXTURE
from tests.conftest import EXAMPLE_GRAPH


def journal_with(tmp_path: Path, sql: str, *params: object) -> Path:
    path = tmp_path / "journal.sqlite"
    with Journal(path, "run-1") as journal:
        journal.save(StepRecord(name="etcd", state=StepState.SUCCEEDED, attempts=1, started=1.0, finished=2.0,
                                outputs={"restored": "snap-1"}))
        journal.phase_done("disaster", {"at": 12.5})
    with sqlite3.connect(path) as db:
        db.execute(sql, params)
    return path


@pytest.mark.parametrize(("sql", "params", "what"), [
    ("UPDATE steps SET outputs = ?", ('{"restored": "sn',), r"step 'etcd': its outputs are not JSON"),
    ("UPDATE steps SET outputs = ?", ('["a list"]',), r"step 'etcd': its outputs are not JSON"),
    ("UPDATE steps SET state = ?", ("exploded",), r"step 'etcd': unknown state 'exploded'"),
    ("UPDATE steps SET attempts = ?", ("many",), r"step 'etcd': attempts 'many' is not a count"),
    ("UPDATE steps SET started = ?", ("yesterday",), r"step 'etcd': started 'yesterday' is not a time"),
])
def test_a_damaged_step_row_is_a_journal_error_naming_the_file(tmp_path: Path, sql: str, params: tuple[object],
                                                               what: str) -> None:
    path = journal_with(tmp_path, sql, *params)
    with Journal(path, "run-1") as journal, pytest.raises(JournalError) as damaged:
        journal.load()
    message = str(damaged.value)
    assert str(path) in message and "damaged" in message and "move it aside" in message
    assert pytest.importorskip("re").search(what, message), message


def test_a_torn_phase_is_a_journal_error_naming_the_file(tmp_path: Path) -> None:
    path = journal_with(tmp_path, "UPDATE phases SET data = ?", '{"at": 12')
    with Journal(path, "run-1") as journal, pytest.raises(JournalError, match=r"phase 'disaster'") as damaged:
        journal.phase("disaster")
    assert str(path) in str(damaged.value)


def test_resume_of_a_torn_journal_is_a_clear_error_not_an_internal_one(tmp_path: Path) -> None:
    from dr.drill.run import DrillPaths, _run_to_continue

    paths = DrillPaths(tmp_path)
    paths.current.write_text("run-1")
    journal_with(tmp_path, "UPDATE phases SET data = ?", '{"at": 12')
    assert paths.journal == tmp_path / "journal.sqlite"
    with pytest.raises(JournalError, match="is damaged"):
        _run_to_continue("run-1", resume=True, paths=paths, say=lambda _: None, abandon=lambda _: None)


def history_with(tmp_path: Path, *reports_and_rows: object) -> Path:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    path = state / "history.sqlite"
    with History(path) as history:
        for item in reports_and_rows:
            if isinstance(item, tuple):
                history._db.execute("INSERT INTO drills (run_id, cluster, kind, finished_at, success, rto_s, rpo, "
                                    "steps, rto_target_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", item)
            else:
                history.record(item)  # type: ignore[arg-type]
    return state


ABSURD = ("absurd-1", "homelab", "stack", 1e20, 1, 30.0, "{}", '{"etcd": 3.0}', 0)
TORN = ("torn-1", "homelab", "stack", 1500.0, 1, 30.0, '{"gitea-db": 4', '{"etcd": 3.0}', 0)


def test_dr_history_skips_a_row_with_an_absurd_time_and_says_so(tmp_path: Path, run_cli) -> None:
    state = history_with(tmp_path, drill("stack", finished=1000.0), ABSURD, TORN)
    result = run_cli("history", "--state-dir", str(state))
    assert result.code == 0, result.err
    assert "internal error" not in result.err and "Value too large" not in result.err
    assert "1 of 1 drills passed" in result.out
    assert "absurd-1" in result.err and "torn-1" in result.err and "skipped" in result.err


def test_dr_audit_skips_a_row_with_an_absurd_time_and_says_so(tmp_path: Path, run_cli) -> None:
    now = dt.datetime.now(dt.UTC).timestamp()
    state = history_with(tmp_path, drill("stack", finished=now - 3600), ABSURD)
    status = tmp_path / "k8s.json"
    status.write_text(json.dumps(FIXTURE))
    result = run_cli("audit", "--graph", str(EXAMPLE_GRAPH), "--k8s-status", str(status), "--json",
                     "--state-dir", str(state))
    assert "internal error" not in result.err and "Value too large" not in result.err, result.err
    findings = json.loads(result.out)["findings"]
    assert not [f for f in findings if f["check"] == "drill-recency"], "the drill an hour ago is recent"
    assert "absurd-1" in result.err and "skipped" in result.err


SPEC = GraphSpec.from_yaml("cluster: lab\ncomponents:\n  a: {layer: app, estimate: 1m}\n", path="g.yaml")


def test_a_drill_dated_years_ahead_does_not_prove_recency_and_is_said() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    ahead = now + dt.timedelta(days=3 * 365)
    found = audit(AuditInput(spec=SPEC, states={}, now=now, drills_recorded=1, last_successful_drill=ahead))
    (recency,) = [f for f in found if f.check == "drill-recency"]
    assert recency.severity == "high" and "in the future" in recency.message, recency
    assert "clock" in recency.fix
    skewed = audit(AuditInput(spec=SPEC, states={}, now=now, drills_recorded=1,
                              last_successful_drill=now + dt.timedelta(seconds=60)))
    assert not [f for f in skewed if f.check == "drill-recency"], "a minute of clock skew is tolerated"


def test_an_older_drill_still_counts_beside_one_dated_in_the_future(tmp_path: Path, run_cli) -> None:
    now = dt.datetime.now(dt.UTC).timestamp()
    ahead = drill("stack", finished=now + 3 * 365 * 86400)
    recent = drill("hosts", finished=now - 3600)
    state = history_with(tmp_path, ahead, recent)
    status = tmp_path / "k8s.json"
    status.write_text(json.dumps(FIXTURE))
    result = run_cli("audit", "--graph", str(EXAMPLE_GRAPH), "--k8s-status", str(status), "--json",
                     "--state-dir", str(state))
    recency = [f for f in json.loads(result.out)["findings"] if f["check"] == "drill-recency"]
    assert len(recency) == 1 and "in the future" in recency[0]["message"], recency
    assert "old (limit" not in recency[0]["message"], "the drill an hour ago proves recency"


def test_plan_decodes_only_the_recent_rows_of_a_long_history(tmp_path: Path, run_cli,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [(f"run-{n}", "homelab", "stack" if n % 3 else "sandbox", 1000.0 + n, int(n % 7 != 0), 60.0,
             json.dumps({"gitea-db": 5.0}), json.dumps({"etcd": 100.0 + n % 5}), 0) for n in range(20_000)]
    state = history_with(tmp_path)
    with sqlite3.connect(state / "history.sqlite") as db:
        db.executemany("INSERT INTO drills (run_id, cluster, kind, finished_at, success, rto_s, rpo, steps, "
                       "rto_target_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    import dr.drill.history as history_module

    decoded: list[str] = []

    def counting_loads(text: str) -> object:
        decoded.append(text)
        return json.loads(text)

    monkeypatch.setattr(history_module, "json", types.SimpleNamespace(loads=counting_loads, dumps=json.dumps))
    result = run_cli("plan", "--graph", str(EXAMPLE_GRAPH), "--state-dir", str(state), "--json")
    assert result.code == 0, result.err
    assert f"the median of the last {RECENT} successful drill(s)" in result.err
    assert len(decoded) <= 2 * RECENT, f"{len(decoded)} JSON values decoded for {RECENT} drills' medians"
    recent = [r for r in rows if r[2] != "sandbox" and r[4]][-RECENT:]
    expected = round(sorted(json.loads(r[7])["etcd"] for r in recent)[RECENT // 2])
    plan = json.loads(result.out)
    (etcd,) = [s for s in plan["steps"] if s["name"] == "etcd"]
    assert etcd["estimate_s"] == expected, etcd


def test_a_dead_postgres_is_not_waited_for_on_the_way_out(tmp_path: Path) -> None:
    """After a stop signal the sandbox's PostgreSQL may already be dead, its postmaster a zombie dr inherited as
    subreaper: `pg_ctl stop` took it for running and waited a full minute. The dead server is collected and
    not waited for."""
    import os
    import subprocess

    from dr.drill.sandbox_pg import PgSandbox

    zombie = subprocess.Popen(["true"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet collected: a zombie
    data = tmp_path / "pgdata"
    data.mkdir()
    (data / "postmaster.pid").write_text(f"{zombie.pid}\n{data}\n")
    PgSandbox(base=tmp_path, port=1).stop()
    try:
        os.waitpid(zombie.pid, os.WNOHANG)
        collected = False
    except ChildProcessError:
        collected = True
    assert collected, "the dead postmaster was collected"
    zombie.returncode = 0  # collected by stop(): Popen must not wait for it again
