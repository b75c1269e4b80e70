"""The sandbox drill's Kubernetes layer: one real `pulumi up` (engine + pulumi-kubernetes provider) for
every Kubernetes-level step, run beside dr's executor, which runs the host-level steps.

A Kubernetes-level step that depends on a host-level step is created only after the executor finished
that step; one that does not is created while the host-level step still runs; a failed host-level step
keeps its dependants out of the cluster and the run still ends."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dr.core.plan import plan_for
from dr.core.resources import ResourcePlan, resource_plan
from dr.core.spec import GraphSpec
from dr.drill.executor import Journal, StepRecord, StepState, Task, execute
from dr.drill.kube_layer import KubeLayer, StepGates, is_kube_step
from dr.kube.sandbox_cluster import SandboxCluster
from dr.kube.toolchain import Toolchain

pytestmark = pytest.mark.integration

GRAPH = """\
cluster: layer
kubernetes: "1.30"
components:
  nas: {layer: storage, depends_on: [], estimate: 1s}
  a: {layer: addon, depends_on: [], manifests: a.yaml, estimate: 1s}
  b: {layer: app, depends_on: [nas, a], manifests: b.yaml, estimate: 1s}
  c: {layer: app, depends_on: [b], manifests: c.yaml, estimate: 1s}
"""


def layer_resources(tmp_path: Path) -> ResourcePlan:
    work = tmp_path / "graph"
    work.mkdir()
    for name in "abc":
        (work / f"{name}.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c-{name}, namespace: default}}\ndata: {{k: '{name}'}}\n")
    path = work / "graph.yaml"
    path.write_text(GRAPH)
    spec = GraphSpec.from_yaml(GRAPH, path=str(path))

    def read(p: Path) -> str:
        return Path(p).read_text()

    return resource_plan(plan_for(spec, read_text=read), spec, read_text=read)


def configmap(cluster: SandboxCluster, name: str) -> dict[str, Any] | None:
    found = cluster.kubectl("get", "configmap", "-n", "default", name, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def run_layer(tmp_path: Path, cluster: SandboxCluster, toolchain: Toolchain, nas: Any
              ) -> tuple[KubeLayer, Mapping[str, StepRecord]]:
    resources = layer_resources(tmp_path)
    gates = StepGates()
    layer = KubeLayer(root=tmp_path / "layer", resources=resources, chart_mirror="http://127.0.0.1:9/",
                      kubeconfig=lambda: cluster.kubeconfig.read_text(), secrets={}, toolchain=toolchain,
                      gates=gates)
    tasks = [Task(c.name, c.depends_on, (lambda attempt, n=c.name: layer.apply(n)) if is_kube_step(c) else nas)
             for c in resources.components]

    try:
        records = execute(tasks, journal=Journal(tmp_path / "journal.sqlite", "t"), concurrency=4, retries=0,
                          on_event=gates.observe)
    finally:
        layer.close()
    return layer, records


def test_one_engine_run_creates_the_layer_and_waits_for_the_host_step_it_depends_on(
        cluster: SandboxCluster, provider: Toolchain, tmp_path: Path) -> None:
    def nas(attempt: int) -> dict[str, Any]:
        # The host-level step finishes only once the engine has created `a`, which does not wait for it:
        # the layer runs beside the executor, not after it.
        for _ in range(600):
            if configmap(cluster, "c-a") is not None:
                assert configmap(cluster, "c-b") is None, "b was created before the host step it waits for"
                return {}
            time.sleep(0.2)
        raise AssertionError("the engine never created `a` while the host step ran")

    layer, records = run_layer(tmp_path, cluster, provider, nas)

    assert {n: r.state for n, r in records.items()} == {n: StepState.SUCCEEDED for n in ("nas", "a", "b", "c")}
    assert layer.runs == 1  # one pulumi up for the whole layer, not one per step
    for name in "abc":
        assert (configmap(cluster, f"c-{name}") or {}).get("data") == {"k": name}
        outputs = records[name].outputs
        assert outputs["engine"].startswith("pulumi up") and outputs["resources"] == 1
        assert outputs["changes"] == {"create": 1}
    # The engine's own event times: b started after the host step finished, c after b was done.
    assert records["b"].outputs["first_start"] >= records["nas"].finished
    assert records["c"].outputs["first_start"] >= records["b"].outputs["last_done"]
    assert records["a"].outputs["last_done"] <= records["nas"].finished


def test_a_failed_host_step_keeps_its_dependants_out_and_the_run_ends(
        cluster: SandboxCluster, provider: Toolchain, tmp_path: Path) -> None:
    def nas(attempt: int) -> dict[str, Any]:
        raise RuntimeError("the NAS restore failed")

    layer, records = run_layer(tmp_path, cluster, provider, nas)

    assert records["nas"].state == StepState.FAILED
    assert records["a"].state == StepState.SUCCEEDED
    assert records["b"].state == StepState.SKIPPED and records["c"].state == StepState.SKIPPED
    assert configmap(cluster, "c-a") is not None
    assert configmap(cluster, "c-b") is None and configmap(cluster, "c-c") is None
    assert layer.runs == 1
