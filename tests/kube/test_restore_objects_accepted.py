"""The Kubernetes objects dr renders for the example graph, accepted by a real API server with the real CRDs.

Server-side apply with strict field validation: an unknown or mistyped field is refused by the API
server itself, the way a production cluster would refuse it. No operator runs here, so these restore
objects are "applied" (accepted), never "restored".
"""

from __future__ import annotations

import json

import pytest
import yaml

from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.graph_file import load_graph_file, read_text
from dr.kube.sandbox_cluster import SandboxCluster
from tests.conftest import EXAMPLE_GRAPH

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["prod", "drill"])
def test_every_rendered_object_is_accepted_by_the_api_server(cluster: SandboxCluster, mode: str) -> None:
    spec = load_graph_file(EXAMPLE_GRAPH)
    plan = plan_for(spec, mode=mode, read_text=read_text)
    resources = resource_plan(plan, plan.graph.spec if plan.graph else spec, read_text=read_text)
    objects = [obj.manifest for _, obj in resources.objects()]
    assert len(objects) >= 10
    custom = {(o["apiVersion"], o["kind"]) for o in objects if "." in o["apiVersion"].split("/")[0]}
    assert ("postgresql.cnpg.io/v1", "Cluster") in custom and ("velero.io/v1", "Restore") in custom
    installed = cluster.install_crds(custom)
    assert any("cloudnative-pg" in path for path in installed)
    # Helm releases create their namespaces (create_namespace); no Helm runs here, so make them.
    for namespace in sorted({c.inputs["namespace"] for comp in resources.components for c in comp.children
                             if c.kind == "helm-release"}):
        cluster.kubectl("create", "namespace", namespace, check=False)
    ordered = sorted(objects, key=lambda o: o["kind"] != "Namespace")
    for manifest in ordered:
        done = cluster.kubectl("apply", "--server-side", "--validate=strict", "-f", "-",
                               input_text=yaml.safe_dump(manifest), check=False)
        assert done.returncode == 0, f"{manifest['kind']} {manifest['metadata']['name']}: {done.stderr}"
    for manifest in ordered:
        namespace = manifest["metadata"].get("namespace")
        args = ["get", manifest["kind"].lower() + ("." + manifest["apiVersion"].split("/")[0]
                                                 if "." in manifest["apiVersion"].split("/")[0] else ""),
                manifest["metadata"]["name"], "-o", "json"] + (["-n", namespace] if namespace else [])
        stored = json.loads(cluster.kubectl(*args).stdout)
        assert stored["metadata"]["name"] == manifest["metadata"]["name"]
        assert stored.get("spec", {}).keys() >= manifest.get("spec", {}).keys(), "no field was pruned"


def test_a_mistyped_field_is_refused_by_the_real_crd(cluster: SandboxCluster) -> None:
    cluster.install_crds({("velero.io/v1", "Restore")})
    cluster.kubectl("create", "namespace", "velero")
    bad = {"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "r", "namespace": "velero"},
           "spec": {"backupName": "b", "restorePVCs": True}}
    done = cluster.kubectl("apply", "--server-side", "--validate=strict", "-f", "-",
                           input_text=yaml.safe_dump(bad), check=False)
    assert done.returncode != 0 and "restorePVCs" in done.stderr
