"""The five incidents of design.md, each as a small graph plus backup state: the audit flags them."""

from __future__ import annotations

import datetime as dt

from dr.audit.checks import AuditInput, BackupState, ClusterInventory, audit
from dr.core.backups import BackupPoint
from dr.core.spec import GraphSpec

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def graph(text: str) -> GraphSpec:
    return GraphSpec.from_yaml(text, path="incident.yaml")


def points(*ages_h_and_sizes: tuple[float, int]) -> tuple[BackupPoint, ...]:
    return tuple(BackupPoint(id=f"b{i}", time=NOW - dt.timedelta(hours=age), size_bytes=size, file_count=size // 100)
                 for i, (age, size) in enumerate(ages_h_and_sizes))


def run(spec: GraphSpec, states: dict[str, BackupState], **extra) -> list[tuple[str, str]]:
    found = audit(AuditInput(spec=spec, states=states, now=NOW, drills_recorded=1,
                             last_successful_drill=NOW - dt.timedelta(days=1), **extra))
    return [(f.check, f.subject) for f in found]


HEALTHY = """\
cluster: lab
backups:
  app-data: {tool: restic, protects: app, repo: /b, schedule: "0 * * * *", rpo: 2h,
             retention: {hourly: 24, daily: 7, weekly: 4}, source: [apps/app-data]}
components:
  storage: {layer: storage}
  app-restore: {layer: data, depends_on: [storage], restore: {backup: app-data}}
  app: {layer: app, stateful: true, depends_on: [app-restore]}
"""


def test_a_healthy_graph_passes_clean() -> None:
    states = {"app-data": BackupState(points=points((49, 1000), (25, 1000), (1, 1000), (0.5, 1010)))}
    inventory = ClusterInventory(pvcs=("apps/app-data",), known=True)
    assert run(graph(HEALTHY), states, inventory=inventory) == []


def test_rook_ceph_storage_with_no_backup_at_all() -> None:
    spec = graph("cluster: lab\ncomponents:\n  ceph: {layer: storage}\n  db: {layer: data}\n")
    assert ("coverage", "db") in run(spec, {})


def test_longhorn_blank_volume_with_retention_one() -> None:
    spec = graph(HEALTHY.replace("retention: {hourly: 24, daily: 7, weekly: 4}", "retention: {last: 1}"))
    states = {"app-data": BackupState(points=points((26, 5_000_000), (2, 5_000_000), (1, 5_000_000), (0.5, 4096)))}
    found = run(spec, states, inventory=ClusterInventory(pvcs=("apps/app-data",), known=True))
    assert ("retention", "app-data") in found
    assert ("collapse", "app-data") in found


def test_flux_cascade_lost_a_gitea_volume_nobody_knew_was_unprotected() -> None:
    inventory = ClusterInventory(pvcs=("apps/app-data", "gitea/gitea-shared-storage"), known=True)
    states = {"app-data": BackupState(points=points((3, 1000), (1, 1000)))}
    assert run(graph(HEALTHY), states, inventory=inventory) == [("coverage", "gitea/gitea-shared-storage")]


def test_talos_single_control_plane_never_rehearsed() -> None:
    states = {"app-data": BackupState(points=points((3, 1000), (1, 1000)))}
    found = audit(AuditInput(spec=graph(HEALTHY), states=states, now=NOW, drills_recorded=0))
    assert [(f.check, f.severity) for f in found] == [("drill-recency", "high")]
    stale = audit(AuditInput(spec=graph(HEALTHY), states=states, now=NOW, drills_recorded=3,
                             last_successful_drill=NOW - dt.timedelta(days=40)))
    assert [f.check for f in stale] == ["drill-recency"]


def test_crossplane_wal_archiving_failing_unnoticed() -> None:
    spec = graph("""\
cluster: lab
backups:
  db: {tool: cnpg-barman, protects: db, repo: s3://b/db, schedule: "0 1 * * *", rpo: 5m,
       retention: {daily: 14}}
components:
  db: {layer: data, restore: {backup: db}, vars: {namespace: apps}}
""")
    states = {"db": BackupState(points=points((11, 0)), newest_restorable=NOW - dt.timedelta(days=3))}
    found = audit(AuditInput(spec=spec, states=states, now=NOW, drills_recorded=1, last_successful_drill=NOW))
    assert [(f.check, f.subject) for f in found] == [("freshness", "db")]
    assert "WAL archiving stopped" in found[0].message


def test_retention_too_short_for_the_detection_delay() -> None:
    spec = graph(HEALTHY.replace("retention: {hourly: 24, daily: 7, weekly: 4}", "retention: {hourly: 12}"))
    states = {"app-data": BackupState(points=points((3, 1000), (1, 1000)))}
    found = run(spec, states, inventory=ClusterInventory(pvcs=("apps/app-data",), known=True))
    assert found == [("retention", "app-data")]


def test_cloudnativepg_instance_volumes_are_covered_by_their_clusters_backup() -> None:
    spec = graph(HEALTHY.replace("source: [apps/app-data]", "source: [apps/app-data, apps/pg]"))
    states = {"app-data": BackupState(points=points((3, 1000), (1, 1000)))}
    inventory = ClusterInventory(pvcs=("apps/app-data", "apps/pg-1", "apps/pg-2", "apps/pg-2-wal", "apps/pg-x",
                                       "other/pg-1"), databases=("apps/pg",), known=True)
    assert run(spec, states, inventory=inventory) == [("coverage", "apps/pg-x"), ("coverage", "other/pg-1")]


def test_an_audit_that_cannot_see_the_cluster_says_so_instead_of_passing() -> None:
    from dr.audit.sources import read_state

    spec = graph(HEALTHY.replace("tool: restic", "tool: velero"))
    backup = spec.backups["app-data"]
    blind = read_state(spec, backup, secrets={}, k8s=None)
    assert blind is not None and blind.error and "no access to the cluster" in blind.error
    found = run(spec, {"app-data": blind})
    assert ("freshness", "app-data") in found, "not a clean pass"
    missing_crd = read_state(spec, backup, secrets={}, k8s={"pvcs": [], "velero": [], "_unavailable": ["velero"]})
    assert missing_crd is not None and "does not list its velero backup objects" in (missing_crd.error or "")
