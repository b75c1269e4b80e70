"""The pure resource plan: children per action, protect and retain_on_delete, drill swaps and leaks."""

from __future__ import annotations

import pytest

from dr.core.plan import plan_for
from dr.core.resources import ResourcePlan, resource_plan
from dr.core.spec import GraphSpec
from dr.errors import GraphError
from dr.graph_file import load_graph_file
from tests.conftest import EXAMPLE_GRAPH


def read(path) -> str:
    return path.read_text()


def resources_of(spec: GraphSpec, mode: str) -> ResourcePlan:
    plan = plan_for(spec, mode=mode, read_text=read)
    assert plan.graph is not None
    return resource_plan(plan, plan.graph.spec, read_text=read)


@pytest.fixture(scope="module")
def example() -> GraphSpec:
    return load_graph_file(EXAMPLE_GRAPH)


def children(resources: ResourcePlan, component: str, *, prechecks: bool = False):
    found = next(c for c in resources.components if c.name == component).children
    return found if prechecks else tuple(c for c in found if c.kind != "restore-precheck")


def test_a_restore_first_checks_its_credentials_and_waits_for_its_backups(example: GraphSpec) -> None:
    """Issue 13: nothing created the credential Secrets restore objects name; Longhorn and Velero refuse
    a restore created before the backup target synced the backup, for good."""
    prod = resources_of(example, "prod")
    kinds = [c.kind if c.kind != "kube-object" else c.inputs["manifest"]["kind"]
             for c in children(prod, "gitea-data-restore", prechecks=True)]
    assert kinds == ["Namespace", "restore-precheck", "Volume", "PersistentVolume", "PersistentVolumeClaim"]
    (longhorn,) = [c for c in children(prod, "gitea-data-restore", prechecks=True) if c.kind == "restore-precheck"]
    assert longhorn.inputs["precheck"]["backups"] == [{"apiVersion": "longhorn.io/v1beta2", "kind": "Backup",
                                                       "namespace": "longhorn-system",
                                                       "name": "backup-3f9c1b2a7d4e4c21"}]
    (cnpg,) = [c for c in children(prod, "gitea-db", prechecks=True) if c.kind == "restore-precheck"]
    assert cnpg.inputs["precheck"]["secrets"] == [{"namespace": "gitea", "name": "gitea-db-s3",
                                                   "keys": ["ACCESS_KEY_ID", "ACCESS_SECRET_KEY"]}]
    (velero,) = [c for c in children(prod, "grafana-restore", prechecks=True) if c.kind == "restore-precheck"]
    assert velero.inputs["precheck"]["backups"][0]["selector"].startswith("velero.io/schedule-name=")
    assert velero.inputs["precheck"]["backups"][0]["phase"] == "Completed"


def test_one_child_kind_per_action(example: GraphSpec) -> None:
    prod = resources_of(example, "prod")
    assert [c.kind for c in children(prod, "os-prepare")] == ["playbook"]
    assert [c.kind for c in children(prod, "etcd")] == ["host-restore"]
    assert [c.kind for c in children(prod, "cilium")] == ["helm-release"]
    assert [c.kind for c in children(prod, "letsencrypt-prod")] == ["config-group"]
    assert [c.inputs["manifest"]["kind"] for c in children(prod, "gitea-data-restore")] == [
        "Namespace", "Volume", "PersistentVolume", "PersistentVolumeClaim"]
    # gitea-db and gitea-data-restore may run side by side: each creates the namespace they share.
    assert [c.inputs["manifest"]["kind"] for c in children(prod, "gitea-db")] == ["Namespace", "Cluster"]
    assert [c.inputs["manifest"]["kind"] for c in children(prod, "grafana-restore")] == ["Namespace", "Restore"]


def test_component_dependencies_are_exactly_the_graph_edges(example: GraphSpec) -> None:
    for mode in ("prod", "drill"):
        plan = plan_for(example, mode=mode, read_text=read)
        resources = resources_of(example, mode)
        assert {c.name: set(c.depends_on) for c in resources.components} == {
            s.name: set(s.depends_on) for s in plan.steps}


def test_data_bearing_objects_are_protected_in_prod_and_always_retained(example: GraphSpec) -> None:
    for mode, protected in (("prod", True), ("drill", False)):
        resources = resources_of(example, mode)
        data = [c for comp in resources.components for c in comp.children
                if c.kind == "kube-object" and c.inputs["manifest"]["kind"] in
                ("PersistentVolumeClaim", "PersistentVolume", "Namespace", "Cluster", "Restore", "Volume")]
        assert data
        assert all(c.retain_on_delete for c in data)
        assert all(c.protect is protected for c in data)
        helm = [c for comp in resources.components for c in comp.children if c.kind == "helm-release"]
        assert not any(c.protect or c.retain_on_delete for c in helm)
        host_restores = [c for comp in resources.components for c in comp.children if c.kind == "host-restore"]
        assert all(c.retain_on_delete for c in host_restores)


def test_cnpg_recovers_from_the_backup_and_archives_wal_to_the_drill_bucket_in_drills(example: GraphSpec) -> None:
    prod = children(resources_of(example, "prod"), "gitea-db")[-1].inputs["manifest"]["spec"]
    drill = children(resources_of(example, "drill"), "gitea-db")[-1].inputs["manifest"]["spec"]
    origin = prod["externalClusters"][0]
    assert prod["bootstrap"]["recovery"]["source"] == origin["name"]
    assert origin["barmanObjectStore"]["destinationPath"] == "s3://homelab-backups/cnpg/gitea"
    assert drill["externalClusters"][0]["barmanObjectStore"]["destinationPath"] == "s3://homelab-backups/cnpg/gitea"
    assert prod["backup"]["barmanObjectStore"]["destinationPath"] == "s3://homelab-backups/cnpg/gitea"
    assert drill["backup"]["barmanObjectStore"]["destinationPath"] == "s3://homelab-drill/cnpg/gitea"


def test_point_in_time_target_reaches_the_cluster_object(example: GraphSpec) -> None:
    text = EXAMPLE_GRAPH.read_text().replace("restore: {backup: gitea-db, target_time: latest}",
                                             "restore: {backup: gitea-db, target_time: '2026-11-20T03:00:00Z'}")
    spec = GraphSpec.from_yaml(text, path=str(EXAMPLE_GRAPH))
    cluster = children(resources_of(spec, "prod"), "gitea-db")[-1].inputs["manifest"]
    assert cluster["spec"]["bootstrap"]["recovery"]["recoveryTarget"] == {"targetTime": "2026-11-20 03:00:00+00"}


def test_drill_without_a_wal_archive_override_is_refused(example: GraphSpec) -> None:
    text = EXAMPLE_GRAPH.read_text().replace(", wal_archive: s3://homelab-drill/cnpg/gitea", "")
    spec = GraphSpec.from_yaml(text, path=str(EXAMPLE_GRAPH))
    with pytest.raises(GraphError, match="vars.wal_archive is required"):
        resources_of(spec, "drill")


def test_longhorn_volume_pv_and_pvc_are_bound(example: GraphSpec) -> None:
    volume, pv, pvc = (c.inputs["manifest"] for c in children(resources_of(example, "prod"), "gitea-data-restore")[1:])
    assert volume["spec"]["fromBackup"] == ("s3://homelab-backups@eu-west-1/longhorn?backup=backup-3f9c1b2a7d4e4c21"
                                            "&volume=gitea-data")
    assert pv["spec"]["csi"]["volumeHandle"] == volume["metadata"]["name"]
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    assert pv["spec"]["claimRef"] == {"namespace": "gitea", "name": "gitea-shared-storage"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_drill_has_no_production_issuer_or_external_dns(example: GraphSpec) -> None:
    drill = resources_of(example, "drill")
    names = {c.name for c in drill.components}
    assert "letsencrypt-prod" not in names and "external-dns" not in names
    issuers = [o for _, o in drill.objects() if o.kind == "ClusterIssuer"]
    assert [o.manifest["spec"] for o in issuers] == [{"selfSigned": {}}]


def test_a_leaking_object_fails_naming_component_object_and_marker(example: GraphSpec) -> None:
    text = EXAMPLE_GRAPH.read_text().replace(", wal_archive: s3://homelab-drill/cnpg/gitea",
                                             ", wal_archive: s3://homelab-backups/cnpg/gitea-drill")
    spec = GraphSpec.from_yaml(text, path=str(EXAMPLE_GRAPH))
    with pytest.raises(GraphError) as caught:
        resources_of(spec, "drill")
    assert "component 'gitea-db' in drill mode: vars.wal_archive contains the production marker " \
           "'s3://homelab-backups'" in str(caught.value)


def test_object_scan_names_component_object_field_and_marker() -> None:
    from dr.core.resources import Child, ComponentResources, KubeObject, find_object_leaks

    source = KubeObject(manifest={"kind": "Cluster", "metadata": {"name": "db", "namespace": "apps"},
                                  "spec": {"origin": "s3://prod/x", "archive": "s3://prod/y"}},
                        restore_sources=(("spec", "origin"),))
    plan = ResourcePlan(cluster="c", mode="drill", kubernetes="1.30", components=(ComponentResources(
        name="db", layer="data", depends_on=(), children=(Child(kind="kube-object", name="db-cluster", inputs={},
                                                                 objects=(source,)),)),))
    assert find_object_leaks(plan, ("s3://prod",)) == [
        ("db", "component 'db' in drill mode: Cluster apps/db field spec.archive contains the production marker "
               "'s3://prod'; a drill must not touch production")]


def test_restore_sources_are_exempt_from_the_leak_check(example: GraphSpec) -> None:
    drill = resources_of(example, "drill")
    sources = [o for _, o in drill.objects() if o.restore_sources]
    assert {o.kind for o in sources} == {"Cluster", "Volume"}


def test_a_recovered_cloudnativepg_cluster_archives_under_a_new_server_name() -> None:
    """CloudNativePG refuses to archive into the archive it recovered from ("Expected empty archive")."""
    from dr.core.plan import plan_for
    from dr.core.resources import resource_plan
    from dr.graph_file import load_graph_file, read_text
    from tests.conftest import EXAMPLE_GRAPH

    spec = load_graph_file(EXAMPLE_GRAPH)
    for mode in ("prod", "drill"):
        plan = plan_for(spec, mode=mode, read_text=read_text)
        resources = resource_plan(plan, plan.graph.spec if plan.graph else spec, read_text=read_text)
        (cluster,) = [o.manifest for _, o in resources.objects() if o.kind == "Cluster"]
        source = cluster["spec"]["externalClusters"][0]["barmanObjectStore"]
        target = cluster["spec"]["backup"]["barmanObjectStore"]
        assert (target["destinationPath"], target["serverName"]) != (source["destinationPath"], source["serverName"])
        assert target["serverName"] == source["serverName"] + "-restored"


def test_pulumi_up_waits_for_each_restore_object_before_its_dependents_start() -> None:
    from dr.core.durations import STEP_TIMEOUT_FACTOR, STEP_TIMEOUT_FLOOR_S, step_timeout_s
    from dr.core.plan import plan_for
    from dr.core.resources import resource_plan
    from dr.graph_file import load_graph_file, read_text
    from tests.conftest import EXAMPLE_GRAPH

    spec = load_graph_file(EXAMPLE_GRAPH)
    plan = plan_for(spec, read_text=read_text)
    resources = resource_plan(plan, spec, read_text=read_text)
    waits = {o.kind: o.manifest["metadata"]["annotations"] for _, o in resources.objects()
             if o.kind in ("Cluster", "Restore", "Volume")}
    assert waits["Cluster"]["pulumi.com/waitFor"] == "condition=Ready"
    assert waits["Restore"]["pulumi.com/waitFor"] == "jsonpath={.status.phase}=Completed"
    assert waits["Volume"]["pulumi.com/waitFor"] == "jsonpath={.status.restoreRequired}=false"
    estimate = {s.name: s.estimate_s for s in plan.steps}["gitea-db"]
    cluster = next(o for _, o in resources.objects() if o.kind == "Cluster")
    # As long as the step's own timeout, which comes from its estimate.
    assert cluster.manifest["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == str(step_timeout_s(estimate))
    assert step_timeout_s(estimate) == max(STEP_TIMEOUT_FLOOR_S, STEP_TIMEOUT_FACTOR * estimate) != 900


def test_every_restore_has_its_namespace_before_its_objects_even_beside_a_sibling(example: GraphSpec) -> None:
    """pulumi up runs independent components side by side: gitea-db and gitea-data-restore both restore
    into `gitea` and neither depends on the other, so each must create the namespace (the same object);
    a restore that depends on one that created it does not create it again."""
    for mode in ("prod", "drill"):
        resources = resources_of(example, mode)
        by_name = {c.name: c for c in resources.components}
        for component in resources.components:
            objects = [c.inputs["manifest"] for c in component.children if c.kind == "kube-object"]
            namespaces = {o["metadata"].get("namespace") for o in objects} - {None}
            for namespace in namespaces:
                makers = [n for n, c in by_name.items()
                          if any((ch.kind == "kube-object" and ch.inputs["manifest"]["kind"] == "Namespace"
                                 and ch.inputs["manifest"]["metadata"]["name"] == namespace)
                                 or (ch.kind == "helm-release" and ch.inputs["namespace"] == namespace)
                                 for ch in c.children)]
                ancestors = example.ancestors(component.name) | {component.name}
                assert set(makers) & ancestors, f"{mode}: {component.name} may run before namespace {namespace}"


def test_a_restore_after_the_one_that_made_its_namespace_does_not_make_it_again() -> None:
    spec = GraphSpec.from_yaml("""\
cluster: lab
backups:
  a: {tool: velero, protects: [app], repo: "s3://b/velero", schedule: "0 3 * * *", retention: {daily: 7}, rpo: 1d}
  b: {tool: velero, protects: [app], repo: "s3://b/velero", schedule: "0 3 * * *", retention: {daily: 7}, rpo: 1d}
components:
  velero: {layer: addon}
  first: {layer: data, depends_on: [velero], restore: {backup: a}, vars: {namespace: apps}}
  second: {layer: data, depends_on: [first], restore: {backup: b}, vars: {namespace: apps}}
  app: {layer: app, depends_on: [second]}
""", path="graph.yaml")
    resources = resources_of(spec, "prod")
    kinds = {c.name: [ch.inputs["manifest"]["kind"] for ch in c.children if ch.kind == "kube-object"]
             for c in resources.components}
    assert kinds["first"].count("Namespace") == 1 and "Namespace" not in kinds["second"]
