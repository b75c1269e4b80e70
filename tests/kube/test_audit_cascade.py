"""The cascade behind the uninstall incident, on a real API server: `dr audit --kubeconfig` finds what would
let it reach the data before it happens, and with those guards in place the real cascade (the database
object uninstalled: the controller-manager's garbage collector deletes the claim it owns) leaves the data
volume Released, not deleted, with its bytes in place.

No operator and no kubelet run here: the PersistentVolume is a hostPath volume the test writes itself,
so what is shown is the cascade through the API server and the garbage collector, and that the volume
(and the directory it names) survives it; not a storage driver's deletion."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dr.kube.sandbox_cluster import SandboxCluster
from tests.restore_tools.test_kopiur import GRAPH

pytestmark = pytest.mark.integration
CNPG = ("postgresql.cnpg.io/v1", "Cluster")
FLUX = ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")


def apply(cluster: SandboxCluster, manifest: dict[str, Any]) -> dict[str, Any]:
    cluster.kubectl("apply", "--server-side", "-f", "-", input_text=yaml.safe_dump(manifest))
    namespace = ["-n", manifest["metadata"]["namespace"]] if manifest["metadata"].get("namespace") else []
    resource = manifest["kind"].lower() + ("." + manifest["apiVersion"].split("/")[0] if "." in manifest["apiVersion"]
                                           else "")
    loaded: dict[str, Any] = json.loads(cluster.kubectl("get", resource, manifest["metadata"]["name"], *namespace,
                                                        "-o", "json").stdout)
    return loaded


def cascade_findings(run_cli, cluster: SandboxCluster, graph: Path) -> list[tuple[str, str]]:
    result = run_cli("audit", "--graph", str(graph), "--kubeconfig", str(cluster.kubeconfig), "--json",
                     "--ignore", "freshness", "drill-recency", "coverage", "retention")
    return sorted((f["severity"], f["subject"]) for f in json.loads(result.out)["findings"] if f["check"] == "cascade")


def test_the_audit_finds_what_a_cascade_would_destroy_and_the_guards_hold(
        cluster: SandboxCluster, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(cluster.toolchain.path('kubectl')).parent}{os.pathsep}{os.environ['PATH']}")
    graph = tmp_path / "cluster.yaml"
    graph.write_text(GRAPH)
    cluster.install_crds({CNPG, FLUX})
    for namespace in ("gitea", "flux-system"):
        cluster.kubectl("create", "namespace", namespace)
    data = tmp_path / "volume"
    data.mkdir()
    (data / "repositories.db").write_bytes(b"the only copy\n" * 1000)
    apply(cluster, {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "gitea-data"},
                    "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                             "persistentVolumeReclaimPolicy": "Delete", "hostPath": {"path": str(data)},
                             "claimRef": {"namespace": "gitea", "name": "gitea-data"}}})
    database = apply(cluster, {"apiVersion": CNPG[0], "kind": CNPG[1], "metadata": {"name": "gitea-db",
                                                                                    "namespace": "gitea"},
                               "spec": {"instances": 1, "storage": {"size": "1Gi"}}})
    # The claim is owned by the database cluster, as an operator makes it.
    apply(cluster, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "gitea-data", "namespace": "gitea", "ownerReferences": [
                        {"apiVersion": CNPG[0], "kind": CNPG[1], "name": "gitea-db",
                         "uid": database["metadata"]["uid"]}]},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                             "volumeName": "gitea-data", "storageClassName": ""}})
    apply(cluster, {"apiVersion": FLUX[0], "kind": FLUX[1], "metadata": {"name": "gitea", "namespace": "flux-system"},
                    "spec": {"interval": "10m", "path": "./apps/gitea", "prune": True,
                             "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}})
    cluster.kubectl("patch", "kustomization.kustomize.toolkit.fluxcd.io", "gitea", "-n", "flux-system",
                    "--subresource=status", "--type=merge", "-p", json.dumps(
                        {"status": {"inventory": {"entries": [{"id": "gitea_gitea-data__PersistentVolumeClaim",
                                                               "v": "v1"}]}}}))

    assert cascade_findings(run_cli, cluster, graph) == [
        ("high", "CustomResourceDefinition clusters.postgresql.cnpg.io"), ("high", "PersistentVolume gitea-data"),
        ("medium", "PersistentVolumeClaim gitea/gitea-data")]

    # The guards the findings name.
    cluster.kubectl("patch", "pv", "gitea-data", "-p", '{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}')
    cluster.kubectl("annotate", "crd", "clusters.postgresql.cnpg.io", "helm.sh/resource-policy=keep")
    cluster.kubectl("annotate", "pvc", "gitea-data", "-n", "gitea", "kustomize.toolkit.fluxcd.io/prune=disabled")
    assert cascade_findings(run_cli, cluster, graph) == []

    # The cascade itself: the database cluster is uninstalled (its chart removed, a prune): the garbage
    # collector of the controller-manager deletes the claim it owned.
    cluster.kubectl("delete", "cluster.postgresql.cnpg.io", "gitea-db", "-n", "gitea", "--wait=true", timeout=120)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and cluster.kubectl("get", "pvc", "gitea-data", "-n", "gitea",
                                                          check=False).returncode == 0:
        time.sleep(1)
    assert cluster.kubectl("get", "pvc", "gitea-data", "-n", "gitea", check=False).returncode != 0, \
        "the garbage collector deleted the claim its deleted owner held"
    volume = json.loads(cluster.kubectl("get", "pv", "gitea-data", "-o", "json").stdout)
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain" and volume["status"]["phase"] == "Released"
    assert (data / "repositories.db").read_bytes() == b"the only copy\n" * 1000
