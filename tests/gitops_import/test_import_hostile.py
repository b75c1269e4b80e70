"""`dr import` of a repository written to stop it: kustomizations that list each other twice per level (2^n
builds), a 530-byte alias bomb, files nested 20,000 deep, and the same in the files an ApplicationSet's git
generator reads. Import finishes (run in a child process with a generous bound and a memory limit: a hang
or a blow-up fails the test instead of the machine) and names every file it skipped."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

BOUND_S = 120  # generous: each of these imports takes well under a second once bounded
MEMORY = 2 * 1024**3


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def run_dr(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DR_DEBUG", None)
    try:
        return subprocess.run([sys.executable, "-m", "dr.cli", *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=BOUND_S, preexec_fn=_limit_memory, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dr {' '.join(args)} did not finish within {BOUND_S} s")


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def flux_repository(root: Path, resources: list[str]) -> Path:
    """A one-cluster Flux repository whose cluster kustomization lists `resources`."""
    write(root, "clusters/lab/flux-system/gotk-sync.yaml", """\
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata: {name: flux-system, namespace: flux-system}
        spec: {interval: 10m, path: ./clusters/lab, prune: true, sourceRef: {kind: GitRepository, name: flux-system}}
        """)
    listed = "".join(f"  - {r}\n" for r in ["flux-system/gotk-sync.yaml", *resources])
    write(root, "clusters/lab/kustomization.yaml",
          f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{listed}")
    return root


# Nine lists of nine, each made of the one before: under 600 bytes that expand to 9^9 (387 million) strings.
BOMB = "".join(f"{chr(97 + level)}: &{chr(97 + level)} [" + ",".join(
    ['"lol"'] * 9 if level == 0 else [f"*{chr(96 + level)}"] * 9) + "]\n" for level in range(9))
ALIAS_BOMB = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol, namespace: default}\ndata:\n" + "".join(
    f"  {line}\n" for line in BOMB.splitlines())


def _checked(done: subprocess.CompletedProcess[str]) -> str:
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode in (0, 1), (done.returncode, done.stderr[-2000:])
    assert "accepted" in done.stderr, done.stderr[-2000:]  # it got to the end: "accepted" or "not accepted"
    return done.stderr


def test_kustomizations_listing_each_other_twice_per_level_are_built_once(tmp_path: Path) -> None:
    levels = 32  # 2^32 builds without memoising
    repo = flux_repository(tmp_path / "repo", ["../../levels/l0"])
    for level in range(levels):
        write(repo, f"levels/l{level}/kustomization.yaml",
              "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
              f"resources: [../l{level + 1}, ./../l{level + 1}/]\n")
    write(repo, f"levels/l{levels}/kustomization.yaml",
          "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: deep\nresources: [app.yaml]\n")
    write(repo, f"levels/l{levels}/app.yaml", """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: bottom}
        """)
    err = _checked(run_dr("import", "flux", str(repo), "--out", str(tmp_path / "graph.yaml")))
    assert "objects that no Kustomization" not in err, "the bottom Deployment is reached, once"


def test_an_alias_bomb_is_skipped_and_named(tmp_path: Path) -> None:
    assert len(ALIAS_BOMB) < 600
    repo = flux_repository(tmp_path / "repo", ["bomb.yaml"])
    write(repo, "clusters/lab/bomb.yaml", ALIAS_BOMB)
    err = _checked(run_dr("import", "flux", str(repo), "--out", str(tmp_path / "graph.yaml")))
    (line,) = [x for x in err.splitlines() if "bomb.yaml" in x]
    assert line.startswith("import: clusters/lab/bomb.yaml: skipped (") and "alias" in line, line


def test_files_nested_20000_deep_are_skipped_and_named(tmp_path: Path) -> None:
    repo = flux_repository(tmp_path / "repo", ["flow.yaml", "block.yaml"])
    write(repo, "clusters/lab/flow.yaml", "apiVersion: v1\nkind: ConfigMap\ndata: " + "[" * 20_000 + "]" * 20_000 + "\n")
    write(repo, "clusters/lab/block.yaml", "- " * 20_000 + "x\n")
    write(repo, "clusters/lab/fine.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\ndata: "
          + "[" * 40 + "]" * 40 + "\n")
    err = _checked(run_dr("import", "flux", str(repo)))
    for name in ("flow.yaml", "block.yaml"):
        (line,) = [x for x in err.splitlines() if name in x]
        assert line.startswith(f"import: clusters/lab/{name}: skipped (") and "deep" in line, line
    assert "fine.yaml" not in err, "a file nested 40 deep is read as usual"


def test_the_files_an_applicationset_reads_are_bounded_too(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo, "appsets/clusters.yaml", """\
        apiVersion: argoproj.io/v1alpha1
        kind: ApplicationSet
        metadata: {name: clusters, namespace: argocd}
        spec:
          generators:
            - git:
                repoURL: https://git.example.com/lab/homelab.git
                files: [{path: "clusters/*/config.*"}]
          template:
            metadata: {name: "app-{{name}}"}
            spec:
              project: default
              source: {repoURL: https://git.example.com/lab/homelab.git, path: "apps/{{name}}", targetRevision: main}
              destination: {server: https://kubernetes.default.svc, namespace: "{{name}}"}
        """)
    write(repo, "clusters/good/config.json", json.dumps({"name": "good"}))
    write(repo, "clusters/deep/config.json", "[" * 20_000 + "]" * 20_000)
    write(repo, "clusters/bomb/config.yaml", BOMB)
    err = _checked(run_dr("import", "argo", str(repo)))
    for name in ("clusters/deep/config.json", "clusters/bomb/config.yaml"):
        (line,) = [x for x in err.splitlines() if name in x]
        assert line.startswith(f"import: {name}: skipped ("), line
    assert "1 Application generated" in err


def test_helm_values_a_configmap_holds_are_bounded_too(tmp_path: Path) -> None:
    repo = flux_repository(tmp_path / "repo", ["release.yaml", "values.yaml"])
    write(repo, "clusters/lab/release.yaml", """\
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata: {name: app, namespace: apps}
        spec:
          chart: {spec: {chart: app, version: "1.0.0", sourceRef: {kind: HelmRepository, name: charts}}}
          valuesFrom:
            - {kind: ConfigMap, name: bomb}
            - {kind: ConfigMap, name: broken}
            - {kind: ConfigMap, name: fine}
        """)
    configmaps = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "apps"},
                   "data": {"values.yaml": text}}
                  for name, text in (("bomb", BOMB), ("broken", "a: [unclosed\n"), ("fine", "replicaCount: 2\n"))]
    write(repo, "clusters/lab/values.yaml", "---\n".join(json.dumps(c) + "\n" for c in configmaps))
    out = tmp_path / "graph.yaml"
    err = _checked(run_dr("import", "flux", str(repo), "--out", str(out)))
    graph = out.read_text()
    assert "ConfigMap bomb" in graph and "ConfigMap broken" in graph, "the values not read are named for review"
    assert "ConfigMap fine" not in graph and "lol" not in graph, err[-2000:]
