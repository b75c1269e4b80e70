"""The GitOps gate through `pulumi up`, for real: the Pulumi engine (Automation API) runs the gate's
dynamic resources — the hold, then the release that waits for the restore object — against the
sandbox's real kube-apiserver, with the inputs dr's resource plan gives them. The restore object is
created by the test (pulumi-kubernetes is not available here, docs/sandbox.md) and no Flux or
CloudNativePG controller runs: the test sets the status they would set."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.core.spec import GraphSpec
from dr.core.steps import step_inputs
from dr.kube.sandbox_cluster import SandboxCluster
from dr.kube.toolchain import Toolchain
from dr.stack.engine import Engine
from dr.stack.host_step import HostStep

pytestmark = pytest.mark.integration

KUSTOMIZATION = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                 "metadata": {"name": "gitea", "namespace": "flux-system"},
                 "spec": {"interval": "10m", "path": "./apps/gitea", "prune": True,
                          "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}

GRAPH = """\
cluster: lab
backups:
  gitea-db: {tool: cnpg-barman, protects: [gitea], repo: "s3://lab/cnpg/gitea", schedule: "0 3 * * *",
             retention: {within: 30d}, rpo: 1h}
components:
  flux: {layer: gitops}
  gitea-db-restore:
    layer: data
    depends_on: [flux]
    restore: {backup: gitea-db}
    vars: {namespace: gitea, instances: 1, storage_size: 1Gi}
  gitea:
    layer: app
    depends_on: [gitea-db-restore]
    reconciled_by: {kind: Kustomization, name: gitea, controller: flux, manifest: gitops/gitea.yaml}
"""


def gate_children(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    (tmp_path / "gitops").mkdir()
    (tmp_path / "gitops" / "gitea.yaml").write_text(yaml.safe_dump(KUSTOMIZATION))
    spec = GraphSpec.from_yaml(GRAPH, path=str(tmp_path / "cluster.yaml"))
    plan = plan_for(spec, read_text=lambda p: Path(p).read_text())
    assert plan.graph is not None
    resources = resource_plan(plan, plan.graph.spec, read_text=lambda p: Path(p).read_text())
    by_name = {c.name: c for c in resources.components}
    (hold,) = [c for c in by_name["flux"].children if c.kind == "gitops-hold"]
    (release,) = [c for c in by_name["gitea"].children if c.kind == "gitops-release"]
    return step_inputs(hold), step_inputs(release)


def live(cluster: SandboxCluster, resource: str, namespace: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(cluster.kubectl("get", resource, "-n", namespace, "-o", "json").stdout)
    return loaded


def test_pulumi_up_holds_the_kustomization_until_the_restore_is_ready(engine: Toolchain, cluster: SandboxCluster,
                                                                      tmp_path: Path) -> None:
    hold_inputs, release_inputs = gate_children(tmp_path)
    (restore,) = release_inputs["restores"]
    assert restore["kind"] == "Cluster" and hold_inputs["manifest"]["spec"]["path"] == "./apps/gitea"
    cluster.install_crds([("kustomize.toolkit.fluxcd.io/v1", "Kustomization"), ("postgresql.cnpg.io/v1", "Cluster")])
    for namespace in ("flux-system", "gitea"):
        cluster.kubectl("create", "namespace", namespace)
    kubeconfig = cluster.kubeconfig.read_text()
    restore_for_test = {k: v for k, v in restore.items() if k != "metadata"} | {
        "metadata": {"name": restore["metadata"]["name"], "namespace": "gitea"}}

    def program() -> None:
        hold = HostStep("gitea-hold", step="gitea", hosts_inventory={}, secrets={},
                        inputs={**hold_inputs, "cluster_kubeconfig": pulumi.Output.secret(kubeconfig)})
        HostStep("gitea-release", step="gitea", hosts_inventory={}, secrets={},
                 inputs={**release_inputs, "cluster_kubeconfig": pulumi.Output.secret(kubeconfig),
                         "restore_timeout_s": 120, "ready_timeout_s": 120},
                 opts=pulumi.ResourceOptions(depends_on=[hold]))

    stack = Engine.at(tmp_path / "engine", engine).stack(project="gate", stack="dev", program=program)
    result: dict[str, Any] = {}
    lines: list[str] = []
    up = threading.Thread(target=lambda: result.update(up=stack.up(on_output=lines.append)))
    up.start()
    ks = "kustomization.kustomize.toolkit.fluxcd.io/gitea"
    deadline = time.time() + 120
    while time.time() < deadline and cluster.kubectl("get", ks, "-n", "flux-system", check=False).returncode != 0:
        time.sleep(0.5)
    assert live(cluster, ks, "flux-system")["spec"]["suspend"] is True, "pulumi up did not create it held"

    # The restore object appears (pulumi-kubernetes would create it) and is not ready yet: still held.
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(restore_for_test))
    time.sleep(3)
    assert live(cluster, ks, "flux-system")["spec"]["suspend"] is True, "resumed before the restore was ready"
    assert up.is_alive()

    cluster.kubectl("patch", "cluster.postgresql.cnpg.io/gitea-db-restore", "-n", "gitea", "--subresource=status",
                    "--type=merge", "-p", json.dumps({"status": {"conditions": [{
                        "type": "Ready", "status": "True", "reason": "ClusterIsReady", "message": "ok",
                        "lastTransitionTime": "2026-11-23T00:00:00Z"}]}}))
    while time.time() < deadline and live(cluster, ks, "flux-system")["spec"].get("suspend") is not False:
        time.sleep(0.5)
    assert live(cluster, ks, "flux-system")["spec"]["suspend"] is False
    generation = live(cluster, ks, "flux-system")["metadata"]["generation"]
    cluster.kubectl("patch", ks, "-n", "flux-system", "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                                    "message": "ok", "observedGeneration": generation,
                                    "lastTransitionTime": "2026-11-23T00:00:00Z"}]}}))
    up.join(120)
    assert not up.is_alive() and result["up"].summary.result == "succeeded", "\n".join(lines[-20:])
    assert result["up"].summary.resource_changes.get("create") == 3  # the stack and the two gate steps
    state = "".join(p.read_text() for p in (tmp_path / "engine").rglob("*.json"))
    assert "client-key-data" not in state or "BEGIN" not in state, "the kubeconfig is in the state in plaintext"
    assert cluster.kubeconfig.read_text().split("client-key-data: ")[-1][:40] not in state
