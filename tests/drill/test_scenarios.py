"""Real incidents replayed on the sandbox (`dr drill --sandbox --scenario`), end to end through the CLI.

A small graph of two restic volumes keeps each replay under a minute; `dr drill --sandbox --scenario all`
on the example graph is in docs/incidents.md."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.browser import CHROMIUM, render
from tests.conftest import REPO
from tests.drill.test_sandbox_drill import dr_command, sandbox_processes

GRAPH = """\
cluster: scenario-lab
kubernetes: "1.30"
rto: 30m
backups:
  nfs-volumes:
    tool: restic
    protects: nfs-exports
    source: [/srv/nfs/volumes]
    repo: /srv/backups/restic/nfs
    schedule: "15 * * * *"
    retention: {hourly: 24, daily: 7, weekly: 4}
    rpo: 2h
  registry-images:
    tool: restic
    protects: registry
    source: [/srv/nfs/registry]
    repo: /srv/backups/restic/registry
    schedule: "30 2 * * *"
    retention: {daily: 7, weekly: 4, monthly: 3}
    rpo: 26h
components:
  os-prepare: {layer: os, playbook: os-prepare.yml, estimate: 1m}
  nfs-volumes-restore:
    layer: storage
    depends_on: [os-prepare]
    restore: {backup: nfs-volumes}
    vars: {restore_path: /srv/nfs/volumes}
  registry-images-restore:
    layer: storage
    depends_on: [os-prepare]
    restore: {backup: registry-images}
    vars: {restore_path: /srv/nfs/registry}
  nfs-exports:
    layer: storage
    stateful: true
    depends_on: [nfs-volumes-restore, registry-images-restore]
    playbook: nfs-exports.yml
    vars: {nfs_exports: [/srv/nfs/volumes, /srv/nfs/registry], nfs_clients: 10.0.0.0/24}
  registry:
    layer: app
    stateful: true
    depends_on: [registry-images-restore, nfs-exports]
"""

DATABASE_GRAPH = """\
cluster: scenario-db
kubernetes: "1.30"
rto: 30m
backups:
  host-postgres:
    tool: pgbackrest
    protects: postgres-host
    source: [/var/lib/postgresql/15/main]
    repo: /var/lib/pgbackrest
    schedule: "0 2 * * *"
    retention: {daily: 7, weekly: 4}
    rpo: 20s
components:
  os-prepare: {layer: os, playbook: os-prepare.yml, estimate: 1m}
  postgres-host:
    layer: data
    stateful: true
    depends_on: [os-prepare]
    restore: {backup: host-postgres, target_time: latest}
    vars: {pg_version: 15, pg_data: /var/lib/postgresql/15/main, pg_port: 5432, pgbackrest_stanza: main}
    verify:
      - {sql: "SELECT count(*) FROM workload", database: postgres, min: 1}
  app:
    layer: app
    depends_on: [postgres-host]
"""

CASCADE_GRAPH = """\
cluster: scenario-cascade
kubernetes: "1.30"
rto: 30m
backups:
  grafana-data:
    tool: velero
    protects: grafana
    source: [monitoring/grafana]
    repo: s3://lab-backups/velero
    schedule: "0 3 * * *"
    retention: {daily: 7, weekly: 4}
    rpo: 25h
components:
  velero:
    layer: addon
    helm:
      chart: velero
      repo: https://vmware-tanzu.github.io/helm-charts
      version: 8.0.0
      namespace: velero
      values: {}
  grafana-restore:
    layer: data
    depends_on: [velero]
    restore: {backup: grafana-data}
    vars: {namespace: monitoring, included_resources: [persistentvolumeclaims, persistentvolumes, secrets]}
  grafana:
    layer: app
    stateful: true
    depends_on: [grafana-restore]
"""

QUORUM_GRAPH = """\
cluster: scenario-quorum
kubernetes: "1.30"
rto: 30m
backups:
  etcd-snapshots:
    tool: etcd-snapshot
    protects: etcd
    source: [/var/lib/etcd]
    repo: /var/backups/etcd
    schedule: "0 */6 * * *"
    retention: {last: 4, daily: 7}
    rpo: 7h
components:
  os-prepare: {layer: os, playbook: os-prepare.yml, estimate: 1m}
  etcd:
    layer: etcd
    depends_on: [os-prepare]
    restore: {backup: etcd-snapshots}
    vars: {snapshot_dir: /var/backups/etcd, etcd_data_dir: /var/lib/etcd, etcd_client_port: 2379,
           etcd_peer_port: 2380}
    verify:
      - {etcd: /registry/, min_keys: 1}
  k3s-server:
    layer: control-plane
    depends_on: [etcd]
    playbook: k3s-server.yml
    vars: {k3s_artifact: artifacts/k3s-v1.30.6+k3s1, k3s_datastore_endpoint: "https://10.0.0.10:2379"}
  app:
    layer: app
    depends_on: [k3s-server]
"""

needs_restic = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is needed (make system)")


def replay(tmp_path: Path, scenario: str, graph: str = GRAPH
           ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
    (tmp_path / "graph.yaml").write_text(graph)
    done = subprocess.run([*dr_command(), "drill", "--sandbox", "--graph", "graph.yaml", "--state-dir", "state",
                           "--scenario", scenario], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    (report_dir,) = (tmp_path / "state" / "reports").iterdir()
    assert not sandbox_processes(tmp_path / "state"), "the replay left processes behind"
    return (done, json.loads((report_dir / "report.json").read_text()),
            (report_dir / "report.md").read_text())


def scenario_checks(report: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    return {c["kind"]: c for c in report["checks"] if c["step"] == f"scenario {name}"}


@pytest.mark.integration
@needs_restic
def test_storage_wipe_comes_back_byte_identical_and_the_audit_names_what_a_missing_backup_leaves(
        tmp_path: Path) -> None:
    done, report, markdown = replay(tmp_path, "storage-wipe")
    assert done.returncode == 0, done.stdout + done.stderr
    (scenario,) = report["scenarios"]
    checks = scenario_checks(report, "storage-wipe")
    assert all(c["ok"] for c in checks.values()), checks
    assert set(checks) == {"audit-names-unprotected", "volumes-wiped", "byte-identical nfs-volumes",
                           "byte-identical registry-images"}
    # The disaster really emptied the volumes, and every file of the last backup came back.
    wiped = int(checks["volumes-wiped"]["detail"].split()[0])
    assert wiped > 0 and scenario["bytes_recovered"] > 0
    assert "80 of 80 files" in checks["byte-identical nfs-volumes"]["detail"]
    # What was written after the last backup is what was lost, and it is counted.
    assert 0 < scenario["bytes_lost"] < scenario["bytes_recovered"]
    assert scenario["detected"] == ["stateful component 'registry' has no backup"]
    assert scenario["detect_s"] is not None and scenario["detect_s"] >= 0
    assert "## Scenario storage-wipe: recovered" in markdown and "recovered: every volume" in done.stdout
    # The HTML report, as a person opens it: a timeline of every step, drawn (not blank), then the rest.
    if CHROMIUM is not None:
        (report_dir,) = (tmp_path / "state" / "reports").iterdir()
        page = render(report_dir / "report.html", tmp_path)
        assert page.ink() > 0.05, f"the report's first screen is blank ({page.screenshot})"
        text = page.text()
        assert text.index("Timeline") < text.index("Data lost (RPO)") < text.index("Scenario storage-wipe")
        for step in report["steps"]:
            assert f"{step['name']} ({step['state']})" in page.dom or step["name"] in text, step["name"]
        assert "<svg" in page.dom and "seconds since the disaster" in page.dom
        assert "What next" in text and not [link for link in page.links() if link[1:] not in page.ids()]
    # The benchmark's table reads the same report.
    bench = subprocess.run([sys.executable, str(REPO / "bench" / "scenarios.py"), "--reports",
                            str(tmp_path / "state" / "reports")], capture_output=True, text=True, timeout=60)
    assert bench.returncode == 0, bench.stderr
    header, row = bench.stdout.splitlines()
    assert header.split()[:3] == ["scenario", "result", "detect"]
    assert row.split()[:2] == ["storage-wipe", "passed"]
    assert row.split()[-2:] == [str(scenario["bytes_recovered"]), str(scenario["bytes_lost"])]


@pytest.mark.integration
@needs_restic
def test_blank_volume_is_refused_as_good_and_the_last_good_data_is_back_before_the_app(tmp_path: Path) -> None:
    done, report, markdown = replay(tmp_path, "blank-volume")
    assert done.returncode == 0, done.stdout + done.stderr
    checks = scenario_checks(report, "blank-volume")
    assert all(c["ok"] for c in checks.values()), checks
    assert "refusing to restore backup" in checks["guard-refuses-blank-snapshot"]["detail"]
    assert "allow_collapsed: true" in checks["guard-refuses-blank-snapshot"]["detail"]
    # The incident's retention really forgets the good copy, and then nothing can tell.
    assert "1 snapshot(s) left" in checks["retention-1-forgets-the-good-copy"]["detail"]
    assert "the guard accepts it" in checks["retention-1-forgets-the-good-copy"]["detail"]
    said = " ".join(report["scenarios"][0]["detected"])
    assert "collapsed" in said and "keeps one restore point" in said
    assert "the blank snapshot's files were not restored" in checks["last-good-data-restored"]["detail"]
    # The restore finished before the app that owns the data started, by the executor's event times.
    times = {s["name"]: (s["started_at"], s["finished_at"]) for s in report["steps"]}
    assert times["nfs-volumes-restore"][1] <= times["nfs-exports"][0]
    assert "## Scenario blank-volume: recovered" in markdown


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgBackRest is needed (make system)")
def test_namespace_delete_with_failing_archiving_is_seen_by_the_audit_and_restored_to_just_before(
        tmp_path: Path) -> None:
    done, report, markdown = replay(tmp_path, "namespace-delete", DATABASE_GRAPH)
    assert done.returncode == 0, done.stdout + done.stderr
    checks = scenario_checks(report, "namespace-delete")
    assert all(c["ok"] for c in checks.values()), checks
    (scenario,) = report["scenarios"]
    # The archive command really failed, and the freshness audit said so before the deletion, after about
    # the RPO (20 s): the time to detect is measured, not assumed.
    assert int(checks["archiving-really-failed"]["detail"].split()[1]) > 0
    assert any("WAL archiving stopped" in line for line in scenario["detected"])
    # About the RPO: the newest archived segment may predate the failure by up to archive_timeout (3 s here),
    # and the audit looks every 2 s.
    assert 20 - 6 <= scenario["detect_s"] < 20 + 60
    # The real namespace controller deleted the database cluster and both claims.
    assert "db-1-wal" in checks["namespace-deleted-by-the-namespace-controller"]["detail"]
    assert "namespace gone with every object in it" in checks["namespace-deleted-by-the-namespace-controller"][
        "detail"]
    # Point-in-time: the newest row is from just before the deletion, and the outage's rows came back.
    gap = float(checks["restored-to-just-before-the-deletion"]["detail"].split(" written ")[1].split()[0])
    assert 0 <= gap <= 15
    assert int(checks["wal-of-the-outage-recovered"]["detail"].split()[0]) > 0
    (rpo,) = report["rpo"]
    assert rpo["measured_s"] is not None and rpo["measured_s"] <= 15
    assert "## Scenario namespace-delete: recovered" in markdown


@pytest.mark.integration
def test_cascade_delete_destroys_the_unguarded_volume_and_the_guarded_one_survives(tmp_path: Path) -> None:
    done, report, markdown = replay(tmp_path, "cascade-delete", CASCADE_GRAPH)
    assert done.returncode == 0, done.stdout + done.stderr
    checks = scenario_checks(report, "cascade-delete")
    assert all(c["ok"] for c in checks.values()), checks
    (scenario,) = report["scenarios"]
    # Before: the audit names the unguarded volume and the CRD without Helm's keep policy, not the guarded one.
    named = checks["audit-names-what-the-cascade-reaches"]["detail"]
    assert "PersistentVolume cascade-unguarded" in named and "cascade-guarded" not in named
    # The real garbage collector and volume controller did it: claims gone, the unguarded directory deleted.
    assert "deleted by the controller-manager" in checks["cascade-really-happened"]["detail"]
    assert "Released" in checks["guarded-volume-survived"]["detail"]
    assert scenario["bytes_recovered"] > 0 and scenario["bytes_lost"] > 0
    # The restore tool (a Helm release) finished before the restore that needs it started.
    assert checks["tool-reinstalled-before-its-restores"]["detail"].startswith("velero finished")
    assert not list(Path("/tmp").glob("dr-cascade-*")), "the scenario left its volumes behind"
    assert "## Scenario cascade-delete: recovered" in markdown


@pytest.mark.integration
def test_quorum_loss_is_rebuilt_from_the_newest_snapshot_in_the_runbook_order(tmp_path: Path) -> None:
    done, report, markdown = replay(tmp_path, "quorum-loss", QUORUM_GRAPH)
    assert done.returncode == 0, done.stdout + done.stderr
    checks = scenario_checks(report, "quorum-loss")
    assert all(c["ok"] for c in checks.values()), checks
    assert checks["production-has-three-members"]["detail"].startswith("3 started members")
    # Two of three members gone: etcd and the API server really refuse writes.
    assert "context deadline exceeded" in checks["quorum-really-lost"]["detail"]
    assert "production-workload" in checks["control-plane-restored-from-the-snapshot"]["detail"]
    assert "each started after the steps its runbook entry names" in checks["the-runbook-order-was-followed"][
        "detail"]
    states = {s["name"]: s["state"] for s in report["steps"]}
    assert states["etcd"] == states["k3s-server"] == "succeeded"
    assert "## Scenario quorum-loss: recovered" in markdown


@pytest.mark.integration
def test_quorum_loss_with_the_snapshot_declared_unusable_is_rebuilt_from_scratch(tmp_path: Path) -> None:
    done, report, _ = replay(tmp_path, "quorum-loss-from-scratch", QUORUM_GRAPH)
    assert done.returncode == 0, done.stdout + done.stderr
    checks = scenario_checks(report, "quorum-loss-from-scratch")
    assert all(c["ok"] for c in checks.values()), checks
    assert "context deadline exceeded" in checks["quorum-really-lost"]["detail"]
    assert "the control plane started on empty (from scratch)" in checks["snapshot-not-restored"]["detail"]
    assert "namespace production-workload: absent" in checks["rebuilt-from-scratch"]["detail"]
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["etcd"]["state"] == "not-run" and "declared unusable" in steps["etcd"]["detail"]
    assert steps["k3s-server"]["state"] == "succeeded"
    assert report["rpo"] == [], "a snapshot declared unusable has no RPO to measure: everything it held is lost"


def test_an_unknown_scenario_is_refused_before_any_drill(tmp_path: Path) -> None:
    (tmp_path / "graph.yaml").write_text(GRAPH)
    for name, expected in (("flood", "no scenario 'flood'"),):
        done = subprocess.run([*dr_command(), "drill", "--graph", "graph.yaml", "--state-dir", "state",
                               "--scenario", name], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert not (tmp_path / "state" / "drills").exists()
    done = subprocess.run([*dr_command(), "drill", "--graph", "graph.yaml", "--resume", "--scenario", "storage-wipe"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--scenario only works with --sandbox (and not --resume)" in done.stderr
