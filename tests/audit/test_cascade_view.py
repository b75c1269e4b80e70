"""What the cascade check reads from a cluster's objects (the live test is tests/kube/test_audit_cascade.py)."""

from __future__ import annotations

from dr.audit.checks import AuditInput, audit
from dr.audit.sources import cascade_view
from dr.core.spec import GraphSpec
from tests.restore_tools.test_kopiur import GRAPH


def status(**extra: object) -> dict:
    return {"pvcs": [{"metadata": {"name": "data", "namespace": "app"}},
                     {"metadata": {"name": "kept", "namespace": "app",
                                   "annotations": {"kustomize.toolkit.fluxcd.io/prune": "disabled"}}}],
            "cnpg": [{"metadata": {"name": "db", "namespace": "app"}}],
            "pvs": [{"metadata": {"name": "pv-1"}, "spec": {"persistentVolumeReclaimPolicy": "Delete",
                                                            "claimRef": {"namespace": "app", "name": "data"}}},
                    {"metadata": {"name": "pv-2"}, "spec": {"persistentVolumeReclaimPolicy": "Retain",
                                                            "claimRef": {"namespace": "app", "name": "kept"}}},
                    {"metadata": {"name": "unbound"}, "spec": {"persistentVolumeReclaimPolicy": "Delete"}}],
            "crds": [{"metadata": {"name": "clusters.postgresql.cnpg.io"}, "spec": {"group": "postgresql.cnpg.io"}},
                     {"metadata": {"name": "restores.kopiur.home-operations.com",
                                   "annotations": {"helm.sh/resource-policy": "keep"}},
                      "spec": {"group": "kopiur.home-operations.com"}},
                     {"metadata": {"name": "certificates.cert-manager.io"}, "spec": {"group": "cert-manager.io"}}],
            "kustomizations": [
                {"metadata": {"name": "app", "namespace": "flux-system"}, "spec": {"prune": True},
                 "status": {"inventory": {"entries": [
                     {"id": "app_data__PersistentVolumeClaim"}, {"id": "app_kept__PersistentVolumeClaim"},
                     {"id": "app_db_postgresql.cnpg.io_Cluster"}, {"id": "app_web_apps_Deployment"}]}}},
                {"metadata": {"name": "off", "namespace": "flux-system"}, "spec": {"prune": False},
                 "status": {"inventory": {"entries": [{"id": "app_data__PersistentVolumeClaim"}]}}}],
            **extra}


def test_volumes_crds_and_pruned_data_are_read_from_the_cluster_objects() -> None:
    view = cascade_view(status())
    assert view is not None
    assert view.volumes == (("pv-1", "app/data", "Delete"), ("pv-2", "app/kept", "Retain"))
    assert view.data_crds == (("clusters.postgresql.cnpg.io", False), ("restores.kopiur.home-operations.com", True))
    assert view.pruned == (("Kustomization flux-system/app", "Cluster app/db"),
                           ("Kustomization flux-system/app", "PersistentVolumeClaim app/data"))
    findings = audit(AuditInput(spec=GraphSpec.from_yaml(GRAPH, path="g.yaml"), states={}, cascade=view))
    assert sorted(f.subject for f in findings if f.check == "cascade") == [
        "Cluster app/db", "CustomResourceDefinition clusters.postgresql.cnpg.io", "PersistentVolume pv-1",
        "PersistentVolumeClaim app/data"]


def test_a_cluster_whose_volumes_or_crds_cannot_be_listed_is_not_a_pass() -> None:
    assert cascade_view(None) is None
    assert cascade_view({"pvcs": []}) is None
    assert cascade_view(status(_unavailable=["crds"])) is None
