"""kopiur as a backup tool: added as one module (`dr/core/restore_tools/kopiur.py`) and one registry line.

What dr renders for a kopiur restore is checked here against kopiur's own upstream CRDs (schema
validation, no API server); `tests/kube/test_kopiur_restore_accepted.py` has the real API server accept
it and wait on its completion condition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.core.restore_tools import TOOLS, object_problems, repository_problem, restore_done
from dr.core.restore_tools.kopiur import backend_problems
from dr.core.spec import GraphSpec
from dr.core.steps.restore import restore_needs
from dr.errors import GraphError
from dr.kube.validate import validate_object
from tests.pulumi.test_gitops_backup_objects import objects

GRAPH = """\
cluster: lab
backups:
  app-data:
    tool: kopiur
    protects: [app]
    repo: kopiur:ClusterRepository/nas
    schedule: "0 * * * *"
    retention: {hourly: 24, daily: 7}
    rpo: 2h
  media:
    tool: kopiur
    protects: [app]
    repo: kopiur:Repository/media/b2
    schedule: "0 3 * * *"
    retention: {daily: 7}
    rpo: 1d
components:
  app-data-restore:
    layer: data
    restore: {backup: app-data, target_time: "2026-11-20T03:00:00Z"}
    vars: {namespace: apps, pvc: app-data, size: 5Gi, storage_class: ceph-block}
  media-restore:
    layer: data
    restore: {backup: media}
    vars: {namespace: media, pvc: media, target: populator, kopia_username: media, kopia_hostname: media}
  app: {layer: app, depends_on: [app-data-restore, media-restore]}
"""


def test_a_kopiur_restore_is_rendered_as_kopiur_reads_it(reference_crds) -> None:
    reference_crds("kopiur-0.1.0")  # no registry publishes kopiur's CRDs
    found = objects(GRAPH)
    for name, manifest in found.items():
        assert validate_object(manifest, kubernetes="1.30") == [], name
    restore = found["Restore/app-data-restore"]
    assert restore["apiVersion"] == "kopiur.home-operations.com/v1alpha1"
    assert restore["spec"] == {
        "repository": {"kind": "ClusterRepository", "name": "nas"},
        "source": {"fromPolicy": {"name": "app-data", "asOf": "2026-11-20T03:00:00Z"}},
        "target": {"pvc": {"name": "app-data", "accessModes": ["ReadWriteOnce"], "capacity": "5Gi",
                           "storageClassName": "ceph-block"}},
        "policy": {"onMissingSnapshot": "Fail"}}
    assert restore["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.status.phase}=Completed"
    assert "PersistentVolumeClaim/app-data" not in found, "kopiur creates the claim itself"


def test_a_populator_restore_is_passive_and_not_waited_for() -> None:
    """The app's claim names the Restore in dataSourceRef and stays Pending until kopiur filled it: waiting
    for the passive Restore before the app exists would never end."""
    populator = objects(GRAPH)["Restore/media"]
    assert populator["spec"]["target"] == {"populator": {}}
    assert populator["spec"]["source"] == {"identity": {"username": "media", "hostname": "media"}}
    assert populator["spec"]["repository"] == {"kind": "Repository", "namespace": "media", "name": "b2"}
    assert "pulumi.com/waitFor" not in populator["metadata"].get("annotations", {})
    assert restore_done(populator) is None


def test_a_kopiur_restore_is_not_taken_for_a_velero_one() -> None:
    """Both tools name their kind `Restore`: every per-kind table is keyed by API group too. A kopiur
    Restore must not wait for a Velero Backup, nor a Velero Restore lose its wait."""
    kopiur = objects(GRAPH)["Restore/app-data-restore"]
    assert restore_needs([kopiur])["backups"] == []
    velero = {"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"namespace": "velero"},
              "spec": {"scheduleName": "nightly"}}
    assert restore_needs([velero])["backups"][0]["kind"] == "Backup"


@pytest.mark.parametrize(("repo", "problem"), [
    ("kopiur:ClusterRepository/nas", None),
    ("kopiur:Repository/media/b2", None),
    ("s3://bucket/kopia", "is not a kopiur repository"),
    ("kopiur:Repository/b2", "write kopiur:ClusterRepository/<name> or kopiur:Repository/<namespace>/<name>"),
    ("kopiur:ClusterRepository/NAS", "is not a Kubernetes object name"),
    ("kopiur:Bucket/nas", "write kopiur:ClusterRepository"),
])
def test_the_repository_is_named_as_kopiur_refers_to_it(repo: str, problem: str | None) -> None:
    found = repository_problem("kopiur", repo)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_a_wrong_repo_is_refused_with_its_line() -> None:
    with pytest.raises(GraphError) as caught:
        GraphSpec.from_yaml(GRAPH.replace("kopiur:ClusterRepository/nas", "s3://nas/kopia"), path="g.yaml")
    assert "g.yaml:6:" in str(caught.value) and "is not a kopiur repository" in str(caught.value)


REPOSITORY = """\
apiVersion: kopiur.home-operations.com/v1alpha1
kind: ClusterRepository
metadata: {name: nas}
spec:
  allowedNamespaces: {all: true}
  encryption: {passwordSecretRef: {name: kopia, namespace: kopiur}}
  backend:
    s3: {bucket: BUCKET, endpoint: ENDPOINT, prefix: clusters/lab/}
"""


@pytest.mark.parametrize(("bucket", "endpoint", "problem"), [
    ("kopia", "minio.lab:9000", None),
    ("s3://kopia", "minio.lab:9000", "must be the bucket's name alone"),
    ("kopia/clusters", "minio.lab:9000", "put the path in backend.s3.prefix"),
    ("kopia", "https://minio.lab:9000", "without a scheme"),
])
def test_a_repository_backend_is_checked_as_kopiur_reads_it(bucket: str, endpoint: str, problem: str | None,
                                                            tmp_path: Path, reference_crds) -> None:
    import yaml

    reference_crds("kopiur-0.1.0")
    manifest = yaml.safe_load(REPOSITORY.replace("BUCKET", bucket).replace("ENDPOINT", endpoint))
    assert validate_object(manifest, kubernetes="1.30") == [], "the upstream CRD accepts every one of them"
    found = backend_problems(manifest)
    assert object_problems(manifest) == found
    if problem is None:
        assert found == []
        return
    assert len(found) == 1 and problem in found[0]
    (tmp_path / "kopiur.yaml").write_text(yaml.safe_dump(manifest))
    graph = GRAPH + "  kopiur-repo: {layer: storage, manifests: kopiur.yaml}\n"
    spec = GraphSpec.from_yaml(graph, path=str(tmp_path / "g.yaml"))
    plan = plan_for(spec, mode="prod")
    assert plan.graph is not None
    with pytest.raises(GraphError) as caught:
        resource_plan(plan, plan.graph.spec, read_text=lambda p: Path(p).read_text())
    assert "kopiur.yaml: ClusterRepository 'nas'" in str(caught.value) and problem in str(caught.value)


def test_kopiur_is_one_registry_entry() -> None:
    tool = TOOLS["kopiur"]
    assert not tool.host_level and ("kopiur.home-operations.com", "Restore") in tool.kinds


def snapshot(name: str, ended_h_ago: float, *, policy: str = "app-data", namespace: str = "apps",
             phase: str = "Succeeded", failed_files: int = 0) -> dict[str, Any]:
    import datetime as dt

    ended = dt.datetime.now(dt.UTC) - dt.timedelta(hours=ended_h_ago)
    return {"apiVersion": "kopiur.home-operations.com/v1alpha1", "kind": "Snapshot",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"policyRef": {"name": policy}},
            "status": {"phase": phase, "timing": {"endTime": ended.strftime("%Y-%m-%dT%H:%M:%SZ")},
                       "snapshot": {"kopiaSnapshotID": f"k{name}"},
                       "stats": {"sizeBytes": 4096, "filesNew": 3, "filesUnchanged": 7, "filesFailed": failed_files}}}


def test_the_audit_reads_kopiur_snapshots_of_the_policy_a_restore_reads() -> None:
    """The audit sees kopiur backups (it saw none before kopiur was a tool): succeeded, complete Snapshots
    of the restore's SnapshotPolicy in its namespace; an incomplete one is no restore point, and a policy
    whose newest good snapshot is older than the RPO is a finding."""
    from dr.audit.checks import AuditInput, audit
    from dr.audit.sources import read_state

    spec = GraphSpec.from_yaml(GRAPH, path="g.yaml")
    backup = spec.backups["app-data"]
    listed = [snapshot("a", 5), snapshot("b", 1, failed_files=2), snapshot("c", 0.5, phase="Failed"),
              snapshot("d", 0.2, policy="other"), snapshot("e", 0.1, namespace="elsewhere")]
    state = read_state(spec, backup, secrets={}, k8s={"pvcs": [], "kopiur": listed})
    assert state is not None and not state.error
    assert [p.id for p in state.points] == ["ka"] and state.points[0].file_count == 10
    findings = audit(AuditInput(spec=spec, states={"app-data": state}))
    assert any(f.check == "freshness" and f.subject == "app-data" for f in findings), findings
    fresh = read_state(spec, backup, secrets={}, k8s={"pvcs": [], "kopiur": [snapshot("f", 0.5)]})
    assert fresh is not None
    findings = audit(AuditInput(spec=spec, states={"app-data": fresh}))
    assert not any(f.check == "freshness" and f.subject == "app-data" for f in findings), findings
    blind = read_state(spec, backup, secrets={}, k8s={"pvcs": [], "kopiur": [], "_unavailable": ["kopiur"]})
    assert blind is not None and "does not list its kopiur backup objects" in (blind.error or "")
