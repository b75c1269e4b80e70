"""The audit against real restic, pgBackRest and etcd snapshot state, and hand-written status JSON."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from dr.audit.checks import AuditInput, audit
from dr.audit.sources import read_state
from dr.core.spec import GraphSpec
from dr.drill.sandbox_pg import PgSandbox
from dr.restore import restic

pytestmark = pytest.mark.integration


def spec_for(backups: str, components: str) -> GraphSpec:
    return GraphSpec.from_yaml(f"cluster: lab\nbackups:\n{backups}\ncomponents:\n{components}", path="g.yaml")


@pytest.mark.skipif(shutil.which("restic") is None, reason="make system")
def test_restic_fresh_stale_and_collapsed(tmp_path: Path) -> None:
    repo = restic.ResticRepository(str(tmp_path / "repo"), "audit-canary")
    repo.run("init")
    data = tmp_path / "vol"
    data.mkdir()
    for i in range(30):
        (data / f"f{i}").write_bytes(os.urandom(4096))
    repo.run("backup", str(data))
    repo.run("backup", str(data))
    spec = spec_for(f"  vol: {{tool: restic, protects: app, repo: {repo.repository}, schedule: '0 * * * *', rpo: 2h,"
                    " retention: {hourly: 24, daily: 7}}",
                    "  r: {layer: data, restore: {backup: vol}}\n  app: {layer: app, depends_on: [r]}")
    state = read_state(spec, spec.backups["vol"], secrets={"restic_password": repo.password}, k8s=None)
    assert state is not None and len(state.points) == 2
    now = dt.datetime.now(dt.UTC)
    fresh = audit(AuditInput(spec=spec, states={"vol": state}, now=now, drills_recorded=1, last_successful_drill=now))
    assert fresh == []
    later = now + dt.timedelta(hours=3)
    stale = audit(AuditInput(spec=spec, states={"vol": state}, now=later, drills_recorded=1,
                             last_successful_drill=now))
    assert [(f.check, f.subject) for f in stale] == [("freshness", "vol")]
    shutil.rmtree(data)
    data.mkdir()
    (data / "lost+found").mkdir()
    repo.run("backup", str(data))
    collapsed = read_state(spec, spec.backups["vol"], secrets={"restic_password": repo.password}, k8s=None)
    assert collapsed is not None
    found = audit(AuditInput(spec=spec, states={"vol": collapsed}, now=now, drills_recorded=1,
                             last_successful_drill=now))
    assert [(f.check, f.subject) for f in found] == [("collapse", "vol")]


@pytest.mark.skipif(shutil.which("etcd") is None, reason="make system")
def test_etcd_snapshot_directory_freshness(tmp_path: Path) -> None:
    import subprocess

    data = tmp_path / "etcd"
    client = "http://127.0.0.1:23991"
    server = subprocess.Popen(["etcd", "--data-dir", str(data), "--listen-client-urls", client,
                               "--advertise-client-urls", client, "--listen-peer-urls", "http://127.0.0.1:23992",
                               "--initial-advertise-peer-urls", "http://127.0.0.1:23992",
                               "--initial-cluster", "default=http://127.0.0.1:23992"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        snapshots = tmp_path / "snapshots"
        snapshots.mkdir()
        for _ in range(50):
            if subprocess.run(["etcdctl", "--endpoints", client, "snapshot", "save", str(snapshots / "a.db")],
                              capture_output=True, env={**os.environ, "ETCDCTL_API": "3"}).returncode == 0:
                break
            time.sleep(0.2)
    finally:
        server.kill()
        server.wait()
    old = time.time() - 10 * 3600
    os.utime(snapshots / "a.db", (old, old))
    spec = spec_for(f"  snaps: {{tool: etcd-snapshot, protects: etcd, repo: {snapshots}, schedule: '0 */6 * * *', "
                    "rpo: 7h, retention: {last: 4, daily: 7}}", "  etcd: {layer: etcd, restore: {backup: snaps}}")
    state = read_state(spec, spec.backups["snaps"], secrets={}, k8s=None)
    found = audit(AuditInput(spec=spec, states={"snaps": state}, now=dt.datetime.now(dt.UTC), drills_recorded=1,
                             last_successful_drill=dt.datetime.now(dt.UTC)))
    assert [(f.check, f.subject) for f in found] == [("freshness", "snaps")]
    assert "10h" in found[0].message


@pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="make system")
def test_pgbackrest_archiving_that_stopped_is_found(tmp_path: Path) -> None:
    pg = PgSandbox.create()
    try:
        from dr.drill.sandbox_pg import as_postgres

        base = ["pgbackrest", f"--config={pg.config}", "--stanza=main"]
        as_postgres(*base, "stanza-create")
        as_postgres(*base, "--type=full", "backup")
        pg.sql("SELECT pg_switch_wal()")
        spec = spec_for("  db: {tool: pgbackrest, protects: db, repo: s3://b, schedule: '0 2 * * *', rpo: 15m, "
                        "retention: {daily: 7}}",
                        f"  db: {{layer: data, restore: {{backup: db}}, vars: {{pgbackrest_config: {pg.config}}}}}")
        state = read_state(spec, spec.backups["db"], secrets={}, k8s=None)
        assert state is not None and state.points and state.newest_restorable is not None
        now = dt.datetime.now(dt.UTC)
        assert audit(AuditInput(spec=spec, states={"db": state}, now=now, drills_recorded=1,
                                last_successful_drill=now)) == []
        # Archiving breaks; an hour later nothing newer has reached the repository.
        with (pg.data / "postgresql.conf").open("a") as conf:
            conf.write("archive_command = 'false'\n")
        pg.sql("SELECT pg_reload_conf()")
        pg.sql("SELECT pg_switch_wal()")
        later = read_state(spec, spec.backups["db"], secrets={}, k8s=None)
        assert later is not None
        found = audit(AuditInput(spec=spec, states={"db": later}, now=now + dt.timedelta(hours=1), drills_recorded=1,
                                 last_successful_drill=now))
        assert [(f.check, f.subject) for f in found] == [("freshness", "db")]
        assert "WAL archiving stopped" in found[0].message
    finally:
        pg.destroy()


FIXTURE = {
    "pvcs": [{"metadata": {"namespace": "gitea", "name": "gitea-shared-storage"}},
             {"metadata": {"namespace": "monitoring", "name": "vmsingle-data"}},
             {"metadata": {"namespace": "gitea", "name": "gitea-actions-cache"}}],
    "cnpg": [{"metadata": {"namespace": "gitea", "name": "gitea-db"},
              "status": {"lastSuccessfulBackup": "2026-11-23T01:00:12Z",
                         "conditions": [{"type": "ContinuousArchiving", "status": "False",
                                         "lastTransitionTime": "2026-11-20T04:00:00Z"}]}}],
    "longhorn": [{"metadata": {"name": "backup-1", "labels": {"backup-volume": "gitea-data"}},
                  "status": {"state": "Completed", "backupCreatedAt": "2026-11-23T11:00:00Z", "size": "1073741824"}},
                 {"metadata": {"name": "backup-2", "labels": {"backup-volume": "gitea-data"}},
                  "status": {"state": "Completed", "backupCreatedAt": "2026-11-23T11:30:00Z", "size": "4096"}}],
    "velero": [{"metadata": {"name": "grafana-data-20261123030000",
                             "labels": {"velero.io/schedule-name": "grafana-data"}},
                "status": {"phase": "Completed", "completionTimestamp": "2026-11-23T03:05:00Z",
                           "progress": {"totalItems": 40, "itemsBackedUp": 40}}}],
}


def test_kubernetes_tools_from_their_status_fields(tmp_path: Path, run_cli) -> None:
    from tests.conftest import EXAMPLE_GRAPH

    status = tmp_path / "k8s.json"
    status.write_text(json.dumps(FIXTURE))
    result = run_cli("audit", "--graph", str(EXAMPLE_GRAPH), "--k8s-status", str(status), "--json",
                     "--ignore", "drill-recency", "--textfile", str(tmp_path / "audit.prom"))
    assert result.code == 1
    findings = json.loads(result.out)["findings"]
    subjects = {(f["check"], f["subject"]) for f in findings}
    assert ("freshness", "gitea-db") in subjects, "CloudNativePG continuous archiving is False"
    assert ("collapse", "gitea-data") in subjects, "the newest Longhorn backup is 4 KiB after 1 GiB"
    assert ("coverage", "gitea/gitea-actions-cache") in subjects, "no backup's source names this PVC"
    assert ("coverage", "gitea/gitea-shared-storage") not in subjects, "gitea-data's source covers this one"
    assert 'dr_audit_findings{cluster="homelab",check="collapse",severity="critical"} 1' in (
        tmp_path / "audit.prom").read_text()
    assert "audit-canary" not in result.out
