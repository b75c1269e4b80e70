"""`dr import argo` on a repository whose apps come only from ApplicationSets (tests/fixtures/gitops/
argo-appsets): list, git-directory and git-file generators expanded; a cluster generator and a Helm-rendered
app-of-apps reported by name, never guessed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.gitops_import.test_import import plan, refused, review, run

REPOSITORY = REPO / "tests" / "fixtures" / "gitops" / "argo-appsets"


def test_applicationsets_are_expanded_into_their_applications(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "argo.yaml"
    code, _, err = run(["import", "argo", str(REPOSITORY), "--out", str(out)], capsys)
    assert code == 0, err
    graph = yaml.safe_load(out.read_text())
    components = graph["components"]
    # list generator (with its sync waves), git directories (minus the excluded one), git files.
    assert {"cilium", "volsync", "gitea", "paperless", "home-monitoring"} <= set(components)
    assert "legacy" not in components
    assert components["cilium"]["helm"] == {"chart": "cilium", "repo": "https://helm.cilium.io", "version": "1.16.5",
                                            "namespace": "kube-system"}
    assert components["gitea"]["reconciled_by"]["path"] == "apps/gitea"
    held = yaml.safe_load((tmp_path / "gitops" / "gitea.yaml").read_text())
    assert held["spec"]["destination"]["namespace"] == "gitea" and held["spec"]["source"]["path"] == "apps/gitea"
    assert components["home-monitoring"]["reconciled_by"]["name"] == "home-monitoring"
    # The VolSync backup of a generated app is found, and its restore waits for the generated operator.
    assert graph["backups"]["gitea-data"]["protects"] == ["gitea"]
    assert components["gitea-data-restore"]["depends_on"] == ["volsync"]
    assert "gitea-data-restore" in components["gitea"]["depends_on"]
    # What the repository alone cannot expand is named, not guessed.
    text = out.read_text()
    assert "ApplicationSet everywhere is not expanded: its clusters generator needs the live cluster" in text
    assert "Application platform renders its Applications with the Helm chart in charts/platform" in text
    assert "{{" not in text
    review(out)
    assert refused(out) == []
    code, _, err = plan(out, capsys)
    assert code == 0, err
