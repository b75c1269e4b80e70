"""`dr import flux` on a repository in the style of current Flux homelabs (tests/fixtures/gitops/flux-kopiur):
what one cluster really applies, per-app namespaces, shared kopiur objects with substitutions, names that
collide, an operator found by its chart, objects dr does not model, an anchor defined twice, an archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.gitops_import.test_import import plan, refused, review, run

REPOSITORY = REPO / "tests" / "fixtures" / "gitops" / "flux-kopiur"


def imported(tmp_path: Path, capsys: pytest.CaptureFixture[str], cluster: str) -> tuple[Path, dict[str, Any], str]:
    out = tmp_path / f"{cluster}.yaml"
    code, _, err = run(["import", "flux", str(REPOSITORY), "--cluster", cluster, "--out", str(out)], capsys)
    assert code == 0, err
    return out, yaml.safe_load(out.read_text()), err


def test_a_repository_of_two_clusters_needs_one_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["import", "flux", str(REPOSITORY)], capsys)
    assert code == 2 and out == ""
    assert "the repository holds 2 clusters (lab, main): choose one with --cluster NAME" in err
    code, _, err = run(["import", "flux", str(REPOSITORY), "--cluster", "prod"], capsys)
    assert code == 2 and "no cluster 'prod' in the repository; it holds lab, main" in err


def test_each_gitops_object_is_held_where_it_lives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The kustomization.yaml `namespace:` puts each app's Flux Kustomization in the app's namespace: the
    gate must hold that object, not create a second one in flux-system."""
    out, graph, err = imported(tmp_path, capsys, "main")
    components = graph["components"]
    namespaces = {name: c["reconciled_by"]["namespace"] for name, c in components.items() if "reconciled_by" in c}
    assert namespaces == {"flux-system": "flux-system", "cluster-apps": "flux-system", "openebs": "storage",
                          "backup-controller": "backup-system", "velero": "backup-system", "jellyfin": "media",
                          "home-assistant": "home"}
    held = yaml.safe_load((out.parent / "gitops" / "jellyfin.yaml").read_text())
    assert held["metadata"] == {"name": "jellyfin", "namespace": "media"}
    assert "accepted: dr plan, docs and preview accept it in prod and drill mode" in err


def test_shared_kopiur_backups_are_imported_per_app_with_their_substitutions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, graph, err = imported(tmp_path, capsys, "main")
    text = out.read_text()
    assert "${" not in text, "no variable is taken literally"
    backups, components = graph["backups"], graph["components"]
    # One SnapshotPolicy `config` in two namespaces: two backups, the second qualified, none overwritten.
    assert {k: (b["tool"], b["protects"]) for k, b in backups.items() if b["tool"] == "kopiur"} == {
        "config": ("kopiur", ["jellyfin"]), "home-config": ("kopiur", ["home-assistant"])}
    config = backups["config"]
    assert config["repo"] == "kopiur:ClusterRepository/nas"  # ${KOPIA_REPOSITORY:=nas}, from a ConfigMap
    assert config["retention"] == {"hourly": 24, "daily": 7, "weekly": 4}
    assert config["schedule"] == "0 */6 * * *" and "kopiur spreads `H` fields" in text
    assert components["config-restore"]["vars"] == {"namespace": "media", "pvc": "config", "policy": "config",
                                                    "target": "populator", "restore_name": "config", "size": "20Gi"}
    assert components["home-config-restore"]["vars"]["size"] == "5Gi"  # the substitution's default
    assert "the variables of Secret cluster-secrets are not read" in err
    # The operator is found by the chart its Kustomization installs, not by its name; it never waits for
    # the restores that wait for it; restores come after the storage they write into.
    assert components["config-restore"]["depends_on"] == ["backup-controller", "openebs"]
    assert not {"config-restore", "home-config-restore"} & set(components["backup-controller"]["depends_on"])
    assert components["backup-controller"]["layer"] == "addon"
    assert {"config-restore", "everything-media-restore"} <= set(components["jellyfin"]["depends_on"])


def test_nothing_is_dropped_silently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, graph, err = imported(tmp_path, capsys, "main")
    text = out.read_text()
    # The k8up Schedule sits in a file with an anchor defined twice: read (as Flux would), and listed.
    assert "not modelled by dr: 1 Schedule (k8up.io) object" in text
    assert "k8up.yaml: skipped" not in err
    # Velero over every namespace protects the apps, minus the excluded namespaces.
    assert graph["backups"]["everything"]["protects"] == ["home-assistant", "jellyfin"]
    # What no Kustomization of this cluster applies (the other cluster's entry, an archive) is counted.
    assert "old-app" not in text
    assert "4 objects that no Kustomization of cluster 'main' applies were left out (under archive, clusters)" in err


def test_the_imported_graph_plans_after_review_and_the_other_cluster_is_its_own(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _, _ = imported(tmp_path, capsys, "main")
    review(out)
    assert refused(out) == []
    code, planned, err = plan(out, capsys)
    assert code == 0, err
    order = [name for wave in planned["waves"] for name in wave]
    assert order.index("openebs") < order.index("config-restore") < order.index("jellyfin")
    assert order.index("backup-controller") < order.index("home-config-restore") < order.index("home-assistant")
    assert plan(out, capsys, mode="drill")[0] == 0
    (tmp_path / "lab").mkdir()
    _, lab, _ = imported(tmp_path / "lab", capsys, "lab")
    assert lab["cluster"] == "lab"
    assert set(lab["components"]) == {"flux", "flux-system", "cluster-apps", "jellyfin", "config-restore"}


def test_the_cni_bootstrap_step_carries_its_release_values(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`valuesFrom` a plain ConfigMap, then `values` over it, as Flux merges them."""
    _, graph, _ = imported(tmp_path, capsys, "main")
    assert graph["components"]["cilium"]["helm"]["values"] == {
        "kubeProxyReplacement": True, "ipam": {"mode": "kubernetes"}, "k8sServiceHost": "10.0.0.10"}


def test_colliding_names_are_qualified_never_overwritten() -> None:
    """A HelmRelease named like a Kustomization, one Kustomization name in two namespaces, an Application
    named like the controller component: each keeps its own component (the last definition used to win,
    and the Application became the controller that then depended on itself)."""
    from dr.gitops_import.infer import Doc, component_names, infer_argo

    def doc(kind: str, name: str, namespace: str) -> Doc:
        group = {"HelmRelease": "helm.toolkit.fluxcd.io/v2", "Kustomization": "kustomize.toolkit.fluxcd.io/v1",
                 "Application": "argoproj.io/v1alpha1"}[kind]
        return Doc(f"{namespace}/{name}.yaml", {"apiVersion": group, "kind": kind,
                                                 "metadata": {"name": name, "namespace": namespace}})

    names = component_names([doc("Kustomization", "gitea", "flux-system"), doc("HelmRelease", "gitea", "gitea"),
                             doc("Kustomization", "config", "media"), doc("Kustomization", "config", "home")],
                            reserved={"flux"})
    assert names == {("Kustomization", "flux-system", "gitea"): "kustomization-gitea",
                     ("HelmRelease", "gitea", "gitea"): "helmrelease-gitea",
                     ("Kustomization", "media", "config"): "media-config",
                     ("Kustomization", "home", "config"): "home-config"}
    draft = infer_argo([doc("Application", "argocd", "argocd")], "lab")
    assert set(draft.components) == {"argocd", "application-argocd"}
    assert draft.components["application-argocd"].body["reconciled_by"]["name"] == "argocd"
    assert "application-argocd" not in draft.components["argocd"].body["depends_on"]


def test_a_dependency_named_twice_is_listed_once() -> None:
    """A Kustomization whose dependsOn names the Kustomization that applies it (and names it twice) used to
    give a graph dr refuses ("lists 'flux-system' twice")."""
    from dr.gitops_import.infer import Doc, infer_flux

    def ks(name: str, path: str, depends: list[str], file: str) -> Doc:
        return Doc(file, {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                          "metadata": {"name": name, "namespace": "flux-system"},
                          "spec": {"path": path, "dependsOn": [{"name": d} for d in depends]}})

    draft = infer_flux([ks("flux-system", "./clusters/home", [], "clusters/home/flux-system/sync.yaml"),
                        ks("apps", "./apps", ["flux-system", "flux-system"], "clusters/home/apps.yaml")], "home")
    assert draft.components["apps"].body["depends_on"] == ["flux-system"]
