"""A playbook step (`playbook:`): an Ansible playbook on the graph's hosts, run through ansible-runner."""

from __future__ import annotations

from dr.core.docmodel import Block, Code, Para, code
from dr.core.invocations import playbook_invocation
from dr.core.plan import Step
from dr.core.spec import GraphSpec, PlaybookAction, thaw
from dr.core.steps.base import SNAPSHOT_FILE, BuildContext, Child, ChildKind, StepKind, relative


def children(step: Step, ctx: BuildContext) -> list[Child]:
    action = step.component.action
    assert isinstance(action, PlaybookAction)
    spec = ctx.spec
    own = {"playbook_dir": str(spec.base_dir / spec.playbooks)} if spec.playbooks else {}
    return [Child(kind="playbook", name=f"{step.name}-playbook",
                  inputs={"playbook": action.playbook, "hosts": list(action.hosts), "vars": thaw(action.vars), **own})]


def runbook(step: Step, child: Child, spec: GraphSpec) -> list[Block]:
    inputs = child.inputs
    invocation = playbook_invocation(inputs)
    where = relative(str(inputs["playbook_dir"]), spec) + "/" if inputs.get("playbook_dir") else "playbooks/"
    blocks: list[Block] = [
        Para(f"Automation: runs {code(where + invocation.playbook)} through ansible-runner. By hand:"),
        Code(invocation.command_line() + "\n", "sh")]
    if invocation.playbook == "k3s-server.yml":
        blocks += [Para("If the servers use k3s's embedded etcd instead of the external one, restore it "
                        "with the snapshot (once, on the first server), then start k3s:"),
                   Code("k3s server --cluster-reset --cluster-reset-restore-path=" + SNAPSHOT_FILE + "\n"
                        "systemctl start k3s\n", "sh")]
    return blocks


KIND = StepKind(name="playbook", claims=lambda component: isinstance(component.action, PlaybookAction),
                children=children, child_kinds=(ChildKind("playbook", "hosts", runbook),))
