"""A repository cannot write the graph `dr import` writes: its names and paths reach the graph as values.

Review comments carry object names, claim names and file paths from the repository. Joined into a comment
as they are, a name holding a newline and YAML ended the comment and added a component of its own, such as
a `command:` step that `pulumi up` would run on the operator's machine. Every repository value now goes
through the YAML emitter, and a review comment stays one comment whatever it holds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dr.cli import main
from dr.gitops_import.infer import Draft, Entry
from dr.gitops_import.write import REVIEW, render, review_items

# A component of the attacker's own: a command run on the operator's machine by `pulumi up`.
INJECTED = "\n  evil:\n    layer: app\n    command: {run: touch /tmp/pwned}\n  #"
TOP_LEVEL = "\nhosts: {evil: {address: 10.6.6.6}}\n#"

SYNC = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: flux-system, namespace: flux-system}
spec: {url: "ssh://git@github.com/example-lab/home-ops", ref: {branch: main}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: flux-system, namespace: flux-system}
spec: {interval: 10m, prune: true, path: ./clusters/home, sourceRef: {kind: GitRepository, name: flux-system}}
"""


def hostile_repository(root: Path, *, in_paths: bool) -> Path:
    """A Flux repository whose CNI Kustomization's name holds a newline and a component of YAML; with
    `in_paths`, also a claim name, an object name and a file's path holding a top-level key."""
    (root / "clusters" / "home" / "flux-system").mkdir(parents=True)
    (root / "clusters" / "home" / "flux-system" / "gotk-sync.yaml").write_text(SYNC)
    # A Kustomization of the CNI (a bootstrap component: its review comment names the object).
    cni = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
           "metadata": {"name": "cilium" + INJECTED, "namespace": "flux-system"},
           "spec": {"interval": "10m", "prune": True, "path": "./infrastructure/cilium",
                    "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}
    app = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
           "metadata": {"name": "gitea", "namespace": "flux-system"},
           "spec": {"interval": "10m", "prune": True, "path": "./apps/gitea", "targetNamespace": "gitea",
                    "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}
    (root / "clusters" / "home" / "apps.yaml").write_text(yaml.safe_dump_all([cni, app]))
    if in_paths:
        # A claim with no size (a review item at the top level names it), in a file whose path holds YAML too.
        directory = root / "apps" / "gitea" / ("volsync" + TOP_LEVEL)
        directory.mkdir(parents=True)
        source = {"apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationSource",
                  "metadata": {"name": "gitea-data", "namespace": "gitea"},
                  "spec": {"sourcePVC": "gitea-data" + TOP_LEVEL, "trigger": {"schedule": "0 3 * * *"},
                           "restic": {"repository": "gitea-data-volsync", "retain": {"daily": 7}}}}
        rsync = {"apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationSource",
                 "metadata": {"name": "media" + TOP_LEVEL, "namespace": "gitea"}, "spec": {"restic": "none"}}
        (directory / "volsync.yaml").write_text(yaml.safe_dump_all([source, rsync]))
    return root


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def imported(tmp_path: Path, capsys: pytest.CaptureFixture[str], *, in_paths: bool) -> tuple[Path, str]:
    repository = hostile_repository(tmp_path / "repo", in_paths=in_paths)
    out = tmp_path / "graph" / "flux.yaml"
    out.parent.mkdir()
    code, err = run(["import", "flux", str(repository), "--out", str(out)], capsys)
    assert code in (0, 1), err
    return out, out.read_text()


def test_an_object_name_with_a_newline_and_yaml_adds_no_component(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out, text = imported(tmp_path, capsys, in_paths=False)
    graph = yaml.safe_load(text)
    assert set(graph) == {"cluster", "kubernetes", "prod_markers", "components"}
    components = graph["components"]
    assert set(components) == {"flux", "flux-system", "gitea", "cilium-evil-layer-app-command-run-touch-tmp-pwned"}
    assert not any("command" in c for c in components.values())
    assert not re.search(r"^\s*(command|evil):", text, flags=re.M)
    code, err = run(["plan", "--graph", str(out), "--json"], capsys)
    assert code == 0, err
    assert '"evil"' not in capsys.readouterr().out
    # What the repository said is still there for the reviewer: one comment, its newlines visible.
    comments = [line for line in text.splitlines() if line.lstrip().startswith(REVIEW)]
    assert any("Kustomization cilium\\n  evil:\\n    layer: app\\n    command:" in line for line in comments)
    assert len(review_items(text)) == len(comments)


def test_claim_names_object_names_and_paths_stay_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, text = imported(tmp_path, capsys, in_paths=True)
    graph = yaml.safe_load(text)
    assert set(graph) == {"cluster", "kubernetes", "prod_markers", "backups", "components"}
    assert "hosts" not in graph and not re.search(r"^\s*(command|evil|hosts):", text, flags=re.M)
    assert all("\\n" in line for line in text.splitlines() if "evil:" in line)
    comments = [line for line in text.splitlines() if line.lstrip().startswith(REVIEW)]
    assert any("the size of PVC gitea-data\\nhosts:" in line for line in comments), comments
    assert any("ReplicationSource media\\nhosts:" in line for line in comments), comments
    # The claim name itself reaches the graph whole, as the value it is (and the graph's reader refuses it).
    (restore,) = [c for c in graph["components"].values() if "restore" in c]
    assert restore["vars"]["pvc"] == "gitea-data" + TOP_LEVEL


def draft(value: str) -> Draft:
    entry = Entry(body={"layer": "app", "description": value}, review=[value, f"estimate: of {value}"])
    return Draft(tool="flux", cluster=value, components={"app": entry},
                 backups={"nightly": Entry(body={"tool": "volsync", "repo": value}, review=[value])},
                 review=[value, f"{value}: not modelled"])


@pytest.mark.parametrize("value", [INJECTED, TOP_LEVEL, "lab\r\ncomponents: {}", "a\u2028components: {}",
                                   "a\x85b", "lab\x1b[2J", "'\"# : - [ ] { } & * ! | > %"], ids=repr)
def test_every_value_of_a_draft_reaches_the_graph_through_the_emitter(value: str) -> None:
    text = render(draft(value), source="repo" + value)
    graph: dict[str, Any] = yaml.safe_load(text)
    assert graph["cluster"] == value
    assert set(graph) == {"cluster", "kubernetes", "prod_markers", "backups", "components"}
    assert set(graph["components"]) == {"app"} and graph["components"]["app"]["description"] == value
    assert set(graph["backups"]) == {"nightly"} and graph["backups"]["nightly"]["repo"] == value
    # Each review item is one comment line: 2 of the draft, 2 of the entry, 1 of the backup, 2 of render's own.
    assert len(review_items(text)) == 7
    # No character that YAML or a terminal reads as a line break or a control is left in a comment.
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            assert line.isprintable(), repr(line)
