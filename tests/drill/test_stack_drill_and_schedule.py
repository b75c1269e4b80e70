"""Drills on a real test cluster at the Automation API boundary, schedules, history, and reports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml

from dr.core.drill_report import CheckResult, DrillReport, RpoResult, StepResult, to_junit, to_markdown, to_prometheus
from dr.drill.history import History
from dr.drill.run import DrillPaths, stack_drill
from dr.drill.schedule import cronjob, on_calendar, write_schedule
from dr.graph_file import load_graph_file
from dr.kube.validate import validate_object
from tests.conftest import EXAMPLE_GRAPH


class FakeStack:
    def __init__(self, *, fail_up: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_up = fail_up

    def up(self, on_output) -> dict[str, Any]:
        self.calls.append("up")
        on_output("Updating (drill)\n")
        if self.fail_up:
            raise RuntimeError("helm release cilium timed out")
        return {"recovery_order": ["os-prepare"], "mode": "drill"}

    def destroy(self, on_output) -> None:
        self.calls.append("destroy")


def read(path: Path) -> str:
    return path.read_text()


def test_stack_drill_ups_verifies_and_destroys(tmp_path: Path) -> None:
    stack = FakeStack()
    seen: list[dict[str, Any]] = []

    def verify(plan, outputs):
        seen.append(dict(outputs))
        return [CheckResult("gitea", "http", True, "answered 200")]

    report, files = stack_drill(load_graph_file(EXAMPLE_GRAPH), stack=stack, verify=verify,
                                paths=DrillPaths(tmp_path), read_text=read, say=lambda line: None)
    assert stack.calls == ["up", "destroy"]
    assert seen == [{"recovery_order": ["os-prepare"], "mode": "drill"}]
    assert report.success and report.kind == "stack"
    assert json.loads(files["json"].read_text())["success"] is True


def test_stack_drill_keeps_the_stack_when_asked_and_fails_on_a_failed_check(tmp_path: Path) -> None:
    stack = FakeStack()
    report, _ = stack_drill(load_graph_file(EXAMPLE_GRAPH), stack=stack, paths=DrillPaths(tmp_path), read_text=read,
                            verify=lambda plan, outputs: [CheckResult("gitea", "http", False, "answered 502")],
                            keep=True, say=lambda line: None)
    assert stack.calls == ["up"]
    assert not report.success


def test_failed_up_is_a_failed_drill_and_the_stack_is_still_destroyed(tmp_path: Path) -> None:
    stack = FakeStack(fail_up=True)
    report, _ = stack_drill(load_graph_file(EXAMPLE_GRAPH), stack=stack, verify=lambda plan, outputs: [],
                            paths=DrillPaths(tmp_path), read_text=read, say=lambda line: None)
    assert stack.calls == ["up", "destroy"]
    assert not report.success and "helm release cilium timed out" in report.steps[0].detail


def test_an_interrupted_stack_drill_still_destroys_the_stack(tmp_path: Path) -> None:
    stack = FakeStack()

    def interrupted(plan, outputs):  # Ctrl-C (or SIGTERM, which dr turns into it) during verification
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stack_drill(load_graph_file(EXAMPLE_GRAPH), stack=stack, verify=interrupted, paths=DrillPaths(tmp_path),
                    read_text=read, say=lambda line: None)
    assert stack.calls == ["up", "destroy"]


def test_cronjob_manifest_validates_and_timer_matches_the_cron(tmp_path: Path) -> None:
    manifest = cronjob("0 3 * * 0", image="registry.example.com/dr:0.1.0")
    assert validate_object(manifest, kubernetes="1.30") == []
    assert manifest["spec"]["schedule"] == "0 3 * * 0"
    files = write_schedule("0 3 * * 0", out=tmp_path, image="registry.example.com/dr:0.1.0", workdir="/opt/dr")
    assert sorted(p.name for p in files) == ["dr-drill-cronjob.yaml", "dr-drill.service", "dr-drill.timer"]
    documents = list(yaml.safe_load_all((tmp_path / "dr-drill-cronjob.yaml").read_text()))
    # Everything the CronJob names exists in the same file but the Secret, whose command the header gives.
    assert [d["kind"] for d in documents] == ["Namespace", "ServiceAccount", "PersistentVolumeClaim", "CronJob"]
    assert all(validate_object(d, kubernetes="1.30") == [] for d in documents)
    pod = documents[-1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == documents[1]["metadata"]["name"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == documents[2]["metadata"]["name"]
    assert "kubectl -n dr create secret generic dr-drill" in (tmp_path / "dr-drill-cronjob.yaml").read_text()
    assert "OnCalendar=Sun *-*-* 03:00:00" in (tmp_path / "dr-drill.timer").read_text()
    assert 'ExecStart="/opt/dr/.venv/bin/dr" drill --sandbox' in (tmp_path / "dr-drill.service").read_text()


@pytest.mark.parametrize(("cron", "calendar"), [
    ("*/15 * * * *", "*-*-* *:0/15:00"), ("30 2 1 * *", "*-*-1 02:30:00"),
    ("0 */6 * * 1-5", "Mon..Fri *-*-* 0/6:00:00"), ("0 3 * * mon,fri", "Mon,Fri *-*-* 03:00:00")])
def test_cron_to_on_calendar(cron: str, calendar: str) -> None:
    assert on_calendar(cron) == calendar


def test_without_an_image_no_cronjob_is_written_and_it_says_so(run_cli, tmp_path: Path) -> None:
    """The default used to be a placeholder image (ghcr.io/example/dr:0.1.0), written without a word."""
    result = run_cli("schedule", "--cron", "0 3 * * 0", "--out", str(tmp_path), "--workdir", "/opt/dr")
    assert result.code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dr-drill.service", "dr-drill.timer"]
    assert "no --image: the Kubernetes CronJob was not written" in result.err


def test_bad_cron_is_a_usage_error(run_cli) -> None:
    result = run_cli("schedule", "--cron", "every sunday", "--out", "/tmp/never")
    assert result.code == 2 and "five fields" in result.err


def report(run_id: str, *, etcd_s: float, success: bool = True, finished: float = 1000.0,
           kind: str = "stack") -> DrillReport:
    return DrillReport(run_id=run_id, cluster="homelab", kind=kind, started_at=finished - 60,
                       disaster_at=finished - 40, verified_at=finished, rto_target_s=7200,
                       steps=(StepResult("etcd", "etcd", "succeeded" if success else "failed", 1, etcd_s),
                              StepResult("os-prepare", "os", "succeeded", 1, 3.0)),
                       checks=(CheckResult("etcd", "etcd", success, "300 keys"),),
                       rpo=(RpoResult("etcd-snapshots", 5.0, 25200),))


def test_plan_uses_the_median_of_recent_drills_and_says_so(tmp_path: Path, run_cli) -> None:
    history = History(tmp_path / "history.sqlite")
    for i, seconds in enumerate([20.0, 40.0, 30.0]):
        history.record(report(f"r{i}", etcd_s=seconds, finished=1000.0 + i))
    history.record(report("failed", etcd_s=900.0, success=False, finished=2000.0))
    # A sandbox drill's toy timings never replace the graph's estimates of a real rebuild.
    history.record(report("toy", etcd_s=1.0, finished=3000.0, kind="sandbox"))
    assert history.step_medians("homelab") == {"etcd": 30, "os-prepare": 3}
    history.close()
    result = run_cli("plan", "--graph", str(EXAMPLE_GRAPH), "--json", "--state-dir", str(tmp_path))
    steps = {s["name"]: s for s in json.loads(result.out)["steps"]}
    assert steps["etcd"]["estimate_s"] == 30 and steps["os-prepare"]["estimate_s"] == 3
    assert steps["k3s-server"]["estimate_s"] == 360, "steps without measurements keep the graph's estimate"
    assert "median of the last 3 successful drill(s)" in result.err


def test_report_formats_agree_on_a_failed_drill() -> None:
    failed = report("r9", etcd_s=12.0, success=False)
    assert not failed.success
    suite = ET.fromstring(to_junit(failed).split("\n", 1)[1])
    assert suite.get("failures") == "2"
    assert 'dr_drill_success{cluster="homelab",kind="stack"} 0' in to_prometheus(failed)
    assert "FAILED" in to_markdown(failed).splitlines()[0]


def test_readiness_checks_wait_for_every_restore_object_through_kubectl() -> None:
    import subprocess

    from dr.drill.checks import readiness_checks
    from dr.drill.run import planned

    _, resources = planned(load_graph_file(EXAMPLE_GRAPH), read)
    calls: list[list[str]] = []

    def fake_kubectl(argv: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        failing = "persistentvolumeclaim/vmsingle-data" in argv
        return subprocess.CompletedProcess(argv, 1 if failing else 0, stdout="" if failing else "condition met",
                                           stderr="timed out waiting for the condition" if failing else "")

    checks = readiness_checks(resources, run=fake_kubectl)
    assert ["kubectl", "wait", "cluster.postgresql.cnpg.io/gitea-db", "--for=condition=Ready", "--timeout=600s",
            "-n", "gitea"] in calls
    assert ["kubectl", "wait", "restore.velero.io/grafana-restore", "--for=jsonpath={.status.phase}=Completed",
            "--timeout=600s", "-n", "velero"] in calls
    failed = [c for c in checks if not c.ok]
    assert [(c.step, c.kind, c.detail) for c in failed] == [
        ("vm-data-restore", "ready PersistentVolumeClaim", "timed out waiting for the condition")]


def test_junit_counts_every_skipped_case_and_uses_an_iso_timestamp() -> None:
    base = report("r10", etcd_s=1.0)
    skipping = DrillReport(**{**base.__dict__, "steps": (
        StepResult("a", "os", "not-run", 0, 0.0, "needs a machine"), StepResult("b", "app", "rendered", 1, 0.1),
        StepResult("c", "app", "skipped", 0, 0.0, "a did not finish"), StepResult("d", "os", "succeeded", 1, 2.0))})
    suite = ET.fromstring(to_junit(skipping).split("\n", 1)[1])
    assert suite.get("skipped") == str(len(suite.findall("testcase/skipped"))) == "3"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp", ""))


def test_audit_textfile_escapes_label_values() -> None:
    from dr.audit.checks import to_prometheus as audit_prometheus

    text = audit_prometheus([], 'lab "blue"\\\nnext')
    assert 'cluster="lab \\"blue\\"\\\\\\nnext"' in text
    assert "\n" not in text.split("\n", 2)[2].split("} ")[0]


@pytest.mark.parametrize(("cron", "message"), [("99 99 * * *", "out of range"), ("0 3 32 * *", "day of month 32"),
                                               ("0 3 * 13 *", "month 13"), ("0 3 * * 8", "weekday 8")])
def test_schedule_refuses_an_impossible_time(cron: str, message: str) -> None:
    from dr.drill.schedule import on_calendar
    from dr.errors import UsageError

    with pytest.raises(UsageError, match=message):
        on_calendar(cron)


def test_systemd_unit_quotes_the_workdir_and_refuses_injected_directives() -> None:
    from dr.drill.schedule import systemd_units
    from dr.errors import UsageError

    service = systemd_units("0 3 * * 0", workdir="/opt/my dr")["dr-drill.service"]
    assert ('ExecStart="/opt/my dr/.venv/bin/dr" drill --sandbox --graph "stacks/cluster.yaml" '
            '--state-dir "/opt/my dr/.dr"') in service
    assert "KillMode=mixed" in service
    with pytest.raises(UsageError, match="without control characters"):
        systemd_units("0 3 * * 0", workdir="/opt/x\nExecStartPre=/bin/sh -c evil")
    with pytest.raises(UsageError, match="absolute path"):
        systemd_units("0 3 * * 0", workdir="relative/dir")
    with pytest.raises(UsageError, match="control characters"):
        systemd_units("0 3 * * 0", workdir="/opt/dr", graph="g.yaml\nExecStartPre=/bin/sh -c evil")


def test_readiness_is_checked_on_the_drill_cluster_only(tmp_path: Path) -> None:
    import subprocess

    from dr.drill.checks import drill_cluster_readiness
    from dr.drill.run import planned

    _, resources = planned(load_graph_file(EXAMPLE_GRAPH), read)
    seen: list[list[str]] = []

    def kubectl(argv: list[str]) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        assert (tmp_path / "drill-kubeconfig").read_text() == "apiVersion: v1  # the drill cluster"
        return subprocess.CompletedProcess(argv, 0, "condition met", "")

    blind = drill_cluster_readiness(resources, {}, tmp_path, run=kubectl)
    assert [c.ok for c in blind] == [False] and "refusing" in blind[0].detail and not seen
    checks = drill_cluster_readiness(resources, {"kubeconfig": "apiVersion: v1  # the drill cluster"}, tmp_path,
                                     run=kubectl)
    assert checks and all(c.ok for c in checks)
    assert all(argv[1:3] == ["--kubeconfig", str(tmp_path / "drill-kubeconfig")] for argv in seen)
    assert not (tmp_path / "drill-kubeconfig").exists(), "the kubeconfig (a secret) is not left on disk"


def test_a_stack_drill_without_pulumi_or_a_backend_is_a_clear_error(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from dr.drill.engine_stack import EngineStack
    from dr.errors import DrError
    from dr.kube.toolchain import Toolchain

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(Toolchain, "find", classmethod(lambda cls: cls((tmp_path,))))
    with pytest.raises(DrError, match="has no Pulumi.yaml"):
        EngineStack("drill", project_dir=tmp_path)
    (tmp_path / "Pulumi.yaml").write_text("name: dr\nruntime: python\n")
    with pytest.raises(DrError, match=r"the Pulumi engine is not installed \(pulumi, pulumi-resource-pulumi-python"):
        EngineStack("drill", project_dir=tmp_path)


def test_a_graph_without_an_rto_target_is_not_failed_for_missing_it() -> None:
    """A graph with no `rto:` and no estimates plans a target of 0 s; the first stack drill of a real
    project failed for "RTO 11s (target 0s)"."""
    from dr.core.drill_report import DrillReport, StepResult, to_junit, to_markdown

    report = DrillReport(run_id="r", cluster="lab", kind="stack", started_at=0.0, disaster_at=0.0,
                         verified_at=11.0, rto_target_s=0, steps=(StepResult("a", "app", "succeeded", 1, 1.0),),
                         checks=(), rpo=())
    assert report.success and report.rto_met
    assert "none (set rto: in the graph)" in to_markdown(report) and 'failures="0"' in to_junit(report)
    late = DrillReport(run_id="r", cluster="lab", kind="stack", started_at=0.0, disaster_at=0.0, verified_at=11.0,
                       rto_target_s=10, steps=(), checks=(), rpo=())
    assert not late.success


def test_a_sandbox_drill_without_the_toolchain_stops_before_building_production(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dr.drill.run import DrillPaths, sandbox_drill
    from dr.errors import DrError
    from dr.graph_file import load_graph_file, read_text
    from dr.kube.toolchain import Toolchain
    from tests.conftest import EXAMPLE_GRAPH

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(Toolchain, "find", classmethod(lambda cls: cls((tmp_path,))))
    with pytest.raises(DrError, match=r"needs .*pulumi-resource-kubernetes.*make toolchain"):
        sandbox_drill(load_graph_file(EXAMPLE_GRAPH), paths=DrillPaths(tmp_path / "state"), read_text=read_text,
                      say=lambda line: None)
    assert not (tmp_path / "state").exists(), "nothing was built"


def test_readiness_waits_for_every_kind_of_restore_the_engine_waits_for() -> None:
    """One table: a drill's readiness check knows every restore kind the program waits on (VolSync's
    ReplicationDestination was missing from the drill's own copy)."""
    from dr.core.restore_tools import COMPLETIONS, restore_done
    from dr.drill.checks import ready_condition

    for group, kind in COMPLETIONS:
        manifest = {"apiVersion": f"{group}/v1", "kind": kind, "spec": {}}
        assert ready_condition(manifest) == restore_done(manifest) is not None, (group, kind)
    assert ("volsync.backube", "ReplicationDestination") in COMPLETIONS
    assert ready_condition({"apiVersion": "v1", "kind": "PersistentVolumeClaim"}) == "jsonpath={.status.phase}=Bound"
