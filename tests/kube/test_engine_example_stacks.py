"""The example's prod and drill stacks through the real Pulumi engine and the real pulumi-kubernetes
provider (v4.25.0), against the sandbox's real control plane: every Helm release (pulled by the
provider's Helm from the chart mirror), manifest object and restore object is created for real.

Host-level steps (Ansible on the graph's hosts) are the one thing replaced here: their dynamic resources
get a recording runner, since the example's hosts are machines this test does not have (they are run
for real by the sandbox drill and tests/kube/test_engine_host_step.py). No operator runs in the sandbox:
the stand-in sets the completion status a restore object is awaited on, and says so."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from dr.core.invocations import hosts_inventory
from dr.drill.standin_operators import StandInOperators
from dr.kube.sandbox_cluster import SandboxCluster
from dr.kube.toolchain import Toolchain
from dr.stack.engine import Engine
from dr.stack.host_step import HostStepProvider
from dr.stack.program import load_resources, register
from tests.conftest import EXAMPLE_GRAPH
from tests.kube.conftest import restore_etcd_snapshot

pytestmark = pytest.mark.integration

S3 = {"ACCESS_KEY_ID": "drill-key", "ACCESS_SECRET_KEY": "drill-secret-canary-7f3a"}


def example_stack(provider: Toolchain, state: Path, *, mode: str, kubeconfig: str, mirror: str,
                  secrets: dict[str, Any], log: Path, adopt: bool = False, rebuild: str | None = None) -> Any:
    spec, resources = load_resources(graph_path=str(EXAMPLE_GRAPH), mode=mode)

    def record(inputs: Any, *, hosts: Any, secrets: Any) -> dict[str, Any]:  # pickled by value into the engine
        if "precheck" in inputs or "gitops" in inputs:  # these talk to the cluster: run them for real
            from dr.hosts.host_steps import run_step

            return run_step(inputs, hosts=hosts, secrets=secrets)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": inputs.get("step"), "secrets": sorted(secrets)}) + "\n")
        return {"changed": 0}

    def program() -> None:
        # dill pickles the recording runner (a closure) by value for every host step; in a long pytest
        # session that once exceeded the default recursion limit (CI, 2026-12-01). dr's own runner is a
        # module-level function, pickled by reference: this is the test harness's need, not dr's.
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
        register(resources, hosts=hosts_inventory(spec), secrets=pulumi.Output.secret(dict(secrets)),
                 kubeconfig=pulumi.Output.secret(kubeconfig), step_provider=HostStepProvider(runner=record),
                 chart_mirror=mirror, adopt=adopt, rebuild=rebuild)

    return Engine.at(state, provider).stack(project="dr", stack=mode, program=program)


def kubectl_json(cluster: SandboxCluster, *args: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return loaded


@pytest.fixture
def operators(cluster: SandboxCluster) -> Iterator[StandInOperators]:
    _, resources = load_resources(graph_path=str(EXAMPLE_GRAPH), mode="drill")
    stand_in = StandInOperators.for_plan(resources, cluster.kubectl)
    stand_in.start()
    yield stand_in
    stand_in.stop()


def test_the_drill_stack_is_created_for_real_then_unchanged_then_destroyed(
        provider: Toolchain, cluster: SandboxCluster, chart_mirror: str, operators: StandInOperators,
        tmp_path: Path) -> None:
    log = tmp_path / "host-steps.jsonl"
    secrets: dict[str, Any] = {"k3s_token": "token-1", "gitea/gitea-db-s3": S3}
    stack = example_stack(provider, tmp_path / "engine", mode="drill", kubeconfig=cluster.kubeconfig.read_text(),
                          mirror=chart_mirror, secrets=secrets, log=log)
    first = stack.up(on_output=lambda line: None, color="never")
    assert first.summary.result == "succeeded"
    created = first.summary.resource_changes["create"]

    # Helm releases from the mirror, with the drill's values: one gitea replica, not production's two.
    gitea = kubectl_json(cluster, "deployment", "gitea", "-n", "gitea")
    assert gitea["spec"]["replicas"] == 1 and gitea["status"].get("availableReplicas") == 1
    values = json.loads(kubectl_json(cluster, "configmap", "gitea-dr-sandbox-values", "-n", "gitea")["data"]["values.json"])
    assert values["persistence"]["claimName"] == "gitea-shared-storage"
    releases = json.loads(cluster.kubectl("get", "secrets", "-A", "-l", "owner=helm", "-o", "json").stdout)["items"]
    assert {r["metadata"]["labels"]["name"] for r in releases} >= {"cilium", "longhorn", "gitea", "grafana", "velero"}
    assert "external-dns" not in {r["metadata"]["labels"]["name"] for r in releases}, "prod_only in a drill"
    # The operators' charts installed the real upstream CRDs, and the restore objects exist with them.
    recovered = kubectl_json(cluster, "clusters.postgresql.cnpg.io", "gitea-db", "-n", "gitea")
    assert "recovery" in recovered["spec"]["bootstrap"]
    assert kubectl_json(cluster, "pvc", "gitea-shared-storage", "-n", "gitea")["status"]["phase"] == "Bound"
    issuer = kubectl_json(cluster, "clusterissuer", "homelab-issuer")
    assert "selfSigned" in issuer["spec"], "the drill's self-signed issuer stands in for Let's Encrypt"
    assert any("CloudNativePG" in n.text for n in operators.notes), "the stand-in says what it did"
    # The credential Secret the precheck created from the stack's secrets; the value is not in the state.
    assert cluster.kubectl("get", "secret", "gitea-db-s3", "-n", "gitea", check=False).returncode == 0
    # (`export_stack` decrypts: read the state files at rest instead.)
    state_files = [p for p in (tmp_path / "engine" / "pulumi-state").rglob("*") if p.is_file()]
    assert state_files and not [p for p in state_files if S3["ACCESS_SECRET_KEY"].encode() in p.read_bytes()]

    second = stack.up(on_output=lambda line: None, color="never")
    assert set(second.summary.resource_changes) == {"same"}, second.summary.resource_changes
    assert second.summary.resource_changes["same"] == created

    calls_before = len(log.read_text().splitlines())
    secrets["k3s_token"] = "token-2"  # the program reads the dict again on the next up
    third = stack.up(on_output=lambda line: None, color="never")
    rerun = [json.loads(line)["step"] for line in log.read_text().splitlines()[calls_before:]]
    assert sorted(rerun) == ["k3s-agents", "k3s-server"], "only the steps that read k3s_token"
    assert third.summary.resource_changes.get("update") == 2, third.summary.resource_changes

    calls_before = len(log.read_text().splitlines())
    stack.destroy(on_output=lambda line: None, color="never")
    assert len(log.read_text().splitlines()) == calls_before, "destroy ran nothing on the hosts"
    assert cluster.kubectl("get", "deployment", "gitea", "-n", "gitea", check=False).returncode != 0
    # Data-bearing objects are retained on delete: the destroy removed the drill's apps, not its data.
    assert cluster.kubectl("get", "pvc", "gitea-shared-storage", "-n", "gitea", check=False).returncode == 0
    assert cluster.kubectl("get", "clusters.postgresql.cnpg.io", "gitea-db", "-n", "gitea",
                           check=False).returncode == 0


def test_the_prod_stack_protects_its_data_from_destroy(provider: Toolchain, cluster: SandboxCluster,
                                                       chart_mirror: str, tmp_path: Path) -> None:
    _, resources = load_resources(graph_path=str(EXAMPLE_GRAPH), mode="prod")
    stand_in = StandInOperators.for_plan(resources, cluster.kubectl)
    stand_in.start()
    try:
        stack = example_stack(provider, tmp_path / "engine", mode="prod", kubeconfig=cluster.kubeconfig.read_text(),
                              mirror=chart_mirror, secrets={"k3s_token": "t", "gitea/gitea-db-s3": S3},
                              log=tmp_path / "log.jsonl")
        preview = stack.preview(on_output=lambda line: None, color="never")
        assert preview.change_summary.get("create", 0) > 20
        up = stack.up(on_output=lambda line: None, color="never")
        assert up.summary.result == "succeeded"
        assert kubectl_json(cluster, "deployment", "gitea", "-n", "gitea")["spec"]["replicas"] == 2
        releases = json.loads(cluster.kubectl("get", "secrets", "-A", "-l", "owner=helm", "-o", "json").stdout)
        assert "external-dns" in {r["metadata"]["labels"]["name"] for r in releases["items"]}
        from pulumi import automation

        with pytest.raises(automation.errors.CommandError, match="protect"):
            stack.destroy(on_output=lambda line: None, color="never")
        assert cluster.kubectl("get", "pvc", "gitea-shared-storage", "-n", "gitea", check=False).returncode == 0
    finally:
        stand_in.stop()


def uids(cluster: SandboxCluster) -> dict[str, str]:
    """The identities of objects a rebuild must never recreate (data-bearing, and ones a release owns)."""
    objects = [("pvc", "gitea-shared-storage", "gitea"), ("clusters.postgresql.cnpg.io", "gitea-db", "gitea"),
               ("deployment", "gitea", "gitea"), ("service", "gitea", "gitea"), ("namespace", "gitea", "")]
    return {f"{kind}/{name}": kubectl_json(cluster, kind, name, *(["-n", ns] if ns else []))["metadata"]["uid"]
            for kind, name, ns in objects}


def test_control_plane_restored_from_an_etcd_snapshot_is_adopted_with_the_state_surviving_or_lost(
        provider: Toolchain, cluster: SandboxCluster, chart_mirror: str, tmp_path: Path) -> None:
    """A real `pulumi up` builds the example's prod stack; a real etcd snapshot of that cluster is restored
    (etcdutl) and a new control plane starts on it. State surviving: refresh, then up creates nothing.
    State lost: with dr:recovery scratch the run stops and names a release (that cluster is not empty);
    with etcd-snapshot dr sets the Helm release records aside and Helm adopts the objects: the PVC, the
    CloudNativePG Cluster and the objects a release owns keep the uids they had before the disaster."""
    from pulumi import automation

    _, resources = load_resources(graph_path=str(EXAMPLE_GRAPH), mode="prod")
    common: dict[str, Any] = {"mode": "prod", "mirror": chart_mirror, "log": tmp_path / "log.jsonl",
                              "secrets": {"k3s_token": "t", "gitea/gitea-db-s3": S3}}
    stand_in = StandInOperators.for_plan(resources, cluster.kubectl)
    stand_in.start()
    try:
        built = example_stack(provider, tmp_path / "engine", kubeconfig=cluster.kubeconfig.read_text(), **common).up(
            on_output=lambda line: None, color="never")
        assert built.summary.result == "succeeded"
    finally:
        stand_in.stop()
    before = uids(cluster)
    releases = {r["metadata"]["name"] for r in kubectl_json(cluster, "secrets", "-A", "-l", "owner=helm")["items"]}
    restored_data = restore_etcd_snapshot(cluster, tmp_path)
    cluster.down()  # the disaster
    restored = SandboxCluster(tmp_path / "restored-cluster", toolchain=cluster.toolchain)
    restored.up(etcd_data=restored_data)
    stand_in = StandInOperators.for_plan(resources, restored.kubectl)
    stand_in.start()
    try:
        assert uids(restored) == before, "the objects came back with the snapshot"
        kubeconfig = restored.kubeconfig.read_text()

        surviving = example_stack(provider, tmp_path / "engine", kubeconfig=kubeconfig, **common)
        # The restored control plane has new certificates: refresh with the program, so the provider reads
        # with the kubeconfig the program gives it (the one in the state is the lost control plane's).
        surviving.refresh(on_output=lambda line: None, color="never", run_program=True)
        after_refresh = surviving.up(on_output=lambda line: None, color="never").summary.resource_changes
        assert not {"create", "delete", "replace"} & set(after_refresh), after_refresh

        scratch = example_stack(provider, tmp_path / "engine-lost-scratch", kubeconfig=kubeconfig, **common)
        with pytest.raises(automation.errors.CommandError) as refused:
            scratch.up(on_output=lambda line: None, color="never")
        assert "already exists in the cluster" in str(refused.value) and "dr:recovery etcd-snapshot" in str(refused.value)

        lost = example_stack(provider, tmp_path / "engine-lost", kubeconfig=kubeconfig, adopt=True, **common)
        adopted = lost.up(on_output=lambda line: None, color="never")
        assert adopted.summary.result == "succeeded"
        assert uids(restored) == before, "nothing was recreated"
        aside = kubectl_json(restored, "secrets", "-A", "-l", "owner=dr-set-aside")["items"]
        assert {a["metadata"]["name"] for a in aside} == {f"dr-set-aside.{name}" for name in releases}
        assert kubectl_json(restored, "deployment", "gitea", "-n", "gitea")["metadata"]["annotations"][
            "meta.helm.sh/release-name"] == "gitea"
        again = lost.up(on_output=lambda line: None, color="never")
        assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes
    finally:
        stand_in.stop()
        restored.down()


def test_from_scratch_with_the_state_surviving_refresh_then_up_rebuilds_everything(
        provider: Toolchain, cluster: SandboxCluster, chart_mirror: str, operators: StandInOperators,
        tmp_path: Path) -> None:
    """The cluster is gone (hosts wiped, etcd empty) and the Pulumi state survived. `pulumi refresh` with
    PULUMI_K8S_DELETE_UNREACHABLE drops the lost cluster's objects from the state; a new dr:rebuild value
    runs every host step again (the state says they ran; the hosts were wiped); `up` builds it all anew."""
    log = tmp_path / "host-steps.jsonl"
    common: dict[str, Any] = {"mode": "drill", "mirror": chart_mirror, "log": log,
                              "secrets": {"k3s_token": "t", "gitea/gitea-db-s3": S3}}
    first = example_stack(provider, tmp_path / "engine", kubeconfig=cluster.kubeconfig.read_text(), **common)
    assert first.up(on_output=lambda line: None, color="never").summary.result == "succeeded"
    host_steps = {json.loads(line)["step"] for line in log.read_text().splitlines()}
    operators.stop()
    cluster.down()  # the disaster: the old control plane and everything in it are gone

    rebuilt = SandboxCluster(tmp_path / "new-cluster", toolchain=cluster.toolchain)
    rebuilt.up()
    _, resources = load_resources(graph_path=str(EXAMPLE_GRAPH), mode="drill")
    stand_in = StandInOperators.for_plan(resources, rebuilt.kubectl)
    stand_in.start()
    try:
        stack = example_stack(provider, tmp_path / "engine", kubeconfig=rebuilt.kubeconfig.read_text(),
                              rebuild="2026-12-01", **common)
        stack.workspace.env_vars["PULUMI_K8S_DELETE_UNREACHABLE"] = "true"
        stack.refresh(on_output=lambda line: None, color="never")
        calls_before = len(log.read_text().splitlines())
        up = stack.up(on_output=lambda line: None, color="never")
        assert up.summary.result == "succeeded"
        rerun = {json.loads(line)["step"] for line in log.read_text().splitlines()[calls_before:]}
        assert rerun == host_steps, "every host step ran again, and only once each"
        assert kubectl_json(rebuilt, "deployment", "gitea", "-n", "gitea")["status"].get("availableReplicas") == 1
        assert kubectl_json(rebuilt, "pvc", "gitea-shared-storage", "-n", "gitea")["status"]["phase"] == "Bound"
        assert "recovery" in kubectl_json(rebuilt, "clusters.postgresql.cnpg.io", "gitea-db", "-n", "gitea")[
            "spec"]["bootstrap"]
        again = stack.up(on_output=lambda line: None, color="never")
        assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes
    finally:
        stand_in.stop()
        rebuilt.down()
