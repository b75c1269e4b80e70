"""The runbook of a GitOps gate tells a person to put the object in place held, never as GitOps wrote it.

Before, the gate's hold and release fell through to the text of a restore object: under the controller's
step and again under the app's, "creates Kustomization through Pulumi ... kubectl apply" with the object
unsuspended, which by hand lets Flux deploy the app onto empty storage before its restores: the incident
the gate exists to prevent.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from dr.core.docmodel import to_markdown
from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.core.spec import GraphSpec
from dr.docs.runbook import build_runbook
from tests.kube.test_engine_gitops_gate import GRAPH, KUSTOMIZATION


def runbook(tmp_path: Path) -> str:
    (tmp_path / "gitops").mkdir()
    (tmp_path / "gitops" / "gitea.yaml").write_text(yaml.safe_dump(KUSTOMIZATION))
    spec = GraphSpec.from_yaml(GRAPH, path=str(tmp_path / "cluster.yaml"))
    plan = plan_for(spec, read_text=lambda p: Path(p).read_text())
    assert plan.graph is not None
    resources = resource_plan(plan, plan.graph.spec, read_text=lambda p: Path(p).read_text())
    return to_markdown(build_runbook(plan, plan.graph.spec, resources, graph_path="cluster.yaml", mode_diff="",
                                     mermaid="", svg=""))


def test_the_hold_is_applied_suspended_and_the_object_is_never_applied_as_written(tmp_path: Path) -> None:
    text = runbook(tmp_path)
    hold = text.index("puts Kustomization `flux-system/gitea` in place suspended")
    held_yaml = text[hold:text.index("kubectl apply --server-side -f hold/gitea-kustomization.yaml")]
    assert "suspend: true" in held_yaml
    assert "restore/gitea-kustomization.yaml" not in text and "restore/flux-kustomization.yaml" not in text
    assert text.count("kind: Kustomization") == 1, "the object appears once: held"
    assert "resume it and wait until it is ready" in text[hold:]
