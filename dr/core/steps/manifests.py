"""A manifests step (`manifests:`): the graph's own YAML files applied through pulumi-kubernetes."""

from __future__ import annotations

import shlex

import yaml

from dr.core.docmodel import Block, Code, Para
from dr.core.kube_objects import KubeObject, MissingInput
from dr.core.plan import Step
from dr.core.restore_tools import object_problems
from dr.core.spec import GraphSpec, ManifestsAction
from dr.core.steps.base import BuildContext, Child, ChildKind, StepKind, relative


def children(step: Step, ctx: BuildContext) -> list[Child]:
    action = step.component.action
    assert isinstance(action, ManifestsAction)
    spec = ctx.spec
    objects, problems = [], []
    for manifest in action.paths:
        text = ctx.read_text(spec.base_dir / manifest) if ctx.read_text is not None else ""
        found = [KubeObject(manifest=doc) for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
        problems += [f"{manifest}: {problem}" for obj in found for problem in object_problems(obj.manifest)]
        objects += found
    if problems:
        raise MissingInput(f"component {step.name!r}: " + "; ".join(problems))
    return [Child(kind="config-group", name=step.name,
                  inputs={"files": [str(spec.base_dir / p) for p in action.paths]}, objects=tuple(objects))]


def runbook(step: Step, child: Child, spec: GraphSpec) -> list[Block]:
    files = [relative(f, spec) for f in child.inputs["files"]]
    return [Para("Automation: applies the manifests through Pulumi. By hand:"),
            Code("".join(f"kubectl apply -f {shlex.quote(f)}\n" for f in files), "sh")]


KIND = StepKind(name="manifests", claims=lambda component: isinstance(component.action, ManifestsAction),
                children=children, child_kinds=(ChildKind("config-group", "objects", runbook),))
