"""What `pulumi up` creates for a plan, decided without Pulumi: the resource plan.

For each step of a `Plan` this module decides the children (a playbook run, a Helm release, a
manifest group, Kubernetes restore objects), renders every Kubernetes object dr itself writes, and
marks which of them bear data: those get `retain_on_delete` always and `protect` in prod, so no
uninstall or namespace deletion cascades into data. In drill mode every rendered object is scanned
for the graph's `prod_markers` before anything is registered; a restore's read-only source is the
only exemption. Pure: manifest files come in through `read_text`; the Pulumi adapter
(`dr.stack.program`) and `dr preview` consume the result.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml

from dr.core.kube_objects import KubeObject, MissingInput, need
from dr.core.leaks import RESTORE_SOURCES, JsonPath, find_markers
from dr.core.modes import ReadText
from dr.core.plan import Plan, Step
from dr.core.restore_tools import (
    TOOLS,
    RestoreRequest,
    backup_waited_for,
    object_problems,
    restore_done,
    secrets_read,
)
from dr.core.spec import (
    CommandAction,
    ExternalAction,
    GraphSpec,
    HelmAction,
    ManifestsAction,
    PlaybookAction,
    RestoreAction,
    TalosAction,
    thaw,
)
from dr.errors import Diagnostic, GraphError


@dataclass(frozen=True)
class Child:
    """One resource under a component: what it is, its inputs, and how it is protected."""

    kind: str  # playbook | host-restore | helm-release | config-group | kube-object
    name: str
    inputs: Mapping[str, Any]
    protect: bool = False
    retain_on_delete: bool = False
    objects: tuple[KubeObject, ...] = ()


STEP_KIND = "step_kind"  # the key of a host-level step's inputs that says which kind of step runs them


def step_inputs(child: Child) -> dict[str, Any]:
    """What a host-level step runs from: its inputs and, explicitly, its kind (`dr.hosts.host_steps.RUNNERS`)."""
    return {**child.inputs, STEP_KIND: child.kind}


@dataclass(frozen=True)
class ComponentResources:
    name: str
    layer: str
    depends_on: tuple[str, ...]
    children: tuple[Child, ...]
    provides_kubeconfig: bool = False


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
    namespaces_created: dict[str, set[str]] = {}  # namespace -> the components that create it
    for step in plan.steps:
        try:
            children = _children(step, spec, plan.mode, read_text, namespaces_created)
        except MissingInput as exc:
            problems.append(Diagnostic(spec.path, spec.line_of("components", step.name), str(exc)))
            continue
        components.append(ComponentResources(name=step.name, layer=step.layer, depends_on=step.depends_on,
                                             children=tuple(children),
                                             provides_kubeconfig=step.name == kubeconfig_from))
    if problems:
        raise GraphError(problems)
    components = _with_gitops_holds(components, spec)
    result = ResourcePlan(cluster=plan.cluster, mode=plan.mode, kubernetes=spec.kubernetes,
                          components=tuple(components), kubeconfig_from=kubeconfig_from)
    if plan.mode == "drill":
        leaks = find_object_leaks(result, spec.prod_markers)
        if leaks:
            raise GraphError([Diagnostic(spec.path, spec.line_of("components", c), m) for c, m in leaks])
    return result


# Children run through `dr.hosts.host_steps.run_step` (a dynamic resource in `pulumi up`): on hosts through
# Ansible, or on the machine running dr (LOCAL_STEP_KINDS).
LOCAL_STEP_KINDS: tuple[str, ...] = ("command", "talos", "external", "gitops-hold", "gitops-release",
                                     "restore-precheck")
HOST_STEP_KINDS: tuple[str, ...] = ("playbook", "host-restore", *LOCAL_STEP_KINDS)
NOT_RUN_IN_DRILLS: Mapping[str, str] = {
    "command": "runs your command on the operator's machine; a local drill does not run it (dr drill --stack does)",
    "talos": "needs Talos machines; a local drill does not run talosctl (tested with a stand-in, docs/gitops.md)",
    "external": "an external dependency; a local drill does not contact it",
    "gitops-hold": "a GitOps gate: it needs the drill cluster (dr drill --stack)",
    "gitops-release": "a GitOps gate: it needs the drill cluster (dr drill --stack)",
}


def _children(step: Step, spec: GraphSpec, mode: str, read_text: ReadText | None,
              namespaces_created: dict[str, set[str]]) -> list[Child]:
    action = step.component.action
    prod = mode == "prod"
    if action is None and step.component.reconciled_by is not None and step.component.reconciled_by.manifest:
        return [_gitops_release(step, spec, read_text)]
    if action is None:
        return []
    if isinstance(action, PlaybookAction):
        own = {"playbook_dir": str(spec.base_dir / spec.playbooks)} if spec.playbooks else {}
        return [Child(kind="playbook", name=f"{step.name}-playbook",
                      inputs={"playbook": action.playbook, "hosts": list(action.hosts), "vars": thaw(action.vars),
                              **own})]
    if isinstance(action, HelmAction):
        return [Child(kind="helm-release", name=step.name, inputs={
            "chart": action.chart, "version": action.version, "repo": action.repo, "namespace": action.namespace,
            "release": action.release, "values": thaw(action.values)})]
    if isinstance(action, ManifestsAction):
        objects, problems = [], []
        for manifest in action.paths:
            text = read_text(spec.base_dir / manifest) if read_text is not None else ""
            found = [KubeObject(manifest=doc) for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
            problems += [f"{manifest}: {problem}" for obj in found for problem in object_problems(obj.manifest)]
            objects += found
        if problems:
            raise MissingInput(f"component {step.name!r}: " + "; ".join(problems))
        return [Child(kind="config-group", name=step.name,
                      inputs={"files": [str(spec.base_dir / p) for p in action.paths]}, objects=tuple(objects))]
    if isinstance(action, CommandAction):
        return [Child(kind="command", name=f"{step.name}-command", inputs={
            "step": step.name, "command": list(action.run), "cwd": str(spec.base_dir / action.cwd),
            "secrets": list(action.secrets), "env": thaw(action.env)})]
    if isinstance(action, TalosAction):
        return [Child(kind="talos", name=f"{step.name}-talos", inputs={
            "step": step.name, "nodes": list(action.nodes), "config": str(spec.base_dir / action.config),
            "talosconfig": str(spec.base_dir / action.talosconfig) if action.talosconfig else "",
            "endpoint": action.endpoint or action.nodes[0], "insecure": action.insecure,
            "recover_from": spec.backups[action.recover_from].repo if action.recover_from else ""},
            retain_on_delete=True)]
    if isinstance(action, ExternalAction):
        return [Child(kind="external", name=f"{step.name}-check", inputs={"step": step.name, "check": action.check})]
    assert isinstance(action, RestoreAction)
    backup = spec.backups[action.backup]
    if backup.host_level:
        return [Child(kind="host-restore", name=f"{step.name}-restore", retain_on_delete=True, inputs={
            "playbook": TOOLS[backup.tool].playbook, "tool": backup.tool, "backup": backup.name,
            "repo": backup.repo, "target_time": action.target_time, "allow_collapsed": action.allow_collapsed,
            "hosts": list(action.hosts), "vars": thaw(action.vars),
            # A drill reads production backups and never writes them: a restored database must not
            # archive its new timeline into the production repository.
            "write_back": mode != "drill"})]
    values = thaw(action.vars)
    request = RestoreRequest(component=step.name, backup=backup, target_time=action.target_time, values=values,
                             namespace=str(need(values, "namespace", step.name,
                                                "the namespace the restored data lives in")), mode=mode)
    objects = [_awaited(obj, step.component.estimate_s)
               for obj in _restore_objects(request, namespaces_created,
                                           spec.ancestors(step.name) if step.name in spec.components else set())]
    needs = restore_needs([obj.manifest for obj in objects])
    precheck = [Child(kind="restore-precheck", name=f"{step.name}-precheck",
                      inputs={"step": step.name, "precheck": needs,
                              "timeout_s": max(600, 2 * step.component.estimate_s)})] if any(needs.values()) else []
    children = [Child(kind="kube-object", name=f"{step.name}-{obj.kind.lower()}", inputs={"manifest": obj.manifest},
                      protect=prod and obj.data_bearing, retain_on_delete=obj.data_bearing, objects=(obj,))
                for obj in objects]
    # After the namespace (the credentials live in it), before every object that reads them.
    namespaces = [c for c in children if c.inputs["manifest"].get("kind") == "Namespace"]
    return namespaces + precheck + [c for c in children if c not in namespaces]


def restore_needs(manifests: list[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """What must exist before these restore objects are created, read from the objects themselves:
    the credential Secrets they name (with the keys they read), and the backups they restore from —
    Longhorn's webhook rejects a `fromBackup` volume until the backup target has synced the backup, and
    a Velero Restore created before its backups synced fails validation and is never retried."""
    secrets: dict[tuple[str, str], set[str]] = {}
    backups: list[dict[str, Any]] = []
    for manifest in manifests:
        namespace = str(manifest.get("metadata", {}).get("namespace", ""))
        for name, keys in secrets_read(manifest):
            secrets.setdefault((namespace, name), set()).update(keys)
        backup = backup_waited_for(manifest)
        if backup is not None:
            backups.append(backup)
    return {"secrets": [{"namespace": ns, "name": name, "keys": sorted(keys)}
                        for (ns, name), keys in sorted(secrets.items())],
            "backups": backups}


def _gitops_object(step: Step, spec: GraphSpec, read_text: ReadText | None) -> dict[str, Any]:
    """The GitOps object a gate holds, from its manifest file, pointed at the drill path in drill mode."""
    owner = step.component.reconciled_by
    assert owner is not None
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


def _gitops_release(step: Step, spec: GraphSpec, read_text: ReadText | None) -> Child:
    obj = _gitops_object(step, spec, read_text)
    return Child(kind="gitops-release", name=f"{step.name}-release", inputs={
        "step": step.name, "gitops": "release", "manifest": obj, "restores": [],
        "controller": step.component.reconciled_by.controller if step.component.reconciled_by else "",
        "restore_timeout_s": 3600, "ready_timeout_s": max(600, 2 * step.component.estimate_s)},
        objects=(KubeObject(manifest=obj),))


def _with_gitops_holds(components: list[ComponentResources], spec: GraphSpec) -> list[ComponentResources]:
    """Each gate's release waits for the restore objects of the steps it depends on; its hold is a
    child of the controller component, created as soon as the controller is installed."""
    by_name = {c.name: c for c in components}
    holds: dict[str, list[Child]] = {}
    out = []
    for component in components:
        children = []
        for child in component.children:
            if child.kind == "gitops-release":
                restores = [obj.manifest for dep in component.depends_on if dep in by_name
                            for c in by_name[dep].children for obj in c.objects
                            if restore_done(obj.manifest) is not None]
                child = Child(kind=child.kind, name=child.name, inputs={**child.inputs, "restores": restores},
                              objects=child.objects)
                holds.setdefault(str(child.inputs["controller"]), []).append(Child(
                    kind="gitops-hold", name=f"{component.name}-hold",
                    inputs={"step": component.name, "gitops": "hold", "manifest": child.inputs["manifest"]}))
            children.append(child)
        out.append(replace(component, children=tuple(children)))
    return [replace(c, children=(*c.children, *holds.get(c.name, ()))) for c in out]


def _namespace(name: str, created: dict[str, set[str]], component: str, ancestors: set[str]) -> list[KubeObject]:
    """The restore's namespace, unless a component it depends on creates it. Two restores that do not
    depend on each other both create it (the same object, applied twice): `pulumi up` may run them side
    by side, and a restore object must never be created before its namespace."""
    makers = created.setdefault(name, set())
    if makers & ancestors:
        return []
    makers.add(component)
    return [KubeObject(manifest={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                       data_bearing=True)]


def _restore_objects(request: RestoreRequest, namespaces_created: dict[str, set[str]],
                     ancestors: set[str]) -> list[KubeObject]:
    return [*_namespace(request.namespace, namespaces_created, request.component, ancestors),
            *TOOLS[request.backup.tool].objects(request)]


def _awaited(obj: KubeObject, estimate_s: int) -> KubeObject:
    """The object with the annotations that make `pulumi up` wait for it, for up to twice the estimate."""
    condition = restore_done(obj.manifest)
    if condition is None:
        return obj
    manifest = copy.deepcopy(dict(obj.manifest))
    annotations = manifest.setdefault("metadata", {}).setdefault("annotations", {})
    annotations["pulumi.com/waitFor"] = condition
    annotations["pulumi.com/timeoutSeconds"] = str(max(600, 2 * estimate_s))
    return KubeObject(manifest=manifest, data_bearing=obj.data_bearing, restore_sources=obj.restore_sources)


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
