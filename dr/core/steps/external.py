"""An external step (`external:`): something outside the cluster dr checks for and never creates."""

from __future__ import annotations

from dr.core.docmodel import Block, Para, code
from dr.core.plan import Step
from dr.core.spec import ExternalAction, GraphSpec
from dr.core.steps.base import BuildContext, Child, ChildKind, StepKind


def children(step: Step, ctx: BuildContext) -> list[Child]:
    action = step.component.action
    assert isinstance(action, ExternalAction)
    return [Child(kind="external", name=f"{step.name}-check", inputs={"step": step.name, "check": action.check})]


def runbook(step: Step, child: Child, spec: GraphSpec) -> list[Block]:
    return [Para(f"Outside the cluster: dr checks {code(child.inputs['check'])} is there and never creates it. If the "
                 "check fails, bring it back first (a NAS, a bucket, a DNS provider).")]


KIND = StepKind(name="external", claims=lambda component: isinstance(component.action, ExternalAction),
                children=children, child_kinds=(ChildKind(
                    "external", "local", runbook,
                    not_run_in_drills="an external dependency; a local drill does not contact it"),))
