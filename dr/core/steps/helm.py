"""A Helm release step (`helm:`): a chart installed through pulumi-kubernetes."""

from __future__ import annotations

import shlex

from dr.core.docmodel import Block, Code, Para, code, text
from dr.core.plan import Step
from dr.core.spec import GraphSpec, HelmAction, thaw
from dr.core.steps.base import BuildContext, Child, ChildKind, StepKind, yaml_text


def children(step: Step, ctx: BuildContext) -> list[Child]:
    action = step.component.action
    assert isinstance(action, HelmAction)
    return [Child(kind="helm-release", name=step.name, inputs={
        "chart": action.chart, "version": action.version, "repo": action.repo, "namespace": action.namespace,
        "release": action.release, "values": thaw(action.values)})]


def runbook(step: Step, child: Child, spec: GraphSpec) -> list[Block]:
    inputs = child.inputs
    values_file = f"values/{step.name}.yaml"
    argv = ["helm", "upgrade", "--install", inputs["release"], inputs["chart"], "--repo", inputs["repo"],
            "--version", inputs["version"], "--namespace", inputs["namespace"], "--create-namespace",
            "-f", values_file, "--wait"]
    return [Para(f"Automation: a Helm release ({code(inputs['chart'])} {text(inputs['version'])}) through Pulumi. "
                 f"By hand, save the values as {code(values_file)}:"),
            Code(yaml_text(inputs["values"]) if inputs["values"] else "{}\n", "yaml"),
            Code(shlex.join(argv) + "\n", "sh")]


def verify(child: Child) -> str:
    return shlex.join(["helm", "status", child.inputs["release"], "-n", child.inputs["namespace"]]) \
        + "   # STATUS: deployed"


KIND = StepKind(name="helm", claims=lambda component: isinstance(component.action, HelmAction),
                children=children, child_kinds=(ChildKind("helm-release", "helm", runbook, verify=verify),))
