"""A check that could not run is not a pass (issue 21, item 7): a damaged history, an unreachable cluster
and a backup dated in the future are said; nothing ends in "internal error"."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from dr.audit.checks import AuditInput, BackupState, audit
from dr.core.backups import BackupPoint
from dr.core.spec import GraphSpec
from dr.drill.history import record_drill
from tests.audit.test_drill_kinds import drill
from tests.conftest import EXAMPLE_GRAPH


@pytest.fixture
def damaged_state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    (state / "history.sqlite").write_bytes(b"this is not a database, it is a scribble" * 100)
    return state


def test_plan_warns_and_uses_the_graphs_estimates(damaged_state: Path, run_cli) -> None:
    result = run_cli("plan", "--graph", str(EXAMPLE_GRAPH), "--state-dir", str(damaged_state))
    assert result.code == 0 and "Predicted RTO" in result.out
    assert "is damaged" in result.err and "internal error" not in result.err


def test_history_says_the_file_is_damaged_and_how_to_go_on(damaged_state: Path, run_cli) -> None:
    result = run_cli("history", "--state-dir", str(damaged_state))
    assert result.code != 0
    assert "is damaged" in result.err and "mv " in result.err and "internal error" not in result.err


def test_audit_reports_the_drill_check_as_unchecked(damaged_state: Path, run_cli, tmp_path: Path) -> None:
    from tests.audit.test_sources import FIXTURE

    status = tmp_path / "k8s.json"
    status.write_text(json.dumps(FIXTURE))
    result = run_cli("audit", "--graph", str(EXAMPLE_GRAPH), "--k8s-status", str(status), "--json",
                     "--state-dir", str(damaged_state))
    (recency,) = [f for f in json.loads(result.out)["findings"] if f["check"] == "drill-recency"]
    assert recency["severity"] == "unchecked" and "is damaged" in recency["message"]
    assert "internal error" not in result.err


def test_a_drill_with_a_damaged_history_still_has_its_verdict(damaged_state: Path) -> None:
    said: list[str] = []
    assert record_drill(damaged_state / "history.sqlite", drill("stack", finished=1000.0), said.append) is False
    assert said and "was not added to the history" in said[0]


def test_audit_without_a_cluster_says_what_it_did_not_check(tmp_path: Path, run_cli,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl: no cluster to ask
    state = tmp_path / "state"
    result = run_cli("audit", "--graph", str(EXAMPLE_GRAPH), "--state-dir", str(state), "--ignore",
                     "drill-recency")
    assert result.code == 1, "checks that could not run are not a pass"
    assert "No findings" not in result.out
    assert "unchecked" in result.out and "the cluster was not reachable" in result.out
    for backup in ("gitea-db", "gitea-data", "grafana-data"):
        assert backup in result.out


def test_a_backup_dated_in_the_future_is_a_finding() -> None:
    spec = GraphSpec.from_yaml(
        "cluster: lab\nbackups:\n  vol: {tool: restic, repo: /r, schedule: '@daily', retention: {daily: 7}, "
        "rpo: 1d}\ncomponents:\n  os: {layer: os}\n", path="g.yaml")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    future = BackupState(points=(BackupPoint(id="s1", time=now + dt.timedelta(hours=3), size_bytes=10, file_count=1),))
    found = audit(AuditInput(spec=spec, states={"vol": future}, now=now, drills_recorded=1, last_successful_drill=now))
    assert [(f.check, f.severity) for f in found] == [("freshness", "high")]
    assert "in the future" in found[0].message


def test_a_secrets_file_others_can_read_gets_a_loud_warning_and_no_value(tmp_path: Path, run_cli) -> None:
    from tests.audit.test_sources import FIXTURE

    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("restic_password: hunter2-canary\n")
    status = tmp_path / "k8s.json"
    status.write_text(json.dumps(FIXTURE))
    args = ("audit", "--graph", str(EXAMPLE_GRAPH), "--k8s-status", str(status), "--secrets", str(secrets),
            "--state-dir", str(tmp_path / "state"))
    secrets.chmod(0o644)
    loud = run_cli(*args)
    assert "is readable by others (mode 0644)" in loud.err and f"chmod 600 {secrets}" in loud.err
    assert "hunter2-canary" not in loud.err + loud.out
    secrets.chmod(0o600)
    assert "readable by" not in run_cli(*args).err
