"""A sandbox drill's verdict says what it was and how much ran for real, its metrics carry `kind`, and it
never satisfies the audit's drill-recency check (issue 21, item 9): it rehearses dr on stand-ins."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dr.core.drill_report import CheckResult, DrillReport, StepResult, to_prometheus, verdict
from dr.drill.history import History
from tests.audit.test_sources import FIXTURE
from tests.conftest import EXAMPLE_GRAPH


def drill(kind: str, *, finished: float) -> DrillReport:
    return DrillReport(run_id=f"{kind}-1", cluster="homelab", kind=kind, started_at=finished - 60,
                       disaster_at=finished - 50, verified_at=finished, rto_target_s=0,
                       steps=(StepResult("etcd", "etcd", "succeeded", 1, 3.0),
                              StepResult("gitea", "app", "applied", 1, 2.0),
                              StepResult("k3s-agents", "control-plane", "not-run", 0, 0.0),
                              StepResult("cilium", "cni", "rendered", 0, 0.0)),
                       checks=(CheckResult("etcd", "etcd", True, "ok"),), rpo=())


def test_the_verdict_says_the_kind_and_what_did_not_run() -> None:
    line = verdict(drill("sandbox", finished=1000.0))
    assert line.startswith("sandbox drill sandbox-1: PASSED; 2 of 4 steps ran for real (1 not-run, 1 rendered)")
    assert "not a drill of this cluster's rebuild" in line
    assert "not a drill" not in verdict(drill("stack", finished=1000.0))


def test_every_series_carries_the_kind_and_the_step_counts() -> None:
    prom = to_prometheus(drill("sandbox", finished=1000.0))
    series = [line for line in prom.splitlines() if line and not line.startswith("#")]
    assert series and all('kind="sandbox"' in line for line in series)
    assert 'dr_drill_steps{cluster="homelab",kind="sandbox",state="rendered"} 1' in prom


def audit_recency(tmp_path: Path, run_cli, *kinds: str) -> list[dict[str, str]]:
    state = tmp_path / "state"
    state.mkdir()
    history = History(state / "history.sqlite")
    for kind in kinds:
        history.record(drill(kind, finished=time.time() - 60))
    history.close()
    status = tmp_path / "k8s.json"
    status.write_text(json.dumps(FIXTURE))
    result = run_cli("audit", "--graph", str(EXAMPLE_GRAPH), "--k8s-status", str(status), "--json",
                     "--state-dir", str(state))
    return [f for f in json.loads(result.out)["findings"] if f["check"] == "drill-recency"]


def test_a_recent_passed_sandbox_drill_does_not_satisfy_drill_recency(tmp_path: Path, run_cli) -> None:
    (finding,) = audit_recency(tmp_path, run_cli, "sandbox")
    assert "only 1 sandbox drill(s) recorded" in finding["message"] and "dr drill --stack" in finding["fix"]


def test_a_recent_passed_stack_drill_does(tmp_path: Path, run_cli) -> None:
    assert audit_recency(tmp_path, run_cli, "sandbox", "stack") == []
