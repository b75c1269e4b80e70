"""`dr drill --stack drill` for real: the user's project (Pulumi.yaml, stacks/Pulumi.drill.yaml with an
encrypted dr:kubeconfig, a file:// backend) through dr's one engine wrapper and the real provider, against
a sandbox cluster standing in for the test cluster: up, readiness of the restore objects, destroy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi import automation

from dr.drill.standin_operators import StandInOperators
from dr.kube.sandbox_cluster import SandboxCluster
from dr.kube.toolchain import Toolchain
from dr.stack.engine import Engine
from dr.stack.program import load_resources

pytestmark = pytest.mark.integration

GRAPH = """\
cluster: lab
kubernetes: "1.30"
backups:
  grafana-data: {tool: velero, protects: grafana, repo: "s3://lab-backups/velero", schedule: "0 3 * * *",
                 retention: {daily: 7}, rpo: 25h}
components:
  velero:
    layer: addon
    helm: {chart: velero, repo: "https://vmware-tanzu.github.io/helm-charts", version: 8.0.0, namespace: velero}
  grafana-restore: {layer: data, depends_on: [velero], restore: {backup: grafana-data}, vars: {namespace: monitoring}}
  grafana:
    layer: app
    stateful: true
    depends_on: [grafana-restore]
    helm: {chart: grafana, repo: "https://grafana.github.io/helm-charts", version: 8.5.12, namespace: monitoring}
"""


def test_dr_drill_stack_ups_verifies_and_destroys_the_projects_drill_stack(
        provider: Toolchain, cluster: SandboxCluster, chart_mirror: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, run_cli) -> None:
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: lab\nruntime: python\nstackConfigDir: stacks\n")
    (project / "stacks" / "graph.yaml").write_text(GRAPH)
    (project / "stacks" / "Pulumi.drill.yaml").write_text("config:\n  dr:graph: stacks/graph.yaml\n  dr:mode: drill\n")
    (tmp_path / "backend").mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path / 'backend'}")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-passphrase")
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    monkeypatch.chdir(project)
    kubeconfig = cluster.kubeconfig.read_text()
    stack = Engine.for_project(project, provider).stack(project="lab", stack="drill", program=lambda: None)
    stack.set_config("dr:kubeconfig", automation.ConfigValue(value=kubeconfig, secret=True))
    stack.set_config("dr:chart_mirror", automation.ConfigValue(value=chart_mirror))
    assert "client-certificate" not in (project / "stacks" / "Pulumi.drill.yaml").read_text(), "encrypted"

    _, resources = load_resources(graph_path=str(project / "stacks" / "graph.yaml"), mode="drill")
    operators = StandInOperators.for_plan(resources, cluster.kubectl)  # no Velero runs in the sandbox
    operators.start()
    try:
        done = run_cli("drill", "--stack", "drill", "--graph", "stacks/graph.yaml", "--state-dir", str(tmp_path / "st"))
    finally:
        operators.stop()
    assert done.code == 0, done.out + done.err
    assert "PASSED" in done.out and "kubernetes provider" in done.err and "(v4.25.0)" in done.err
    (report_dir,) = list((tmp_path / "st" / "reports").iterdir())
    report = json.loads((report_dir / "report.json").read_text())
    assert report["kind"] == "stack" and report["success"]
    assert {(c["step"], c["ok"]) for c in report["checks"]} >= {("grafana-restore", True)}
    # destroy ran: the apps are gone; the restore object is kept (retain on delete), data is never deleted
    assert cluster.kubectl("get", "deployment", "grafana", "-n", "monitoring", check=False).returncode != 0
    kept = cluster.kubectl("get", "restores.velero.io", "grafana-restore", "-n", "velero", "-o", "json")
    assert json.loads(kept.stdout)["spec"]["includedNamespaces"] == ["monitoring"]
