"""Drill mode: production-only components out, replacements in, overrides merged, no marker leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from dr.core.graph import RecoveryGraph
from dr.core.spec import GraphSpec, HelmAction, PlaybookAction
from dr.errors import GraphError

GRAPH = """\
cluster: lab
prod_markers: [acme-v02.api.letsencrypt.org, s3://prod-bucket]
components:
  cert-manager: {layer: addon, estimate: 1m}
  letsencrypt-prod:
    layer: addon
    depends_on: [cert-manager]
    prod_only: true
    drill: {replace_with: selfsigned}
    estimate: 1m
  selfsigned: {layer: addon, depends_on: [cert-manager], drill_only: true, estimate: 1m}
  external-dns: {layer: addon, prod_only: true, estimate: 1m}
  app:
    layer: app
    depends_on: [letsencrypt-prod, cert-manager]
    helm:
      chart: app
      repo: https://charts.example.com
      version: "1.0.0"
      namespace: app
      values: {replicas: 3, storage: {size: 10Gi, class: fast}}
    drill: {values: {replicas: 1, storage: {size: 1Gi}}}
    estimate: 2m
  nodes:
    layer: os
    playbook: nodes.yml
    vars: {swap: off, sysctl: {vm.max_map_count: 262144}}
    drill: {values: {sysctl: {fs.inotify.max_user_watches: 1000}}}
    estimate: 1m
"""


def build(text: str, mode: str, read_text=None) -> RecoveryGraph:
    return RecoveryGraph.build(GraphSpec.from_yaml(text, path="g.yaml"), mode=mode, read_text=read_text)


def test_drill_drops_prod_only_and_keeps_drill_only() -> None:
    drill = build(GRAPH, "drill")
    assert "letsencrypt-prod" not in drill.components
    assert "external-dns" not in drill.components
    assert "selfsigned" in drill.components


def test_prod_drops_drill_only() -> None:
    prod = build(GRAPH, "prod")
    assert {"letsencrypt-prod", "external-dns"} <= set(prod.components)
    assert "selfsigned" not in prod.components


def test_dependents_are_repointed_to_the_replacement() -> None:
    drill = build(GRAPH, "drill")
    assert drill.components["app"].depends_on == ("selfsigned", "cert-manager")
    assert drill.digraph.has_edge("selfsigned", "app")


def test_drill_values_are_deep_merged_into_helm_values() -> None:
    action = build(GRAPH, "drill").components["app"].action
    assert isinstance(action, HelmAction)
    assert dict(action.values["storage"]) == {"size": "1Gi", "class": "fast"}
    assert action.values["replicas"] == 1
    prod_action = build(GRAPH, "prod").components["app"].action
    assert isinstance(prod_action, HelmAction) and prod_action.values["replicas"] == 3


def test_drill_values_are_deep_merged_into_playbook_vars() -> None:
    action = build(GRAPH, "drill").components["nodes"].action
    assert isinstance(action, PlaybookAction)
    assert dict(action.vars["sysctl"]) == {"vm.max_map_count": 262144, "fs.inotify.max_user_watches": 1000}


def test_dependent_of_prod_only_without_replacement_is_an_error() -> None:
    text = GRAPH + "  dns-records: {layer: app, depends_on: [external-dns], estimate: 1m}\n"
    with pytest.raises(GraphError) as caught:
        build(text, "drill")
    (diagnostic,) = caught.value.diagnostics
    assert "'dns-records' depends on 'external-dns', which is prod_only and has no drill.replace_with" in str(diagnostic)
    build(text, "prod")  # fine in prod


def test_prod_component_depending_on_drill_only_is_an_error() -> None:
    text = GRAPH + "  web: {layer: app, depends_on: [selfsigned], estimate: 1m}\n"
    with pytest.raises(GraphError, match="depends on 'selfsigned', which is drill_only"):
        build(text, "prod")


def test_replacement_must_be_drill_only() -> None:
    text = GRAPH.replace("drill: {replace_with: selfsigned}", "drill: {replace_with: cert-manager}")
    with pytest.raises(GraphError, match="must be a drill_only component"):
        build(text, "prod")


def test_leak_in_helm_values_names_component_marker_and_line() -> None:
    text = GRAPH.replace("values: {replicas: 3,", "values: {backup: s3://prod-bucket/app, replicas: 3,")
    with pytest.raises(GraphError) as caught:
        build(text, "drill")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.line == 21
    assert "component 'app' in drill mode: helm.values.backup contains the production marker 's3://prod-bucket'" in (
        diagnostic.message)
    build(text, "prod")  # production may use its own bucket


def test_drill_override_that_removes_the_marker_passes() -> None:
    text = GRAPH.replace("values: {replicas: 3,", "values: {backup: s3://prod-bucket/app, replicas: 3,").replace(
        "drill: {values: {replicas: 1,", "drill: {values: {backup: s3://drill-bucket/app, replicas: 1,")
    assert build(text, "drill").components["app"].action.values["backup"] == "s3://drill-bucket/app"  # type: ignore[union-attr]


def test_restore_source_in_production_is_allowed_in_drill() -> None:
    text = GRAPH.replace("components:\n", "backups:\n  app-data: {tool: restic, repo: 's3:s3.example.com/prod-bucket/app', "
                                          "schedule: '@daily', retention: {daily: 7}, rpo: 1d}\ncomponents:\n"
                                          "  app-restore: {layer: data, restore: {backup: app-data}, vars: {restore_path: /srv/app}, estimate: 1m}\n")
    assert "app-restore" in build(text, "drill").components


def test_leak_in_a_manifest_names_the_manifest_line(tmp_path: Path) -> None:
    (tmp_path / "issuer.yaml").write_text("kind: ClusterIssuer\nspec:\n  acme:\n"
                                          "    server: https://acme-v02.api.letsencrypt.org/directory\n")
    graph_path = tmp_path / "g.yaml"
    graph_path.write_text(GRAPH + "  issuer: {layer: addon, manifests: issuer.yaml, estimate: 1m}\n")
    spec = GraphSpec.from_yaml(graph_path.read_text(), path=str(graph_path))
    with pytest.raises(GraphError) as caught:
        RecoveryGraph.build(spec, mode="drill", read_text=lambda p: p.read_text())
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.path, diagnostic.line) == (str(tmp_path / "issuer.yaml"), 4)
    assert "component 'issuer'" in diagnostic.message and "'acme-v02.api.letsencrypt.org'" in diagnostic.message


def test_leak_in_verify_check_is_found() -> None:
    text = GRAPH.replace("    estimate: 2m\n", "    estimate: 2m\n    verify:\n      - {command: 'aws s3 ls s3://prod-bucket'}\n", 1)
    with pytest.raises(GraphError, match="verify.0.command contains the production marker"):
        build(text, "drill")
