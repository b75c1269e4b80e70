"""The kinds of recovery step, one module each, and the registry every front end reads.

A step kind (`base.StepKind`) claims the components it builds and turns a step into children; each
kind of child (`base.ChildKind`) says where it runs, what the runbook tells a person to type, the
command that shows it is done, and why a local drill does not run it. The resource plan
(`dr.core.resources`), `pulumi up`'s program (`dr.stack.program`), the runbook (`dr.docs.runbook`), and
the drills (`dr.drill`) loop over this registry; the host-level runners are in `dr.hosts.host_steps`
(I/O stays out of the core). Adding a kind: one module here, one line below (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from dr.core.spec import Component
from dr.core.steps import command, external, gitops_gate, helm, manifests, playbook, restore, talos
from dr.core.steps.base import STEP_KIND, BuildContext, Child, ChildKind, StepKind, step_inputs

STEP_KINDS: tuple[StepKind, ...] = (
    playbook.KIND,
    helm.KIND,
    manifests.KIND,
    command.KIND,
    talos.KIND,
    external.KIND,
    restore.KIND,
    gitops_gate.KIND,
)

CHILD_KINDS: Mapping[str, ChildKind] = {kind.name: kind for step in STEP_KINDS for kind in step.child_kinds}

# Children run by dr's dynamic host-step resource (`dr.hosts.host_steps.run_step`): on hosts through
# Ansible, on the machine running dr, or against the cluster with kubectl.
HOST_STEP_KINDS: tuple[str, ...] = tuple(name for name, kind in CHILD_KINDS.items() if kind.host_level)
# Children that need the rebuilt cluster (Pulumi's provider or its kubeconfig).
CLUSTER_CHILD_KINDS: frozenset[str] = frozenset(
    name for name, kind in CHILD_KINDS.items() if kind.where in ("cluster", "helm", "objects"))
# Children that run on the graph's hosts through Ansible.
ON_HOSTS: frozenset[str] = frozenset(name for name, kind in CHILD_KINDS.items() if kind.where == "hosts")
NOT_RUN_IN_DRILLS: Mapping[str, str] = {name: kind.not_run_in_drills for name, kind in CHILD_KINDS.items()
                                        if kind.not_run_in_drills}


def step_kind_of(component: Component) -> StepKind | None:
    """The kind that builds this component; None for a milestone (nothing to run)."""
    return next((kind for kind in STEP_KINDS if kind.claims(component)), None)


__all__ = ["CHILD_KINDS", "CLUSTER_CHILD_KINDS", "HOST_STEP_KINDS", "NOT_RUN_IN_DRILLS", "ON_HOSTS", "STEP_KIND",
           "STEP_KINDS", "BuildContext", "Child", "ChildKind", "StepKind", "step_inputs", "step_kind_of"]
