"""The Pulumi program under mocks (preview=False): what it registers, and that it passes options on."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from dr.stack.preview import CapturingMonitor, RegisteredResource, _Mocks
from dr.stack.program import hosts_inventory, load_resources, register
from tests.conftest import REPO


class Registered(dict[str, RegisteredResource]):
    """Children by name (a component and its Helm release share a name: children win), plus all."""

    def __init__(self, resources: list[RegisteredResource]) -> None:
        super().__init__({r.name: r for r in resources if r.type != "dr:recovery:Component"})
        self.components = {r.name: r for r in resources if r.type == "dr:recovery:Component"}


def run_program(mode: str) -> Registered:
    mocks = _Mocks()
    monitor = CapturingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="dr", stack=mode, preview=False, monitor=monitor)
    spec, resources = load_resources(graph_path=str(REPO / "stacks" / "cluster.yaml"), mode=mode)
    captured: dict[str, Any] = {}

    def program() -> pulumi.Output[Any]:
        registered = register(resources, hosts=hosts_inventory(spec), secrets={"k3s_token": "canary-token"})
        captured.update(registered)
        return pulumi.Output.from_input(None)

    pulumi.runtime.test(program)()
    assert captured, "register returned the components"
    return Registered(monitor.registered)


@pytest.fixture(scope="module")
def prod() -> Registered:
    return run_program("prod")


@pytest.fixture(scope="module")
def drill() -> Registered:
    return run_program("drill")


def test_one_component_resource_per_component(prod: Registered, drill: Registered) -> None:
    assert len(prod.components) == 25 and len(drill.components) == 24


def test_helm_release_has_pinned_chart_repo_namespace_and_values(prod: dict[str, RegisteredResource]) -> None:
    release = prod["longhorn"]
    assert release.type == "kubernetes:helm.sh/v3:Release", release.name
    assert release.inputs["chart"] == "longhorn" and release.inputs["version"] == "1.7.2"
    assert release.inputs["repositoryOpts"] == {"repo": "https://charts.longhorn.io"}
    assert release.inputs["namespace"] == "longhorn-system"
    assert release.inputs["values"]["defaultSettings"]["backupTarget"] == "s3://homelab-backups@eu-west-1/longhorn"
    assert release.parent == "longhorn"


def test_manifests_become_one_resource_per_object_never_a_remote_component(prod: Registered) -> None:
    """A `yaml/v2:ConfigGroup` is a remote component: behind a provider whose kubeconfig is unknown (the
    first preview of every rebuild) the engine refuses to construct it."""
    issuer = prod["letsencrypt-prod-clusterissuer-homelab-issuer"]
    assert issuer.type == "kubernetes:cert-manager.io/v1:ClusterIssuer" and issuer.parent == "letsencrypt-prod"
    assert issuer.inputs["spec"]["acme"]["server"].startswith("https://acme-v02.api.letsencrypt.org")
    assert not [r for r in prod.values() if r.type.startswith("kubernetes:yaml/")]


def test_restore_objects_have_their_types(prod: dict[str, RegisteredResource]) -> None:
    assert prod["gitea-db-cluster"].type == "kubernetes:postgresql.cnpg.io/v1:Cluster"
    assert prod["gitea-db-cluster"].inputs["spec"]["bootstrap"]["recovery"]["source"] == "gitea-db-origin"
    assert prod["grafana-restore-restore"].type == "kubernetes:velero.io/v1:Restore"
    assert prod["gitea-data-restore-volume"].type == "kubernetes:longhorn.io/v1beta2:Volume"
    assert prod["gitea-data-restore-persistentvolumeclaim"].type == "kubernetes:core/v1:PersistentVolumeClaim"


def test_playbooks_and_host_restores_are_dynamic_resources(prod: dict[str, RegisteredResource]) -> None:
    step = prod["os-prepare-playbook"]
    assert step.type == "pulumi-python:dynamic:Resource"
    assert step.inputs["playbook"] == "os-prepare.yml"
    restore = prod["postgres-host-restore"]
    assert restore.inputs["tool"] == "pgbackrest" and restore.inputs["playbook"] == "postgres-pitr.yml"


def test_adapter_passes_protect_and_retain_on(prod: dict[str, RegisteredResource],
                                              drill: dict[str, RegisteredResource]) -> None:
    for name in ("gitea-db-cluster", "gitea-data-restore-persistentvolumeclaim", "gitea-data-restore-namespace"):
        assert prod[name].protect and prod[name].retain_on_delete, name
        assert not drill[name].protect and drill[name].retain_on_delete, name
    assert not prod["longhorn"].protect and not prod["longhorn"].retain_on_delete


def test_component_dependencies_follow_the_graph(prod: dict[str, RegisteredResource]) -> None:
    # Pulumi expands a dependency on a component into its children.
    dependencies = set(prod.components["gitea"].dependencies)
    assert dependencies >= {"gitea-db-cluster", "letsencrypt-prod-clusterissuer-homelab-issuer"}
    assert {d for d in dependencies if d.startswith("flux-sync-")} == {
        "flux-sync-gitrepository-flux-system-homelab", "flux-sync-kustomization-flux-system-apps"}
    assert "etcd-restore" in prod.components["k3s-server"].dependencies
    assert prod.components["os-prepare"].dependencies == ()


def test_kubernetes_provider_comes_from_the_control_plane_step(prod: dict[str, RegisteredResource]) -> None:
    provider = prod["cluster"]
    assert provider.type == "pulumi:providers:kubernetes"
    assert provider.parent == "k3s-server"
    assert "k3s-server-playbook" in provider.dependencies


def test_drill_registers_no_production_issuer_or_external_dns(drill: dict[str, RegisteredResource]) -> None:
    assert "letsencrypt-prod" not in drill.components and "external-dns" not in drill.components
    assert drill["selfsigned-issuer-clusterissuer-homelab-issuer"].type == "kubernetes:cert-manager.io/v1:ClusterIssuer"
    archive = drill["gitea-db-cluster"].inputs["spec"]["backup"]["barmanObjectStore"]["destinationPath"]
    assert archive == "s3://homelab-drill/cnpg/gitea"


def test_a_milestone_still_orders_its_dependents(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Pulumi expands depends_on on a ComponentResource to its children; a milestone has none."""
    graph = tmp_path / "graph.yaml"
    graph.write_text("cluster: lab\ncomponents:\n"
                     "  hosts-ready: {layer: os, playbook: os-prepare.yml, estimate: 1m}\n"
                     "  storage-ready: {layer: storage, depends_on: [hosts-ready]}\n"
                     "  exports: {layer: storage, depends_on: [storage-ready], playbook: nfs-exports.yml}\n")
    mocks = _Mocks()
    monitor = CapturingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="dr", stack="m", preview=False, monitor=monitor)
    spec, resources = load_resources(graph_path=str(graph), mode="prod")

    def program() -> None:
        register(resources, hosts=hosts_inventory(spec), secrets={})

    pulumi.runtime.test(program)()
    components = {r.name: r for r in monitor.registered if r.type == "dr:recovery:Component"}
    assert "hosts-ready-playbook" in components["exports"].dependencies, components["exports"].dependencies


def test_each_host_step_gets_only_its_secrets_and_its_hosts() -> None:
    mocks = _Mocks()
    monitor = CapturingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="dr", stack="scoped", preview=False, monitor=monitor)
    spec, resources = load_resources(graph_path=str(REPO / "stacks" / "cluster.yaml"), mode="prod")
    all_secrets = {"k3s_token": "canary-token", "restic_password": "canary-restic", "unrelated": "x"}

    def program() -> None:
        register(resources, hosts=hosts_inventory(spec), secrets=all_secrets)

    pulumi.runtime.test(program)()
    steps = {r.name: r.inputs for r in monitor.registered if r.type == "pulumi-python:dynamic:Resource"}

    def secret_value(inputs: dict[str, Any]) -> Any:
        wrapped = inputs["secrets"]  # a secret on the wire: {<secret signature>: ..., "value": ...}
        assert len(wrapped) == 2 and "value" in wrapped, "the step's secrets stay secret"
        return wrapped["value"]

    assert secret_value(steps["k3s-server-playbook"]) == {"k3s_token": "canary-token"}
    assert secret_value(steps["nfs-volumes-restore-restore"]) == {"restic_password": "canary-restic"}
    assert secret_value(steps["os-prepare-playbook"]) == {}
    assert sorted(steps["nfs-volumes-restore-restore"]["hosts_inventory"]) == ["nas"]
    assert sorted(steps["k3s-agents-playbook"]["hosts_inventory"]) == ["w1", "w2"]
    assert sorted(steps["os-prepare-playbook"]["hosts_inventory"]) == ["cp0", "db0", "nas", "w1", "w2"]
    providers = [r for r in monitor.registered if r.type == "pulumi:providers:kubernetes"]
    assert providers and all(p.inputs.get("clusterIdentifier") == "dr-homelab-prod" for p in providers)
