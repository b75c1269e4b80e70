"""`dr import flux|argo` on two fixture repositories shaped like real homelabs (tests/fixtures/gitops)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dr.cli import main
from dr.gitops_import.write import REVIEW
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "gitops"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def imported(tool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], *, accepted: bool = True
             ) -> tuple[Path, dict[str, Any], str]:
    out = tmp_path / f"{tool}.yaml"
    code, _, err = run(["import", tool, str(FIXTURES / f"{tool}-homelab"), "--out", str(out)], capsys)
    assert code == (0 if accepted else 1), err
    return out, yaml.safe_load(out.read_text()), err


def refused(path: Path) -> list[str]:
    """What plan, docs and preview still refuse in a graph (the check import runs)."""
    from dr.gitops_import.checks import refusals
    from dr.graph_file import read_text

    return refusals(path.read_text(), where=str(path), read_text=read_text)[0]


def review(path: Path, extra: dict[str, dict[str, Any]] | None = None) -> None:
    """What a person does with the REVIEW comments: estimates, sizes, then deletes the comments."""
    graph = yaml.safe_load(path.read_text())
    for name, component in graph["components"].items():
        component["estimate"] = "10m" if component.get("restore") else "3m"
        component.setdefault("vars", {}).setdefault("size", "5Gi") if component.get("restore") else None
        component.update((extra or {}).get(name, {}))
    path.write_text(yaml.safe_dump(graph, sort_keys=False))


def plan(path: Path, capsys: pytest.CaptureFixture[str], mode: str = "prod") -> tuple[int, dict[str, Any], str]:
    code, out, err = run(["plan", "--graph", str(path), "--json", "--mode", mode], capsys)
    return code, (json.loads(out) if code == 0 else {}), err


def test_flux_repository_becomes_a_graph_gated_on_its_restores(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out, graph, err = imported("flux", tmp_path, capsys, accepted=False)
    components, backups = graph["components"], graph["backups"]
    # Import runs what `dr docs` runs too: it used to say "accepted" here while `dr docs` refused the graph.
    assert "not accepted: `dr plan`, `dr docs` or `dr preview` would refuse it until these 3 are fixed" in err
    assert re.search(r"prod: .*flux.yaml:\d+: component 'home-assistant-config-restore': vars.size is required", err)
    assert re.search(r"drill: .*component 'gitea-db-restore': vars.wal_archive is required", err)
    gitea = components["gitea"]
    assert gitea["reconciled_by"] == {"kind": "Kustomization", "name": "gitea", "namespace": "flux-system",
                                      "controller": "flux", "source": "ssh://git@github.com/example-lab/home-ops",
                                      "path": "apps/gitea", "manifest": "gitops/gitea.yaml"}
    # The object itself, beside the graph, so the gate can create it held before Flux does.
    written = yaml.safe_load((out.parent / "gitops" / "gitea.yaml").read_text())
    assert (written["kind"], written["metadata"]["name"], written["spec"]["path"]) == \
        ("Kustomization", "gitea", "./apps/gitea")
    assert {"cnpg", "volsync", "gitea-data-restore", "gitea-db-restore", "flux-system"} <= set(gitea["depends_on"])
    assert "gitea 10.6.0 from oci://docker.gitea.com/charts" in gitea["description"]
    # The CNI GitOps adopts after bootstrap is installed by dr before Flux, never after it.
    # ... with the values GitOps installs it with (they were dropped: kube-proxy replacement lost).
    assert components["cilium"]["helm"] == {"chart": "cilium", "repo": "https://helm.cilium.io", "version": "1.16.5",
                                            "namespace": "kube-system", "values": {"kubeProxyReplacement": True}}
    assert "reconciled_by" not in components["cilium"] and "cilium" in components["flux"]["depends_on"]
    assert not set(components["cilium"].get("depends_on", [])) & {"flux", "flux-system"}
    # Backups: VolSync (retention by count and by age) and CloudNativePG through the barman-cloud plugin.
    assert backups["gitea-data"]["tool"] == "volsync" and backups["gitea-data"]["protects"] == ["gitea"]
    assert backups["home-assistant-config"]["retention"] == {"within": "3d", "daily": 14}
    assert backups["gitea-db"] == {"tool": "cnpg-barman-plugin", "protects": ["gitea"],
                                   "repo": "s3://lab-backups/cnpg/gitea", "schedule": "0 0 3 * * *",
                                   "retention": {"within": "30d"}, "rpo": "1h"}
    assert components["gitea-data-restore"]["vars"] == {"namespace": "gitea", "pvc": "gitea-data",
                                                        "repository_secret": "gitea-data-volsync",
                                                        "copy_method": "populator", "size": "10Gi"}
    text = out.read_text()
    assert f"{REVIEW} action: how Flux is installed" in text
    assert "the size of PVC home-assistant-config is not in the repository" in text

    review(out, {"gitea-db-restore": {"drill": {"values": {"wal_archive": "s3://lab-drill/cnpg/gitea"}}}})
    assert refused(out) == []
    code, planned, err = plan(out, capsys)
    assert code == 0, err
    order = [name for wave in planned["waves"] for name in wave]
    assert order.index("cilium") < order.index("flux") < order.index("flux-system") < order.index("rook-ceph")
    assert order.index("gitea-data-restore") < order.index("gitea") and order.index("gitea-db-restore") < order.index("gitea")
    assert planned["predicted_rto_s"] > 0
    assert plan(out, capsys, mode="drill")[0] == 0
    # The gate is in the resource plan: held under Flux, released after its restores.
    from dr.core.plan import plan_for
    from dr.core.resources import resource_plan
    from dr.graph_file import load_graph_file, read_text

    planned_spec = plan_for(load_graph_file(out), read_text=read_text)
    assert planned_spec.graph is not None
    components = {c.name: c for c in resource_plan(planned_spec, planned_spec.graph.spec, read_text=read_text)
                  .components}
    (release,) = [c for c in components["gitea"].children if c.kind == "gitops-release"]
    assert sorted(r["kind"] for r in release.inputs["restores"]) == ["Cluster", "ReplicationDestination"]
    assert any(c.inputs.get("step") == "gitea" for c in components["flux"].children if c.kind == "gitops-hold")


def test_argo_repository_waves_become_edges_and_one_velero_schedule_protects_several(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, graph, _ = imported("argo", tmp_path, capsys)
    components, backups = graph["components"], graph["backups"]
    # sync waves: paperless (wave 1) after the wave-0 apps; every child after the app-of-apps.
    assert {"gitea", "gitea-backup", "root"} <= set(components["paperless"]["depends_on"])
    assert components["root"]["reconciled_by"]["path"] == "apps"
    assert backups["apps-nightly"]["tool"] == "velero"
    assert backups["apps-nightly"]["protects"] == ["gitea", "gitea-backup", "paperless"]
    assert backups["apps-nightly"]["retention"] == {"within": "30d"}
    assert "apps-nightly-paperless-restore" in components["paperless"]["depends_on"]
    assert components["apps-nightly-gitea-restore"]["vars"] == {"namespace": "gitea", "schedule_name": "apps-nightly"}
    assert "reconciled_by" not in components["cilium"], "the wave -10 CNI is a bootstrap step"
    review(out)
    code, _, err = plan(out, capsys)
    assert code == 0, err
    code, _, err = run(["docs", "--graph", str(out), "--out", str(tmp_path / "docs"), "--mode", "prod"], capsys)
    assert code == 0, err
    runbook = (tmp_path / "docs" / "recovery-order.md").read_text()
    step = runbook[runbook.index("### ", runbook.index("paperless-data-restore")):]
    assert runbook.index("paperless-data-restore") < runbook.index("kubectl -n argocd patch application.argoproj.io/paperless")
    assert "GitOps installs it: Application argocd/paperless" in step
    # The gate in the resource plan: every Application held under Argo CD, paperless released only
    # after its VolSync and Velero restore objects are done.
    from dr.core.plan import plan_for
    from dr.core.resources import resource_plan
    from dr.graph_file import load_graph_file, read_text

    planned = plan_for(load_graph_file(out), read_text=read_text)
    assert planned.graph is not None
    components = {c.name: c for c in resource_plan(planned, planned.graph.spec, read_text=read_text).components}
    holds = sorted(c.inputs["step"] for c in components["argocd"].children if c.kind == "gitops-hold")
    assert holds == sorted(n for n, body in graph["components"].items() if "reconciled_by" in body)
    (release,) = components["paperless"].children
    assert release.kind == "gitops-release"
    assert sorted(r["kind"] for r in release.inputs["restores"]) == ["ReplicationDestination", "Restore"]
    assert release.inputs["manifest"]["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}


def test_the_gitea_argo_incident_is_caught_once_the_reviewer_says_where_git_is_served(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The argo fixture syncs every Application from git.lab.example. Once the review records that Gitea
    in this same cluster serves it, dr refuses the graph and says to mirror it."""
    out, _, _ = imported("argo", tmp_path, capsys)
    review(out, {"gitea": {"serves": ["https://git.lab.example"]}})
    code, _, err = plan(out, capsys)
    assert code == 2
    assert re.search(r"component 'root' pulls from https://git.lab.example/ops/homelab.git, served by component "
                     r"'gitea'.*mirror", err), err


def test_import_refuses_the_wrong_controller_and_never_overwrites(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["import", "argo", str(FIXTURES / "flux-homelab")], capsys)
    assert code == 2 and "no Argo CD Application found" in err and "dr import flux" in err
    target = tmp_path / "graph.yaml"
    target.write_text("mine\n")
    code, _, err = run(["import", "flux", str(FIXTURES / "flux-homelab"), "--out", str(target)], capsys)
    assert code == 2 and "--force" in err and target.read_text() == "mine\n"
    code, _, err = run(["import", "flux", str(tmp_path / "absent")], capsys)
    assert code == 2 and "not a directory" in err


def test_a_link_to_a_file_outside_the_repository_is_never_read_in(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "flux-homelab", repo, symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "planted.yaml").write_text(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: canary-7f3a, namespace: x}\n"
        "spec: {chart: {spec: {chart: canary-7f3a}}}\n")
    (repo / "planted.yaml").symlink_to(outside / "planted.yaml")
    out = tmp_path / "flux.yaml"
    code, _, err = run(["import", "flux", str(repo), "--out", str(out)], capsys)
    assert code == 1 and "not accepted" in err, err
    assert "canary-7f3a" not in out.read_text()
    assert "planted.yaml: skipped, a link to a file outside the repository" in err
