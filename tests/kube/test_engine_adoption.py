"""What pulumi-kubernetes 4.25.0 does, for real, when a rebuild meets objects that came back with the
control plane (restored from etcd) and the Pulumi state did not: the facts docs/pulumi.md's "Adopting
what came back" is built on. A stack creates objects; a second stack (the state lost) creates the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pulumi import automation

from dr.kube.sandbox_cluster import SandboxCluster
from dr.kube.toolchain import Toolchain
from dr.stack.engine import Engine

pytestmark = pytest.mark.integration


def program(kubeconfig: str, mirror: str, value: str) -> Any:
    def run() -> None:
        provider = k8s.Provider("cluster", kubeconfig=kubeconfig)
        opts = pulumi.ResourceOptions(provider=provider)
        k8s.core.v1.Namespace("apps", metadata={"name": "apps"}, opts=opts)
        k8s.core.v1.ConfigMap("settings", metadata={"name": "settings", "namespace": "apps"}, data={"mode": value},
                              opts=opts)
        k8s.helm.v3.Release("gitea", name="gitea", chart="gitea", version="10.6.0", namespace="apps",
                            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=mirror), opts=opts)
    return run


def test_state_lost_objects_are_adopted_when_unchanged_and_releases_are_not(
        provider: Toolchain, cluster: SandboxCluster, chart_mirror: str, tmp_path: Path) -> None:
    engine = Engine.at(tmp_path / "engine", provider)
    kubeconfig = cluster.kubeconfig.read_text()
    first = engine.stack(project="adopt", stack="before", program=program(kubeconfig, chart_mirror, "a"))
    assert first.up(on_output=lambda line: None, color="never").summary.resource_changes.get("create") == 5

    uid = json.loads(cluster.kubectl("get", "configmap", "settings", "-n", "apps", "-o", "json").stdout)["metadata"]["uid"]
    lost = engine.stack(project="adopt", stack="state-lost", program=program(kubeconfig, chart_mirror, "a"))
    with pytest.raises(automation.errors.CommandError) as failed:
        lost.up(on_output=lambda line: None, color="never")
    assert "cannot re-use a name that is still in use" in str(failed.value)
    live = json.loads(cluster.kubectl("get", "configmap", "settings", "-n", "apps", "-o", "json",
                                      "--show-managed-fields").stdout)
    # Same fields: taken over by server-side apply, not recreated (same uid), now with two managers.
    assert live["metadata"]["uid"] == uid and len(live["metadata"]["managedFields"]) == 2

    changed = engine.stack(project="adopt", stack="changed", program=program(kubeconfig, chart_mirror, "b"))
    with pytest.raises(automation.errors.CommandError) as conflict:
        changed.up(on_output=lambda line: None, color="never")
    assert "Server-Side Apply field conflict detected" in str(conflict.value)
    assert json.loads(cluster.kubectl("get", "configmap", "settings", "-n", "apps", "-o", "json").stdout)[
        "data"] == {"mode": "a"}, "a conflict changes nothing"

    # With the state surviving, refresh then up changes nothing.
    first.refresh(on_output=lambda line: None, color="never")
    again = first.up(on_output=lambda line: None, color="never")
    assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes
