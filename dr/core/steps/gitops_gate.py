"""A GitOps gate: a component GitOps installs (`reconciled_by` with a manifest, no action of its own).

Its object goes into the cluster held (a suspended Flux Kustomization, an Argo CD Application without
automated sync) as soon as the controller is installed, and is released once the restores it depends
on are done, so GitOps never deploys an app onto empty storage.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import yaml

from dr.core.docmodel import Block, Code, Para, code, text
from dr.core.gitops import held
from dr.core.kube_objects import KubeObject, MissingInput
from dr.core.plan import Step
from dr.core.restore_tools import restore_done
from dr.core.spec import Component, GraphSpec, ReconciledBy, thaw
from dr.core.steps.base import BuildContext, Child, ChildKind, StepKind, yaml_text

NOT_RUN = "a GitOps gate: it needs the drill cluster (dr drill --stack)"
GITOPS_GROUPS = {"Kustomization": "kustomize.toolkit.fluxcd.io", "HelmRelease": "helm.toolkit.fluxcd.io",
                 "Application": "argoproj.io"}


def _claims(component: Component) -> bool:
    return component.action is None and component.reconciled_by is not None and bool(component.reconciled_by.manifest)


def gitops_object(step: Step, ctx: BuildContext) -> dict[str, Any]:
    """The GitOps object a gate holds, from its manifest file, pointed at the drill path in drill mode."""
    owner = step.component.reconciled_by
    assert owner is not None
    spec, read_text = ctx.spec, ctx.read_text
    text = read_text(spec.base_dir / owner.manifest) if read_text is not None else ""
    found = [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") == owner.kind
             and d.get("metadata", {}).get("name") == owner.name] if text else []
    if read_text is not None and not found:
        raise MissingInput(f"component {step.name!r}: {owner.manifest} holds no {owner.kind} named {owner.name!r}")
    obj: dict[str, Any] = copy.deepcopy(found[0]) if found else {
        "apiVersion": "", "kind": owner.kind, "metadata": {"name": owner.name}}
    obj.setdefault("metadata", {}).setdefault("namespace", owner.namespace)
    spec_part = obj.setdefault("spec", {})
    if owner.path and owner.kind == "Kustomization":
        spec_part["path"] = owner.path
    elif owner.path and owner.kind == "Application" and isinstance(spec_part.get("source"), dict):
        spec_part["source"]["path"] = owner.path
    if owner.substitutions and owner.kind == "Kustomization":  # Flux's post-build variable substitution
        spec_part.setdefault("postBuild", {}).setdefault("substitute", {}).update(thaw(owner.substitutions))
    return obj


def children(step: Step, ctx: BuildContext) -> list[Child]:
    obj = gitops_object(step, ctx)
    owner = step.component.reconciled_by
    return [Child(kind="gitops-release", name=f"{step.name}-release", inputs={
        "step": step.name, "gitops": "release", "manifest": obj, "restores": [],
        "controller": owner.controller if owner else "",
        "restore_timeout_s": 3600, "ready_timeout_s": step.timeout_s},
        objects=(KubeObject(manifest=obj),))]


def with_holds(components: Mapping[str, tuple[tuple[str, ...], tuple[Child, ...]]]) -> dict[str, tuple[Child, ...]]:
    """The children of every component (by name: what it depends on, its children), with the gates wired:
    each gate's release waits for the restore objects of the steps it depends on; its hold is a child of
    the controller component, created as soon as the controller is installed."""
    holds: dict[str, list[Child]] = {}
    out: dict[str, tuple[Child, ...]] = {}
    for name, (depends_on, children) in components.items():
        made = []
        for child in children:
            if child.kind == "gitops-release":
                restores = [obj.manifest for dep in depends_on if dep in components
                            for c in components[dep][1] for obj in c.objects
                            if restore_done(obj.manifest) is not None]
                child = replace(child, inputs={**child.inputs, "restores": restores})
                holds.setdefault(str(child.inputs["controller"]), []).append(Child(
                    kind="gitops-hold", name=f"{name}-hold",
                    inputs={"step": name, "gitops": "hold", "manifest": child.inputs["manifest"]}))
            made.append(child)
        out[name] = tuple(made)
    return {name: (*children, *holds.get(name, ())) for name, children in out.items()}


def hold_runbook(step: Step, child: Child, spec: GraphSpec) -> list[Block]:
    """The gate's hold, under the controller's step: the object goes in held, never as GitOps wrote it."""
    obj = held(child.inputs["manifest"])
    meta = obj.get("metadata", {})
    file_name = f"hold/{meta.get('name', step.name)}-{str(obj.get('kind', '')).lower()}.yaml"
    how = "suspended" if obj.get("kind") != "Application" else "without automated sync"
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    return [Para(f"Automation: as soon as {text(step.name)} is installed, puts {text(str(obj.get('kind')))} "
                 f"{code(where)} in place {how}, so it cannot deploy onto "
                 "empty storage before the restores it waits for (its own step resumes it). By hand, save as "
                 f"{code(file_name)} and apply:"),
            Code(yaml_text(obj), "yaml"),
            Code(shlex.join(["kubectl", "apply", "--server-side", "-f", file_name]) + "\n", "sh")]


def resume_commands(owner: ReconciledBy) -> list[list[str]]:
    """What a person types to release a held GitOps object and wait until it is ready, as argv lists."""
    resource = f"{owner.kind.lower()}.{GITOPS_GROUPS[owner.kind]}/{owner.name}"
    if owner.family == "flux":
        return [["kubectl", "-n", owner.namespace, "patch", resource, "--type=merge",
                 "-p", '{"spec":{"suspend":false}}'],
                ["kubectl", "-n", owner.namespace, "wait", resource, "--for=condition=Ready", "--timeout=30m"]]
    return [["kubectl", "-n", owner.namespace, "patch", resource, "--type=merge",
             "-p", '{"spec":{"syncPolicy":{"automated":{}}}}'],
            ["kubectl", "-n", owner.namespace, "wait", resource, "--for=jsonpath={.status.health.status}=Healthy",
             "--timeout=30m"]]


def release_runbook(step: Step, child: Child, spec: GraphSpec) -> list[Block]:
    return []  # the step's own paragraph (`reconciled_by`) says how to resume and wait


KIND = StepKind(name="gitops-gate", claims=_claims, children=children, child_kinds=(
    ChildKind("gitops-hold", "cluster", hold_runbook, not_run_in_drills=NOT_RUN, after_siblings=True),
    ChildKind("gitops-release", "cluster", release_runbook, not_run_in_drills=NOT_RUN),
))
