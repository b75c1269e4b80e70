"""A command step (`command:`): the operator's own command, run on the machine running dr."""

from __future__ import annotations

import shlex

from dr.core.docmodel import Block, Code, Para, code
from dr.core.plan import Step
from dr.core.spec import CommandAction, GraphSpec, thaw
from dr.core.steps.base import BuildContext, Child, ChildKind, StepKind, relative


def children(step: Step, ctx: BuildContext) -> list[Child]:
    action = step.component.action
    assert isinstance(action, CommandAction)
    return [Child(kind="command", name=f"{step.name}-command", inputs={
        "step": step.name, "command": list(action.run), "cwd": str(ctx.spec.base_dir / action.cwd),
        "secrets": list(action.secrets), "env": thaw(action.env)})]


def runbook(step: Step, child: Child, spec: GraphSpec) -> list[Block]:
    inputs = child.inputs
    env = [f"{k}={shlex.quote(str(v))}" for k, v in dict(inputs.get("env", {})).items()]
    env += [f"DR_SECRET_{str(n).upper().replace('-', '_')}=<the {n} secret>" for n in inputs.get("secrets", [])]
    return [Para(f"Automation: runs this command on the machine running dr, in {code(relative(inputs['cwd'], spec))}"
                 + (" (its secrets as environment variables)." if inputs.get("secrets") else ".") + " By hand:"),
            Code(f"cd {shlex.quote(relative(inputs['cwd'], spec))}\n"
                 + (" ".join(env) + " " if env else "") + shlex.join(inputs["command"]) + "\n", "sh")]


KIND = StepKind(name="command", claims=lambda component: isinstance(component.action, CommandAction),
                children=children, child_kinds=(ChildKind(
                    "command", "local", runbook,
                    not_run_in_drills="runs your command on the operator's machine; a local drill does not run it "
                                      "(dr drill --stack does)"),))
