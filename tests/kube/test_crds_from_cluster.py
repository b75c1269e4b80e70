"""CRDs of operators no registry publishes come from the cluster itself: `dr preview --kubeconfig FILE` reads
the CRDs a live API server serves and validates against them; without it, those kinds are listed as not
validated, per kind, with where dr looked."""

from __future__ import annotations

import json

import pytest
import yaml

from dr.kube.sandbox_cluster import SandboxCluster
from tests.pulumi.test_user_crds import CRD, preview, project

pytestmark = pytest.mark.integration


def test_preview_validates_against_the_crds_a_live_cluster_serves(cluster: SandboxCluster, tmp_path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path / "good", graph_crds=False)
    code, output = preview(root, capsys=capsys)
    assert code == 0, output
    assert "not validated: lab.example.com/v1 Widget (1 object): no CustomResourceDefinition for it in" in output
    cluster.kubectl("apply", "--server-side", "-f", "-", input_text=json.dumps(CRD))
    code, output = preview(root, "--kubeconfig", str(cluster.kubeconfig), capsys=capsys)
    assert code == 0, output
    assert "1 CustomResourceDefinitions read from the cluster" in output and "not validated" not in output
    bad = project(tmp_path / "bad", graph_crds=False, size="big")
    code, output = preview(bad, "--kubeconfig", str(cluster.kubeconfig), capsys=capsys)
    assert code == 1 and "size" in output, "the cluster's schema is applied, not just found"


def test_a_kubeconfig_that_cannot_be_read_is_refused(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path, graph_crds=False)
    code, output = preview(root, "--kubeconfig", str(tmp_path / "none"), capsys=capsys)
    assert code == 2 and "no such file" in output
    broken = tmp_path / "kubeconfig"
    broken.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [
        {"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}], "contexts": [
        {"name": "c", "context": {"cluster": "c", "user": "u"}}], "current-context": "c", "users": [
        {"name": "u", "user": {}}]}))
    code, output = preview(root, "--kubeconfig", str(broken), capsys=capsys)
    assert code == 1 and "cannot read the CRDs of the cluster of" in output, output
