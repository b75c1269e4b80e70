"""Files a graph names stay where they belong and are what they claim: manifests inside the graph's
directory, playbooks in the playbook directory, regular files of bounded size (no FIFO, no device)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dr.errors import GraphError
from dr.graph_file import load_graph_file

HEAD = "cluster: lab\ncomponents:\n"


def load(tmp_path: Path, component: str) -> None:
    graph = tmp_path / "g" / "graph.yaml"
    graph.parent.mkdir(exist_ok=True)
    graph.write_text(HEAD + component)
    load_graph_file(graph)


@pytest.mark.parametrize(("manifest", "message"), [
    ("/etc/passwd", "must be inside the graph's directory"),
    ("../../../../etc/passwd", "must be inside the graph's directory"),
    ("missing.yaml", "cannot be used"),
])
def test_a_manifest_outside_the_graph_or_missing_is_refused(tmp_path: Path, manifest: str, message: str) -> None:
    with pytest.raises(GraphError, match=message):
        load(tmp_path, f"  m: {{layer: addon, manifests: [{manifest!r}]}}\n")


def test_a_fifo_a_device_and_a_symlink_out_are_refused_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    os.mkfifo(tmp_path / "g" / "fifo.yaml")
    (tmp_path / "g" / "zero.yaml").symlink_to("/dev/zero")
    (tmp_path / "g" / "out.yaml").symlink_to("/etc/hostname")
    for name, message in (("fifo.yaml", "not a regular file"), ("zero.yaml", "inside the graph's directory"),
                          ("out.yaml", "inside the graph's directory")):
        with pytest.raises(GraphError, match=message):
            load(tmp_path, f"  m: {{layer: addon, manifests: [{name}]}}\n")


def test_a_huge_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    with open(tmp_path / "g" / "big.yaml", "wb") as handle:
        handle.truncate(11 * 1024 * 1024)
    with pytest.raises(GraphError, match="larger than 10 MB"):
        load(tmp_path, "  m: {layer: addon, manifests: [big.yaml]}\n")


@pytest.mark.parametrize(("playbook", "message"), [
    ("nope.yml", "playbook 'nope.yml' does not exist in"),
    ("../Makefile", "must be a file name inside"),
    ("/etc/passwd", "must be a file name inside"),
])
def test_a_playbook_must_exist_in_the_playbook_directory(tmp_path: Path, playbook: str, message: str) -> None:
    with pytest.raises(GraphError, match=message):
        load(tmp_path, f"  os: {{layer: os, playbook: {playbook!r}}}\n")


def test_an_existing_playbook_and_manifest_load(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "ok.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    load(tmp_path, "  os: {layer: os, playbook: os-prepare.yml}\n  m: {layer: addon, manifests: [ok.yaml]}\n")


def test_a_restore_missing_what_its_step_needs_fails_at_load_time(tmp_path: Path) -> None:
    from dr.core.graph import RecoveryGraph
    from dr.core.spec import GraphSpec

    graph = """\
cluster: lab
backups:
  vol: {tool: restic, protects: app, repo: /r, schedule: "0 * * * *", rpo: 1h, retention: {daily: 7}}
  db: {tool: pgbackrest, protects: app, repo: /p, schedule: "0 * * * *", rpo: 1h, retention: {daily: 7}}
components:
  vol-restore: {layer: data, restore: {backup: vol}}
  db-restore: {layer: data, restore: {backup: db}, vars: {pg_port: 5433}}
  app: {layer: app, depends_on: [vol-restore, db-restore]}
"""
    with pytest.raises(GraphError) as caught:
        RecoveryGraph.build(GraphSpec.from_yaml(graph, path="g.yaml"))
    text = str(caught.value)
    assert "g.yaml:6: component 'vol-restore' restores restic backup 'vol' and needs vars.restore_path" in text
    assert "component 'db-restore' restores pgbackrest backup 'db' and needs vars.pg_data" in text
