"""GitOps ownership, bootstrap sources and drill leak-following: the shapes of real incidents."""

from __future__ import annotations

import pytest

from dr.core.graph import RecoveryGraph
from dr.core.spec import GraphSpec
from dr.errors import GraphError

HEAD = """\
cluster: lab
prod_markers: [prod.example.com]
backups:
  gitea-data: {tool: volsync, protects: [gitea, gitea-db], repo: "s3://backups/gitea", schedule: "0 * * * *",
               retention: {within: 7d}, rpo: 2h}
components:
  flux:
    layer: gitops
    helm: {chart: flux2, repo: "https://fluxcd-community.github.io/helm-charts", version: "2.14.0",
           namespace: flux-system}
    estimate: 2m
  gitea-restore: {layer: data, restore: {backup: gitea-data}, vars: {namespace: gitea}, estimate: 5m}
"""


def build(text: str, mode: str = "prod") -> RecoveryGraph:
    return RecoveryGraph.build(GraphSpec.from_yaml(text, path="g.yaml"), mode=mode)


def errors(text: str, mode: str = "prod") -> list[str]:
    with pytest.raises(GraphError) as caught:
        build(text, mode)
    return [str(d) for d in caught.value.diagnostics]


def test_a_reconciled_component_depends_on_its_controller_and_is_a_gitops_step() -> None:
    graph = build(HEAD + """\
  gitea:
    layer: app
    depends_on: [gitea-restore]
    reconciled_by: {kind: HelmRelease, name: gitea, namespace: gitea, controller: flux,
                    source: "https://github.com/lab/cluster", path: apps/gitea}
  gitea-db: {layer: app, depends_on: [gitea-restore], reconciled_by: {kind: Kustomization, name: db, controller: flux}}
""")
    gitea = graph.spec.components["gitea"]
    assert "flux" in gitea.depends_on and gitea.action_kind == "gitops"
    assert gitea.reconciled_by is not None and gitea.reconciled_by.ref == "HelmRelease gitea/gitea"
    db = graph.spec.components["gitea-db"].reconciled_by
    assert db is not None and db.namespace == "flux-system", "a Flux object's namespace defaults to flux-system"
    assert graph.topological_order().index("flux") < graph.topological_order().index("gitea")
    assert graph.spec.backups["gitea-data"].protects == ("gitea", "gitea-db")
    assert graph.spec.backups["gitea-data"].retention.within_s == 7 * 86400


def test_one_backup_protecting_several_components_needs_a_restore_before_each() -> None:
    found = errors(HEAD + """\
  gitea: {layer: app, depends_on: [gitea-restore], reconciled_by: {kind: HelmRelease, name: gitea, controller: flux}}
  gitea-db: {layer: app, reconciled_by: {kind: Kustomization, name: db, controller: flux}}
""")
    assert len(found) == 1 and "'gitea-db' owns the data of backup 'gitea-data'" in found[0]


def test_gitops_installs_it_so_dr_must_not_install_it_too() -> None:
    found = errors(HEAD + """\
  gitea:
    layer: app
    depends_on: [gitea-restore]
    helm: {chart: gitea, repo: "https://dl.gitea.com/charts", version: "10.0.0", namespace: gitea}
    reconciled_by: {kind: HelmRelease, name: gitea, controller: flux}
  gitea-db: {layer: app, depends_on: [gitea-restore]}
""")
    assert any("reconciled_by HelmRelease flux-system/gitea and also has a helm action" in f for f in found), found


@pytest.mark.parametrize(("controller", "message"), [
    ("fluxx", "reconciled_by controller 'fluxx' is not a component (did you mean 'flux'?)"),
    ("gitea-restore", "reconciled_by controller 'gitea-restore' is in layer data, not gitops"),
])
def test_the_controller_must_be_the_component_that_installs_gitops(controller: str, message: str) -> None:
    found = errors(HEAD + f"""\
  gitea: {{layer: app, depends_on: [gitea-restore], reconciled_by: {{kind: HelmRelease, name: gitea,
           controller: {controller}}}}}
  gitea-db: {{layer: app, depends_on: [gitea-restore]}}
""")
    assert any(message in f for f in found), found
    assert not any("depends on unknown component" in f for f in found), "the implicit edge is reported twice"


def test_argo_syncing_from_a_git_server_in_the_same_cluster_is_the_incident() -> None:
    """Argo CD could not sync because Gitea, its git server, lived in the broken cluster."""
    found = errors(HEAD + """\
  gitea:
    layer: app
    depends_on: [gitea-restore]
    serves: ["https://git.lab.example/"]
    reconciled_by: {kind: HelmRelease, name: gitea, controller: flux, source: "https://git.lab.example/ops/cluster"}
  gitea-db: {layer: app, depends_on: [gitea-restore]}
  grafana:
    layer: app
    reconciled_by: {kind: Kustomization, name: grafana, controller: flux, source: "ssh://git@git.lab.example/ops/cluster"}
""")
    assert any("'gitea' is rebuilt from https://git.lab.example/ops/cluster, which it serves itself" in f
               and "mirror" in f for f in found), found
    assert any("'grafana' pulls from ssh://git@git.lab.example/ops/cluster, served by component 'gitea'" in f
               for f in found), found


def test_a_source_served_by_an_earlier_component_is_fine() -> None:
    graph = build(HEAD + """\
  gitea: {layer: app, depends_on: [gitea-restore], serves: ["https://git.lab.example"]}
  gitea-db: {layer: app, depends_on: [gitea-restore]}
  grafana:
    layer: app
    depends_on: [gitea]
    reconciled_by: {kind: Kustomization, name: grafana, controller: flux, source: "https://git.lab.example/ops/x"}
""")
    assert graph.topological_order()[-1] == "grafana"


DRILL = HEAD + """\
  gitea: {layer: app, depends_on: [gitea-restore]}
  gitea-db: {layer: app, depends_on: [gitea-restore]}
  external-dns:
    layer: addon
    prod_only: true
    reconciled_by: {kind: Kustomization, name: infra, controller: flux, path: clusters/lab/infra}
  cert-manager:
    layer: addon
    reconciled_by: {kind: Kustomization, name: infra, controller: flux, path: clusters/lab/infra}
"""


def test_a_kept_gitops_object_that_also_owns_a_prod_only_component_is_a_drill_leak() -> None:
    found = errors(DRILL, mode="drill")
    assert any("'cert-manager' in drill mode: its Kustomization flux-system/infra also reconciles the prod_only "
               "component 'external-dns'" in f for f in found), found
    build(DRILL, mode="prod")  # production is fine


def test_a_drill_path_for_the_kept_object_resolves_it_and_is_what_the_drill_syncs() -> None:
    text = DRILL.replace("""    reconciled_by: {kind: Kustomization, name: infra, controller: flux, path: clusters/lab/infra}
""", """    reconciled_by: {kind: Kustomization, name: infra, controller: flux, path: clusters/lab/infra}
    drill: {reconciled_by: {path: clusters/drill/infra}}
""", 2)
    graph = build(text.replace("drill: {reconciled_by: {path: clusters/drill/infra}}", "", 1), mode="drill")
    owner = graph.spec.components["cert-manager"].reconciled_by
    assert owner is not None and owner.path == "clusters/drill/infra"


def test_a_production_marker_in_a_kept_gitops_source_is_a_leak() -> None:
    found = errors(HEAD + """\
  gitea: {layer: app, depends_on: [gitea-restore]}
  gitea-db: {layer: app, depends_on: [gitea-restore]}
  tunnel:
    layer: addon
    reconciled_by: {kind: Application, name: tunnel, controller: flux, path: overlays/prod.example.com}
""", mode="drill")
    assert any("'tunnel' in drill mode: reconciled_by.path contains the production marker 'prod.example.com'" in f
               for f in found), found


def test_images_in_manifests_are_sources_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A registry in the cluster serving the images the rebuild needs is the same trap as the git server."""
    (tmp_path / "app.yaml").write_text("""\
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: apps}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      initContainers: [{name: init, image: "docker.io/library/busybox:1.36"}]
      containers: [{name: app, image: "registry.lab.example:5000/apps/app:1.4"}]
""")
    text = """\
cluster: lab
components:
  registry: {layer: app, serves: ["https://registry.lab.example:5000"]}
  app: {layer: app, manifests: app.yaml}
"""
    spec = GraphSpec.from_yaml(text, path=str(tmp_path / "cluster.yaml"))
    with pytest.raises(GraphError) as caught:
        RecoveryGraph.build(spec, read_text=lambda p: p.read_text())
    assert "component 'app' pulls from https://registry.lab.example:5000/apps/app, served by component " \
           "'registry'" in str(caught.value)
    fixed = GraphSpec.from_yaml(text.replace("manifests: app.yaml}", "manifests: app.yaml, depends_on: [registry]}"),
                                path=str(tmp_path / "cluster.yaml"))
    assert RecoveryGraph.build(fixed, read_text=lambda p: p.read_text()).topological_order() == ["registry", "app"]


def test_drill_substitutions_reach_the_held_kustomization_and_are_leak_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dr.core.plan import plan_for
    from dr.core.resources import resource_plan

    (tmp_path / "infra.yaml").write_text(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: infra, namespace: flux-system}\n"
        "spec: {interval: 10m, path: ./infra, prune: true, sourceRef: {kind: GitRepository, name: flux-system},\n"
        "       postBuild: {substitute: {CLUSTER: lab}}}\n")
    text = DRILL.replace("""    reconciled_by: {kind: Kustomization, name: infra, controller: flux, path: clusters/lab/infra}
  cert-manager:""", """    reconciled_by: {kind: Kustomization, name: infra, controller: flux, path: clusters/lab/infra}
  cert-manager:""").replace("""  cert-manager:
    layer: addon
    reconciled_by: {kind: Kustomization, name: infra, controller: flux, path: clusters/lab/infra}
""", """  cert-manager:
    layer: addon
    reconciled_by: {kind: Kustomization, name: infra, controller: flux, path: clusters/lab/infra,
                    manifest: infra.yaml}
    drill: {reconciled_by: {substitutions: {EXTERNAL_DNS: "disabled", DOMAIN: drill.example.net}}}
""")
    text = text.replace("vars: {namespace: gitea}", "vars: {namespace: gitea, pvc: gitea-data, size: 5Gi}")
    spec = GraphSpec.from_yaml(text, path=str(tmp_path / "cluster.yaml"))
    plan = plan_for(spec, mode="drill", read_text=lambda p: p.read_text())
    assert plan.graph is not None
    resources = resource_plan(plan, plan.graph.spec, read_text=lambda p: p.read_text())
    (release,) = [c for r in resources.components if r.name == "cert-manager" for c in r.children]
    assert release.inputs["manifest"]["spec"]["postBuild"]["substitute"] == {
        "CLUSTER": "lab", "EXTERNAL_DNS": "disabled", "DOMAIN": "drill.example.net"}
    leaking = GraphSpec.from_yaml(text.replace("drill.example.net", "prod.example.com"),
                                  path=str(tmp_path / "cluster.yaml"))
    with pytest.raises(GraphError, match="reconciled_by.substitutions.DOMAIN contains the production marker"):
        plan_for(leaking, mode="drill", read_text=lambda p: p.read_text())
