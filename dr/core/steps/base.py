"""What every kind of step is made of: the protocol each module of `dr.core.steps` implements.

A step of the plan contributes children (`Child`): the resources `pulumi up` creates for it. Each child
has a kind (`ChildKind`) that says where it runs, what the runbook says for it and why a local drill
cannot run it. A `StepKind` claims the components it builds (usually by the type of their action) and
turns a step into its children. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from dr.core.docmodel import Block
from dr.core.kube_objects import KubeObject
from dr.core.modes import ReadText
from dr.core.plan import Step
from dr.core.spec import Component, GraphSpec


@dataclass(frozen=True)
class Child:
    """One resource under a component: what it is, its inputs, and how it is protected."""

    kind: str  # a ChildKind's name (`dr.core.steps.CHILD_KINDS`)
    name: str
    inputs: Mapping[str, Any]
    protect: bool = False
    retain_on_delete: bool = False
    objects: tuple[KubeObject, ...] = ()


STEP_KIND = "step_kind"  # the key of a host-level step's inputs that says which kind of step runs them


def step_inputs(child: Child) -> dict[str, Any]:
    """What a host-level step runs from: its inputs and, explicitly, its kind (`dr.hosts.host_steps.RUNNERS`)."""
    return {**child.inputs, STEP_KIND: child.kind}


# Where a child runs:
#   hosts   - a host-level step through Ansible on the graph's hosts (`dr.hosts.host_steps.RUNNERS`)
#   local   - a host-level step on the machine running dr (`dr.hosts.host_steps.RUNNERS`)
#   cluster - a host-level step that talks to the rebuilt cluster with kubectl (needs its kubeconfig)
#   helm    - a Helm release through pulumi-kubernetes
#   objects - Kubernetes objects through pulumi-kubernetes
Where = Literal["hosts", "local", "cluster", "helm", "objects"]

RunbookText = Callable[[Step, "Child", GraphSpec], list[Block]]


@dataclass(frozen=True)
class ChildKind:
    name: str
    where: Where
    runbook: RunbookText  # what a person types, from the same inputs the automation runs
    not_run_in_drills: str = ""  # why a local drill (no cluster) does not run it; empty: it does
    # Ordering inside its component: a gate's hold waits for its siblings (the controller's own objects);
    # a precheck comes before every later sibling (the restore objects that read what it checks).
    after_siblings: bool = False
    before_later_siblings: bool = False
    verify: Callable[[Child], str] | None = None  # the command that shows it is done, for the runbook

    @property
    def host_level(self) -> bool:
        """Run by dr's dynamic host-step resource (`dr.hosts.host_steps.run_step`), not by the provider."""
        return self.where in ("hosts", "local", "cluster")


@dataclass
class BuildContext:
    """What building a step's children reads besides the step: the graph, the mode, the manifest files,
    and which component creates which namespace (shared by every restore of the plan)."""

    spec: GraphSpec
    mode: str
    read_text: ReadText | None
    namespaces_created: dict[str, set[str]] = field(default_factory=dict)

    @property
    def prod(self) -> bool:
        return self.mode == "prod"


@dataclass(frozen=True)
class StepKind:
    name: str
    claims: Callable[[Component], bool]  # does this kind build the component?
    children: Callable[[Step, BuildContext], list[Child]]
    child_kinds: tuple[ChildKind, ...]


# -- what the runbook's texts share ----------------------------------------------------------------------

SNAPSHOT = "<SNAPSHOT_ID>"
SNAPSHOT_PATH = "<PATH_IN_SNAPSHOT>"
SNAPSHOT_FILE = "<SNAPSHOT_FILE>"
BACKUP_SET = "<BACKUP_SET>"
CLUSTER_TOKEN = "<NEW_CLUSTER_TOKEN>"


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def yaml_text(value: Any) -> str:
    """YAML a person can copy: block style, no anchors or aliases, keys in the order dr wrote them."""
    return yaml.dump(value, Dumper=_NoAliases, sort_keys=False, default_flow_style=False, width=100)


def relative(path: str, spec: GraphSpec) -> str:
    """A path of the graph as the runbook shows it: relative to the repository holding the graph."""
    base = str(spec.base_dir.parent) + "/"
    return path[len(base):] if path.startswith(base) else path
