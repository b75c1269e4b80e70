"""`dr preview`: run the Pulumi program offline under capturing mocks and show what it would create.

Pulumi does not read stack files when a program runs under mocks, so this module loads
`stacks/Pulumi.<stack>.yaml` itself, sets its config, runs `dr.stack.program.run` against a mock
monitor that records every registration (type, name, parent, dependencies, protect,
retain_on_delete), and pairs that with the Kubernetes objects of the resource plan, which it writes
as YAML and validates. Nothing is contacted: no engine, no cluster, no hosts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

from dr.core.resources import ResourcePlan
from dr.core.steps.base import yaml_text
from dr.errors import DrError
from dr.kube.validate import Validation, validate_objects
from dr.stack_config import load_stack_config

DYNAMIC_TYPE = "pulumi-python:dynamic:Resource"


@dataclass(frozen=True)
class RegisteredResource:
    type: str
    name: str
    parent: str
    dependencies: tuple[str, ...]
    protect: bool
    retain_on_delete: bool
    inputs: Mapping[str, Any] = field(repr=False)
    # URNs: names are not unique (a component and its Helm release share one).
    urn: str = ""
    parent_urn: str = ""
    dependency_urns: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "parent": self.parent,
                "dependencies": list(self.dependencies), "protect": self.protect,
                "retain_on_delete": self.retain_on_delete}


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == DYNAMIC_TYPE:
            state["kubeconfig"] = "apiVersion: v1\nkind: Config  # placeholder: dr preview runs no playbook\n"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class CapturingMonitor(MockMonitor):
    """A mock monitor that keeps the options mocks never see."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registered: list[RegisteredResource] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            inputs = pulumi.runtime.rpc.deserialize_properties(request.object) if request.object else {}
            self.registered.append(RegisteredResource(
                type=request.type, name=request.name, parent=_name_of(request.parent),
                dependencies=tuple(_name_of(d) for d in request.dependencies), protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                inputs={k: v for k, v in inputs.items() if k != "__provider"},
                urn=str(getattr(response, "urn", "")), parent_urn=str(request.parent),
                dependency_urns=tuple(str(d) for d in request.dependencies)))
        return response


@dataclass(frozen=True)
class Preview:
    stack: str
    resources: tuple[RegisteredResource, ...]
    plan: ResourcePlan

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "mode": self.plan.mode, "cluster": self.plan.cluster, "engine": "mock",
                "resources": [r.to_json() for r in self.resources],
                "objects": [{"component": c, "kind": o.kind, "name": o.name, "namespace": o.namespace,
                             "data_bearing": o.data_bearing} for c, o in self.plan.objects()]}


def run_preview(stack: str, *, stacks_dir: Path = Path("stacks")) -> Preview:
    """Run the program for `stack` under capturing mocks; GraphError if the graph or a drill is wrong
    (raised by `load_resources` before the program runs, with every `path:line`)."""
    from dr.stack import program as pulumi_program

    config = load_stack_config(stack, stacks_dir=stacks_dir)
    mocks = _Mocks()
    monitor = CapturingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="dr", stack=stack, preview=False, monitor=monitor)
    # Exactly this stack's config: a value set for an earlier preview in this process must not leak in.
    pulumi.runtime.set_all_config({**config, "dr:offline": "true"})  # offline: the mock contacts no host
    _, plan = pulumi_program.load_resources(graph_path=config.get("dr:graph", "stacks/cluster.yaml"),
                                            mode=config.get("dr:mode", "prod"))
    try:
        pulumi.runtime.test(pulumi_program.run)()  # type: ignore[no-untyped-call]
    except pulumi.RunError as exc:
        raise DrError(f"the Pulumi program failed: {exc}") from None
    return Preview(stack=stack, resources=tuple(dependency_order(monitor.registered)), plan=plan)


def dependency_order(resources: list[RegisteredResource]) -> list[RegisteredResource]:
    """Registration order, adjusted so each resource follows its parent and its dependencies."""
    def key(resource: RegisteredResource) -> str:
        return resource.urn or f"{resource.type}::{resource.name}"

    by_urn = {key(r): r for r in resources}
    placed: set[str] = set()
    ordered: list[RegisteredResource] = []

    def place(resource: RegisteredResource, visiting: frozenset[str]) -> None:
        if key(resource) in placed or key(resource) in visiting:
            return
        for need in (resource.parent_urn, *resource.dependency_urns):
            if need in by_urn:
                place(by_urn[need], visiting | {key(resource)})
        placed.add(key(resource))
        ordered.append(resource)

    for resource in resources:
        place(resource, frozenset())
    return ordered


def write_objects(preview: Preview, out: Path) -> list[Path]:
    """Every Kubernetes object as YAML, under out/<component>/; returns the files written."""
    written = []
    for component, obj in preview.plan.objects():
        directory = out / component
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{obj.kind.lower()}-{obj.name}.yaml"
        header = f"# Generated by `dr preview --stack {preview.stack}`; do not edit.\n"
        path.write_text(header + yaml_text(dict(obj.manifest)), encoding="utf-8")
        written.append(path)
    return written


def validation(preview: Preview, *, crd_dirs: Iterable[Path] = ()) -> Validation:
    """Every rendered object checked against the Kubernetes schema or its CRD: the upstream CRDs `make
    toolchain` fetched, then the user's own (`crds:` in the graph, `dr preview --crds DIR`, a cluster's)."""
    return validate_objects(((f"{component}: {obj.title}", obj.manifest) for component, obj in preview.plan.objects()),
                            kubernetes=preview.plan.kubernetes, crd_dirs=crd_dirs)


MOCK_NOTE = ("mock preview, offline: the program ran under Pulumi's mocks. A real `pulumi preview` needs the "
             "pulumi-kubernetes provider (pulumi-resource-kubernetes), which is not installed; see docs/sandbox.md")


def render_preview(preview: Preview) -> str:
    lines = [f"Stack {preview.stack!r} ({preview.plan.mode} mode): {len(preview.resources)} resources, "
             f"{sum(1 for _ in preview.plan.objects())} Kubernetes objects rendered by dr",
             f"({MOCK_NOTE})", ""]
    width = max((len(r.type) for r in preview.resources), default=10)
    for r in preview.resources:
        flags = " ".join(f for f, on in (("protect", r.protect), ("retain", r.retain_on_delete)) if on)
        deps = f" after {', '.join(r.dependencies)}" if r.dependencies else ""
        parent = f" in {r.parent}" if r.parent else ""
        lines.append(f"  {r.type:<{width}}  {r.name}{parent}{deps}{'  [' + flags + ']' if flags else ''}")
    return "\n".join(lines) + "\n"
