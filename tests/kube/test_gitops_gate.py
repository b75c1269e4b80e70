"""Gating on the real API server: a Flux Kustomization is created suspended, stays suspended while the
restore runs (even when its parent applies it again from git), and is resumed only after the restore
object reports completion. No Flux or CloudNativePG controller runs here: the test sets the status
fields those controllers would set, through the real status subresource; everything dr does is real."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import yaml

from dr.core.gitops import HELD_AUTOMATED
from dr.errors import DrError
from dr.kube.gitops_gate import GateError, GitOpsGate
from dr.kube.sandbox_cluster import SandboxCluster

pytestmark = pytest.mark.integration

KUSTOMIZATION: dict[str, Any] = {
    "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
    "metadata": {"name": "gitea", "namespace": "flux-system"},
    "spec": {"interval": "10m", "path": "./apps/gitea", "prune": True,
             "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}
RESTORE: dict[str, Any] = {
    "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "gitea-db", "namespace": "gitea"},
    "spec": {"instances": 1, "storage": {"size": "1Gi"}}}


def live(cluster: SandboxCluster, resource: str, namespace: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(cluster.kubectl("get", resource, "-n", namespace, "-o", "json").stdout)
    return loaded


def set_status(cluster: SandboxCluster, resource: str, namespace: str, status: dict[str, Any]) -> None:
    cluster.kubectl("patch", resource, "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": status}))


def test_a_flux_kustomization_is_resumed_only_after_its_restore_completes(cluster: SandboxCluster) -> None:
    cluster.install_crds([("kustomize.toolkit.fluxcd.io/v1", "Kustomization"), ("postgresql.cnpg.io/v1", "Cluster")])
    for namespace in ("flux-system", "gitea"):
        cluster.kubectl("create", "namespace", namespace)
    gate = GitOpsGate(cluster.kubectl, poll_s=0.2)
    ks = "kustomization.kustomize.toolkit.fluxcd.io/gitea"

    gate.hold(KUSTOMIZATION)
    assert live(cluster, ks, "flux-system")["spec"]["suspend"] is True

    # The parent Kustomization applies the object from git (no `suspend` there), as kustomize-controller
    # does: server-side, its own field manager, forcing conflicts. dr's hold survives it.
    cluster.kubectl("apply", "--server-side", "--field-manager=kustomize-controller", "--force-conflicts",
                    "-f", "-", input_text=yaml.safe_dump(KUSTOMIZATION))
    assert live(cluster, ks, "flux-system")["spec"]["suspend"] is True, "the parent's apply undid the hold"

    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(RESTORE))
    outcome: dict[str, Any] = {}

    def release_after_restore() -> None:
        try:
            gate.wait_restored([RESTORE], timeout_s=60)
            gate.release(KUSTOMIZATION)
            outcome["ready"] = gate.wait_ready(KUSTOMIZATION, timeout_s=60)
        except DrError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=release_after_restore)
    worker.start()
    time.sleep(2)
    assert live(cluster, ks, "flux-system")["spec"]["suspend"] is True, "resumed before the restore finished"

    # CloudNativePG reports the recovered cluster Ready.
    set_status(cluster, "cluster.postgresql.cnpg.io/gitea-db", "gitea",
               {"conditions": [{"type": "Ready", "status": "True", "reason": "ClusterIsReady", "message": "ok",
                                "lastTransitionTime": "2026-11-23T00:00:00Z"}]})
    deadline = time.time() + 30
    while time.time() < deadline and live(cluster, ks, "flux-system")["spec"].get("suspend") is not False:
        time.sleep(0.2)
    assert live(cluster, ks, "flux-system")["spec"]["suspend"] is False, "not resumed after the restore"
    assert worker.is_alive(), "the gate must wait for the Kustomization to report Ready"

    # kustomize-controller reconciles and reports Ready for this generation.
    generation = live(cluster, ks, "flux-system")["metadata"]["generation"]
    set_status(cluster, ks, "flux-system", {"conditions": [{
        "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied revision",
        "observedGeneration": generation, "lastTransitionTime": "2026-11-23T00:00:00Z"}]})
    worker.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["ready"]["metadata"]["name"] == "gitea"
    shown = json.loads(cluster.kubectl("get", ks, "-n", "flux-system", "-o", "json", "--show-managed-fields").stdout)
    owners = [m["manager"] for m in shown["metadata"]["managedFields"]
              if "f:suspend" in json.dumps(m.get("fieldsV1", {}))]
    assert owners == ["dr"], f"the suspend field must be dr's alone, not {owners}"


def test_a_restore_that_never_completes_keeps_the_object_held(cluster: SandboxCluster) -> None:
    cluster.install_crds([("kustomize.toolkit.fluxcd.io/v1", "Kustomization"), ("postgresql.cnpg.io/v1", "Cluster")])
    for namespace in ("flux-system", "gitea"):
        cluster.kubectl("create", "namespace", namespace)
    gate = GitOpsGate(cluster.kubectl, poll_s=0.2)
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(RESTORE))
    with pytest.raises(GateError, match="did not finish restoring within 2s"):
        gate.run(KUSTOMIZATION, [RESTORE], restore_timeout_s=2, ready_timeout_s=5)
    assert live(cluster, "kustomization.kustomize.toolkit.fluxcd.io/gitea", "flux-system")["spec"]["suspend"] is True


def test_an_argo_application_is_held_without_automated_sync_and_gets_it_back(cluster: SandboxCluster) -> None:
    cluster.install_crds([("argoproj.io/v1alpha1", "Application")])
    cluster.kubectl("create", "namespace", "argocd")
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": "gitea", "namespace": "argocd"},
           "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc",
                                                          "namespace": "gitea"},
                    "source": {"repoURL": "https://github.com/lab/cluster", "path": "apps/gitea"},
                    "syncPolicy": {"automated": {"prune": True, "selfHeal": True}}}}
    gate = GitOpsGate(cluster.kubectl, poll_s=0.2)
    gate.hold(app)
    held = live(cluster, "application.argoproj.io/gitea", "argocd")
    assert "automated" not in held["spec"].get("syncPolicy", {})
    assert json.loads(held["metadata"]["annotations"][HELD_AUTOMATED]) == {"prune": True, "selfHeal": True}
    gate.release(app)
    released = live(cluster, "application.argoproj.io/gitea", "argocd")
    assert released["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert HELD_AUTOMATED not in released["metadata"].get("annotations", {})
