"""Users' own custom resources validate against their own CRDs: a directory in the graph (`crds:`) or
`dr preview --crds DIR`; without one, preview names the missing schema."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml

from dr.cli import main
from dr.errors import GraphError
from dr.graph_file import load_graph_file

# Each preview runs the Pulumi program under mocks (about 10 s here): kept out of `make test-quick`.
pytestmark = pytest.mark.integration

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.lab.example.com"},
    "spec": {"group": "lab.example.com", "scope": "Namespaced",
             "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {"type": "object", "required": ["size"],
                                                           "properties": {"size": {"type": "integer"}}}}}}}]}}


def project(tmp_path: Path, *, graph_crds: bool, size: object = 3) -> Path:
    (tmp_path / "stacks" / "manifests").mkdir(parents=True)
    (tmp_path / "stacks" / "manifests" / "widget.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "lab.example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"},
         "spec": {"size": size}}))
    (tmp_path / "stacks" / "my-crds").mkdir()
    (tmp_path / "stacks" / "my-crds" / "widgets.yaml").write_text(yaml.safe_dump(CRD))
    (tmp_path / "stacks" / "cluster.yaml").write_text(
        "cluster: lab\n" + ("crds: [my-crds]\n" if graph_crds else "")
        + "components:\n  widget: {layer: app, manifests: manifests/widget.yaml, estimate: 1m}\n")
    (tmp_path / "stacks" / "Pulumi.prod.yaml").write_text("config:\n  dr:graph: stacks/cluster.yaml\n  dr:mode: prod\n  dr:kubeconfig: /nonexistent/kubeconfig\n")
    return tmp_path


def preview(root: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with contextlib.chdir(root):
        code = main(["preview", "--stack", "prod", *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_users_own_custom_resource_needs_its_crd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without its CRD, the kind is listed as not validated (how many objects, where dr looked, how to give
    one), never counted as valid; with it, it is validated."""
    root = project(tmp_path, graph_crds=False)
    code, output = preview(root, capsys=capsys)
    assert code == 0, output
    assert "not validated: lab.example.com/v1 Widget (1 object): no CustomResourceDefinition for it in" in output
    assert "give its CRD with --crds DIR" in output and "1 not validated (no CRD: above)" in output
    code, output = preview(root, "--crds", str(root / "stacks" / "my-crds"), capsys=capsys)
    assert code == 0, output
    assert "not validated" not in output


def test_the_graphs_crds_directory_is_used_and_really_validates(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path, graph_crds=False, size="big")
    code, output = preview(root, "--crds", str(root / "stacks" / "my-crds"), capsys=capsys)
    assert code == 1 and "size" in output, "the user's schema is applied, not just found"
    root = project(tmp_path / "in-graph", graph_crds=True)
    code, output = preview(root, capsys=capsys)
    assert code == 0, output


def test_graph_crds_must_be_a_directory_inside_the_graphs_directory(tmp_path: Path) -> None:
    graph = tmp_path / "g" / "cluster.yaml"
    graph.parent.mkdir()
    graph.write_text("cluster: lab\ncrds: [crds, ../../etc]\ncomponents:\n  a: {layer: os}\n")
    (graph.parent / "crds").mkdir()
    with pytest.raises(GraphError, match="crds entry '../../etc' must be a directory inside"):
        load_graph_file(graph)
