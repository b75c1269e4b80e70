"""The registry of step kinds (`dr.core.steps`): every front end reads the same facts about a kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from dr.core.docmodel import to_markdown
from dr.core.plan import plan_for
from dr.core.resources import ResourcePlan, resource_plan
from dr.core.spec import GraphSpec
from dr.core.steps import (
    CHILD_KINDS,
    CLUSTER_CHILD_KINDS,
    HOST_STEP_KINDS,
    NOT_RUN_IN_DRILLS,
    ON_HOSTS,
    STEP_KINDS,
    step_kind_of,
)
from dr.graph_file import load_graph_file
from dr.hosts.host_steps import RUNNERS
from tests.conftest import EXAMPLE_GRAPH

LOCAL_KINDS = """\
cluster: lab
kubernetes: "1.30"
backups:
  etcd: {tool: etcd-snapshot, repo: /var/backups/etcd, schedule: "@hourly", retention: {last: 24}, rpo: 1h}
components:
  nas: {layer: os, external: "tcp://192.0.2.10:2049"}
  control-plane:
    layer: control-plane
    depends_on: [nas]
    talos: {nodes: [192.0.2.2], config: talos/controlplane.yaml, recover_from: etcd}
  secret-store:
    layer: addon
    depends_on: [control-plane]
    command: {run: "echo restored", cwd: infra}
"""


def read(path: Path) -> str:
    return path.read_text()


def resources(spec: GraphSpec, mode: str) -> ResourcePlan:
    plan = plan_for(spec, mode=mode, read_text=read)
    assert plan.graph is not None
    return resource_plan(plan, plan.graph.spec, read_text=read)


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[GraphSpec, ResourcePlan]]:
    base = tmp_path_factory.mktemp("local-kinds")
    (base / "infra").mkdir()
    (base / "talos").mkdir()
    (base / "talos" / "controlplane.yaml").write_text("machine: {}\n")
    local = GraphSpec.from_yaml(LOCAL_KINDS, path=str(base / "cluster.yaml"))
    example = load_graph_file(EXAMPLE_GRAPH)
    return [(spec, resources(spec, mode)) for spec in (example, local) for mode in ("prod", "drill")]


def test_every_child_the_plans_make_is_a_registered_kind_with_runbook_text(plans) -> None:  # type: ignore[no-untyped-def]
    made = set()
    for spec, plan in plans:
        for component in plan.components:
            step = next(s for s in plan_for(spec, mode=plan.mode, read_text=read).steps if s.name == component.name)
            for child in component.children:
                made.add(child.kind)
                text = to_markdown(CHILD_KINDS[child.kind].runbook(step, child, spec))
                assert child.kind == "gitops-release" or text.strip(), child.kind
    # The example and the small graph together make every kind but the GitOps gate's (tests/docs cover it).
    assert made == set(CHILD_KINDS) - {"gitops-hold", "gitops-release"}


def test_each_component_is_built_by_at_most_one_kind(plans) -> None:  # type: ignore[no-untyped-def]
    for spec, _ in plans:
        for component in spec.components.values():
            claiming = [kind.name for kind in STEP_KINDS if kind.claims(component)]
            assert len(claiming) <= 1, (component.name, claiming)
            assert (step_kind_of(component) is None) == (not claiming)


def test_every_host_level_kind_has_exactly_one_runner() -> None:
    """The runners (I/O, `dr.hosts`) and the registry (pure, `dr.core.steps`) name the same kinds."""
    assert set(RUNNERS) == set(HOST_STEP_KINDS)
    assert {"playbook", "host-restore"} == ON_HOSTS
    assert not (ON_HOSTS & CLUSTER_CHILD_KINDS)


def test_what_a_local_drill_cannot_run_is_said_once_per_kind() -> None:
    assert set(NOT_RUN_IN_DRILLS) == {"command", "talos", "external", "gitops-hold", "gitops-release"}
    assert all(reason for reason in NOT_RUN_IN_DRILLS.values())
    assert "dr drill --stack" in NOT_RUN_IN_DRILLS["command"]


def test_the_helm_and_restore_object_kinds_say_how_to_see_they_are_done(plans) -> None:  # type: ignore[no-untyped-def]
    _, prod = plans[0]
    lines = [CHILD_KINDS[child.kind].verify(child)  # type: ignore[misc]
             for component in prod.components for child in component.children
             if CHILD_KINDS[child.kind].verify is not None]
    assert any(line.startswith("helm status ") and "deployed" in line for line in lines)
    assert any(line.startswith("kubectl get namespace ") and "Active" in line for line in lines)
