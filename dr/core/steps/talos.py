"""A Talos step (`talos:`): machine configurations applied and etcd bootstrapped with talosctl."""

from __future__ import annotations

import shlex

from dr.core.docmodel import Block, Code, Para, code
from dr.core.invocations import talos_commands
from dr.core.plan import Step
from dr.core.spec import GraphSpec, TalosAction
from dr.core.steps.base import SNAPSHOT_FILE, BuildContext, Child, ChildKind, StepKind, relative


def children(step: Step, ctx: BuildContext) -> list[Child]:
    action = step.component.action
    assert isinstance(action, TalosAction)
    spec = ctx.spec
    return [Child(kind="talos", name=f"{step.name}-talos", inputs={
        "step": step.name, "nodes": list(action.nodes), "config": str(spec.base_dir / action.config),
        "talosconfig": str(spec.base_dir / action.talosconfig) if action.talosconfig else "",
        "endpoint": action.endpoint or action.nodes[0], "insecure": action.insecure,
        "recover_from": spec.backups[action.recover_from].repo if action.recover_from else ""},
        retain_on_delete=True)]


def runbook(step: Step, child: Child, spec: GraphSpec) -> list[Block]:
    inputs = child.inputs
    snapshot = SNAPSHOT_FILE if inputs.get("recover_from") else ""
    calls = talos_commands({**inputs, "config": relative(inputs["config"], spec),
                            "talosconfig": relative(inputs["talosconfig"], spec) if inputs["talosconfig"] else ""},
                           snapshot=snapshot, kubeconfig="kubeconfig")
    lead = ("Automation: runs talosctl from the machine running dr (Talos has no SSH): apply the machine "
            "configuration to every node, bootstrap etcd"
            + (f" from the newest snapshot of {code(inputs['recover_from'])}" if snapshot else "")
            + ", then fetch the kubeconfig. By hand:")
    return [Para(lead), Code("".join(shlex.join(c) + "\n" for c in calls), "sh")]


KIND = StepKind(name="talos", claims=lambda component: isinstance(component.action, TalosAction),
                children=children, child_kinds=(ChildKind(
                    "talos", "local", runbook,
                    not_run_in_drills="needs Talos machines; a local drill does not run talosctl "
                                      "(tested with a stand-in, docs/gitops.md)"),))
