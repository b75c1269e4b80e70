"""What `pulumi up` creates for a plan, decided without Pulumi: the resource plan.

For each step of a `Plan` the step's kind (`dr.core.steps`) decides its children (a playbook run, a Helm
release, a manifest group, Kubernetes restore objects…) and renders every Kubernetes object dr writes. It
marks which of them bear data: those get `retain_on_delete` always and `protect` in prod, so no
uninstall or namespace deletion cascades into data. In drill mode every rendered object is scanned
for the graph's `prod_markers` before anything is registered; a restore's read-only source is the
only exemption. Pure: manifest files come in through `read_text`; the Pulumi adapter
(`dr.stack.program`) and `dr preview` consume the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from dr.core.kube_objects import KubeObject, MissingInput, is_builtin
from dr.core.leaks import RESTORE_SOURCES, JsonPath, find_markers
from dr.core.modes import ReadText
from dr.core.plan import Plan, Step
from dr.core.spec import GraphSpec
from dr.core.steps import BuildContext, Child, step_kind_of
from dr.core.steps.gitops_gate import with_holds
from dr.errors import Diagnostic, GraphError

__all__ = ["Child", "ComponentResources", "KubeObject", "ResourcePlan", "find_object_leaks", "resource_plan"]


@dataclass(frozen=True)
class ComponentResources:
    name: str
    layer: str
    depends_on: tuple[str, ...]
    children: tuple[Child, ...]
    provides_kubeconfig: bool = False

    def custom_kinds(self) -> tuple[tuple[str, str], ...]:
        """The custom resource kinds (apiVersion, kind) this component creates or waits for, whose CRDs must
        be served before it starts: its own objects' kinds and the backups its precheck waits for, less the
        kinds whose CRD it creates itself. A GitOps hold under a controller's step is left out: the
        controller's own chart, in the same step, installs that CRD."""
        kinds: set[tuple[str, str]] = set()
        defined: set[tuple[str, str]] = set()
        for child in self.children:
            if child.kind == "gitops-hold":
                continue
            manifests = [obj.manifest for obj in child.objects]
            for manifest in manifests:
                if manifest.get("kind") == "CustomResourceDefinition":
                    spec = manifest.get("spec") or {}
                    defined |= {(f"{spec.get('group')}/{v.get('name')}", str((spec.get("names") or {}).get("kind")))
                                for v in spec.get("versions") or []}
            needs = child.inputs.get("precheck", {}) if child.kind == "restore-precheck" else {}
            manifests += [backup for backup in needs.get("backups", [])]
            kinds |= {(str(m.get("apiVersion", "")), str(m.get("kind", ""))) for m in manifests
                      if m.get("apiVersion") and not is_builtin(str(m["apiVersion"]))}
        return tuple(sorted(kinds - defined))


@dataclass(frozen=True)
class ResourcePlan:
    cluster: str
    mode: str
    kubernetes: str
    components: tuple[ComponentResources, ...]
    kubeconfig_from: str | None = None  # the control-plane step whose output configures the provider

    def objects(self) -> Iterator[tuple[str, KubeObject]]:
        for component in self.components:
            for child in component.children:
                for obj in child.objects:
                    yield component.name, obj


def resource_plan(plan: Plan, spec: GraphSpec, *, read_text: ReadText | None = None) -> ResourcePlan:
    """The resources of every step, leak-checked in drill mode; GraphError on a leak or a missing input."""
    problems: list[Diagnostic] = []
    components: list[ComponentResources] = []
    kubeconfig_from = next((s.name for s in plan.steps if s.layer == "control-plane"
                            and s.action in ("playbook", "talos")), None)
    ctx = BuildContext(spec=spec, mode=plan.mode, read_text=read_text)
    for step in plan.steps:
        try:
            children = _children(step, ctx)
        except MissingInput as exc:
            problems.append(Diagnostic(spec.path, spec.line_of("components", step.name), str(exc)))
            continue
        components.append(ComponentResources(name=step.name, layer=step.layer, depends_on=step.depends_on,
                                             children=tuple(children),
                                             provides_kubeconfig=step.name == kubeconfig_from))
    if problems:
        raise GraphError(problems)
    wired = with_holds({c.name: (c.depends_on, c.children) for c in components})
    components = [replace(c, children=wired[c.name]) for c in components]
    result = ResourcePlan(cluster=plan.cluster, mode=plan.mode, kubernetes=spec.kubernetes,
                          components=tuple(components), kubeconfig_from=kubeconfig_from)
    if plan.mode == "drill":
        leaks = find_object_leaks(result, spec.prod_markers)
        if leaks:
            raise GraphError([Diagnostic(spec.path, spec.line_of("components", c), m) for c, m in leaks])
    return result


def _children(step: Step, ctx: BuildContext) -> list[Child]:
    kind = step_kind_of(step.component)
    return kind.children(step, ctx) if kind is not None else []


def find_object_leaks(resources: ResourcePlan, markers: tuple[str, ...]) -> list[tuple[str, str]]:
    """(component, message) for every marker found in an object or input a drill would create."""
    leaks: list[tuple[str, str]] = []
    for component in resources.components:
        for child in component.children:
            # Every input of every child (a kube-object's input is its object, scanned below with its
            # restore sources exempt); a host restore's `repo` is its read-only source.
            exempt: tuple[JsonPath, ...] = RESTORE_SOURCES if child.kind == "host-restore" else ()
            scanned: list[tuple[str, Any, tuple[JsonPath, ...]]] = [
                (f"{child.kind} {child.name}", child.inputs, exempt)] if child.kind != "kube-object" else []
            scanned += [(obj.title, obj.manifest, obj.restore_sources) for obj in child.objects]
            for title, value, exempt_paths in scanned:
                for hit in find_markers(value, markers, exempt=exempt_paths):
                    shown = ".".join(str(p) for p in hit.path)
                    leaks.append((component.name, f"component {component.name!r} in drill mode: {title} "
                                                  f"field {shown} contains the production marker {hit.marker!r}; "
                                                  "a drill must not touch production"))
    return leaks
