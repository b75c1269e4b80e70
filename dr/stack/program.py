"""The Pulumi program that `pulumi up` runs (through the one-line `__main__.py`).

It reads the stack config, builds the plan for the stack's mode and its resource plan
(`dr.core.resources`, where dependencies, `protect` and `retain_on_delete` are decided and a drill is
checked for production markers before anything is registered), then registers one
`ComponentResource` per component, whose `depends_on` are exactly the graph's edges, with children:

- playbook steps and host-level restores: `dr.stack.host_step.HostStep` (runs Ansible);
- Helm charts: `kubernetes.helm.v3.Release`; manifest files: one resource per object they hold;
- Kubernetes-level restores: the restore objects themselves (CloudNativePG `Cluster`, Velero
  `Restore`, Longhorn `Volume` with its PV and PVC, and their namespaces).

The Kubernetes provider takes its kubeconfig from the control-plane step's output, or from the
`dr:kubeconfig` secret when the cluster is managed elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from dr.core.invocations import OPTIONAL_PLAYBOOK_SECRETS, PLAYBOOK_SECRETS, hosts_inventory, target_hosts
from dr.core.plan import plan_for
from dr.core.resources import Child, ComponentResources, ResourcePlan, resource_plan
from dr.core.spec import GraphSpec
from dr.core.steps import CHILD_KINDS, step_inputs
from dr.errors import GraphError
from dr.graph_file import load_graph_file, read_text
from dr.stack.host_step import HostStep, HostStepProvider
from dr.stack.release_adoption import ReleaseAdoption

COMPONENT_TYPE = "dr:recovery:Component"
RECOVERIES = ("scratch", "etcd-snapshot")
PATCH_FORCE = "pulumi.com/patchForce"
CORE_KINDS = {"Namespace": k8s.core.v1.Namespace, "PersistentVolume": k8s.core.v1.PersistentVolume,
              "PersistentVolumeClaim": k8s.core.v1.PersistentVolumeClaim}


def load_resources(*, graph_path: str, mode: str) -> tuple[GraphSpec, ResourcePlan]:
    """The graph as deployed in `mode` (in drill mode: its hosts are the drill hosts) and its resource
    plan; GraphError with every `path:line` problem."""
    declared = load_graph_file(graph_path)
    plan = plan_for(declared, mode=mode, read_text=read_text)
    spec = plan.graph.spec if plan.graph else declared
    return spec, resource_plan(plan, spec, read_text=read_text)


def ordering_dependencies(resources: ResourcePlan, name: str) -> list[str]:
    """The components `name` must wait for, in a form Pulumi honours.

    Pulumi expands a `depends_on` on a ComponentResource to its children; a milestone has none, so
    depending on it would order nothing. A milestone is replaced by what it depends on, transitively.
    """
    by_name = {c.name: c for c in resources.components}
    out: list[str] = []
    pending = list(by_name[name].depends_on)
    seen: set[str] = set()
    while pending:
        dep = pending.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        out.append(dep)  # the milestone itself stays, for `pulumi stack graph`
        if not by_name[dep].children:
            pending.extend(by_name[dep].depends_on)
    return out


def register(resources: ResourcePlan, *, hosts: Mapping[str, Any], secrets: pulumi.Input[Mapping[str, str]],
             kubeconfig: pulumi.Input[str] | None = None, kube_context: str | None = None,
             step_provider: HostStepProvider | None = None,
             exports: dict[str, Any] | None = None, adopt: bool = False,
             chart_mirror: str | None = None, rebuild: str | None = None,
             wait_for: Callable[[str], Awaitable[None] | None] | None = None,
             on_component: Callable[[str, Sequence[pulumi.Resource]], None] | None = None,
             ) -> dict[str, pulumi.ComponentResource]:
    """Register every component and child; returns the components by name. `exports` receives the
    kubeconfig the Kubernetes provider uses (a secret), so drills check the cluster they built.

    `wait_for(name)` may return an awaitable the component waits for before anything of it is created
    (the sandbox drill: a host-level step its own executor runs); `on_component(name, resources)` receives
    every resource registered under a component.

    `rebuild` (dr:rebuild) is an input of every host-level step: a new value runs each of them again. That
    is how a rebuild from scratch keeps its Pulumi state: the state says the hosts were set up, the hosts
    were wiped."""
    registered: dict[str, pulumi.ComponentResource] = {}
    provider: k8s.Provider | None = None
    # A new kubeconfig (a rebuilt control plane has new certificates) must update the provider, not
    # replace it: a replaced provider replaces every Kubernetes resource behind it.
    identity = f"dr-{resources.cluster}-{resources.mode}"
    cluster_kubeconfig: pulumi.Input[str] | None = kubeconfig
    if kubeconfig is not None:
        provider = k8s.Provider("cluster", kubeconfig=kubeconfig, context=kube_context, cluster_identifier=identity)
        if exports is not None:
            exports["kubeconfig"] = kubeconfig
    for component in resources.components:
        depends_on: list[pulumi.Input[pulumi.Resource]] = [
            registered[d] for d in ordering_dependencies(resources, component.name)]
        waited = wait_for(component.name) if wait_for is not None else None
        if waited is not None:
            # Resolves to None: it orders the component and adds no edge.
            depends_on.append(cast(pulumi.Output[pulumi.Resource], pulumi.Output.from_input(waited)))
        parent = pulumi.ComponentResource(COMPONENT_TYPE, component.name, None,
                                          pulumi.ResourceOptions(depends_on=depends_on))
        outputs: dict[str, Any] = {}
        siblings: list[pulumi.Resource] = []
        precheck: list[pulumi.Resource] = []
        created: list[pulumi.Resource] = []
        for child in component.children:
            # A hold waits for the controller's own children; restore objects wait for their precheck.
            kind = CHILD_KINDS[child.kind]
            after = siblings if kind.after_siblings else precheck
            made = _child(component, child, parent=parent, provider=provider, hosts=hosts, secrets=secrets,
                          step_provider=step_provider, cluster_kubeconfig=cluster_kubeconfig, after=after,
                          chart_mirror=chart_mirror, adopt=adopt, rebuild=rebuild)
            created.extend(made)
            resource = made[-1] if made else parent
            if kind.before_later_siblings:
                precheck = [resource]
            elif not kind.after_siblings:
                siblings.extend(made)
            if component.provides_kubeconfig and isinstance(resource, HostStep) and provider is None:
                provider = k8s.Provider("cluster", kubeconfig=resource.kubeconfig, context=kube_context,
                                        cluster_identifier=identity, opts=pulumi.ResourceOptions(parent=parent))
                outputs["kubeconfig"] = resource.kubeconfig
                cluster_kubeconfig = resource.kubeconfig
                if exports is not None:
                    exports["kubeconfig"] = resource.kubeconfig
        parent.register_outputs(outputs)
        registered[component.name] = parent
        if on_component is not None:
            on_component(component.name, created)
    return registered


def step_secret_names(inputs: Mapping[str, Any]) -> frozenset[str]:
    """The secrets the playbook of a host step reads (`dr.core.invocations.PLAYBOOK_SECRETS`)."""
    credentials = inputs.get("precheck", {}).get("secrets", [])
    playbook = str(inputs.get("playbook", ""))
    return frozenset((*PLAYBOOK_SECRETS.get(playbook, ()), *OPTIONAL_PLAYBOOK_SECRETS.get(playbook, ()))) | frozenset(
        str(name) for name in inputs.get("secrets", [])) | frozenset(
        name for s in credentials for name in (s["name"], f"{s['namespace']}/{s['name']}"))


def step_hosts(hosts: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the inventory a step runs on (by name or group)."""
    names = set(target_hosts(hosts, list(inputs.get("hosts", ["all"])))) if hosts else set()
    return {name: host for name, host in hosts.items() if name in names}


def _child(component: ComponentResources, child: Child, *, parent: pulumi.Resource, provider: k8s.Provider | None,
           hosts: Mapping[str, Any], secrets: pulumi.Input[Mapping[str, str]],
           step_provider: HostStepProvider | None, cluster_kubeconfig: pulumi.Input[str] | None = None,
           after: Sequence[pulumi.Resource] = (), chart_mirror: str | None = None,
           adopt: bool = False, rebuild: str | None = None) -> list[pulumi.Resource]:
    """The resources of one child, the one later siblings wait for last."""
    marker = {"rebuild": rebuild} if rebuild else {}
    opts = pulumi.ResourceOptions(parent=parent, protect=child.protect, retain_on_delete=child.retain_on_delete,
                                  depends_on=list(after))
    where = CHILD_KINDS[child.kind].where
    if where == "cluster":
        # The gate talks to the cluster with kubectl: it needs the kubeconfig (a secret). A hold runs as
        # soon as the controller it belongs to is installed (after its siblings), long before the restores.
        if cluster_kubeconfig is None:
            raise pulumi.RunError(f"component {component.name!r}: a GitOps gate needs the cluster's kubeconfig, "
                                  "but no control-plane step comes before it and dr:kubeconfig is not set")
        # A precheck may create credential Secrets from the stack's secrets: it gets only those.
        wanted = step_secret_names(child.inputs)
        step_secrets = pulumi.Output.from_input(secrets).apply(
            lambda all_secrets: {k: v for k, v in (all_secrets or {}).items() if k in wanted})
        return [HostStep(child.name, step=component.name,
                         inputs={**step_inputs(child), **marker,
                                 "cluster_kubeconfig": pulumi.Output.secret(cluster_kubeconfig)},
                         hosts_inventory={}, secrets=pulumi.Output.secret(step_secrets), provider=step_provider,
                         opts=opts)]
    if where in ("hosts", "local"):
        # Only what this step uses: rotating another step's secret or adding an unrelated host must not
        # rerun it (a completed restore would then refuse, its data being back).
        wanted = step_secret_names(child.inputs)
        step_secrets = pulumi.Output.from_input(secrets).apply(
            lambda all_secrets: {k: v for k, v in (all_secrets or {}).items() if k in wanted})
        return [HostStep(child.name, step=component.name, inputs={**step_inputs(child), **marker},
                         hosts_inventory=step_hosts(hosts, child.inputs),
                         secrets=pulumi.Output.secret(step_secrets), opts=opts, provider=step_provider)]
    if provider is None:
        raise pulumi.RunError(f"component {component.name!r} needs Kubernetes, but no control-plane playbook "
                              "step comes before it and dr:kubeconfig is not set")
    opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(provider=provider))
    inputs = child.inputs
    if where == "helm":
        if cluster_kubeconfig is None:
            raise pulumi.RunError(f"component {component.name!r}: a Helm release needs the cluster's kubeconfig")
        # Created only when the state lacks the release: sets aside a record that came back from an etcd
        # snapshot (dr:recovery etcd-snapshot), or stops when a cluster that should be empty holds one.
        prepared = ReleaseAdoption(f"{child.name}-adopt", release=inputs["release"], namespace=inputs["namespace"],
                                   adopt=adopt, cluster_kubeconfig=cluster_kubeconfig,
                                   opts=pulumi.ResourceOptions(parent=parent, depends_on=list(after)))
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[prepared]))
        return [prepared, k8s.helm.v3.Release(
            child.name, name=inputs["release"], chart=inputs["chart"], version=inputs["version"],
            namespace=inputs["namespace"], create_namespace=True, values=inputs["values"],
            # The chart mirror when the stack names one (dr:chart_mirror): a rebuild must not depend on the
            # chart repositories being reachable.
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=(chart_mirror or "").rstrip("/") or inputs["repo"]),
            opts=opts)]
    if child.kind == "config-group":
        # One resource per object, not a `yaml/v2:ConfigGroup`: that is a remote component, which the engine
        # refuses to construct while the provider's kubeconfig is still unknown (every first preview).
        return [kube_object(object_name(child.name, obj.manifest), obj.manifest, opts, force=adopt)
                for obj in child.objects]
    return [kube_object(child.name, inputs["manifest"], opts, force=adopt)]


def object_name(prefix: str, manifest: Mapping[str, Any]) -> str:
    metadata = manifest.get("metadata", {})
    parts = [prefix, str(manifest.get("kind", "")).lower(), str(metadata.get("namespace", "")),
             str(metadata.get("name", ""))]
    return "-".join(p for p in parts if p)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def kube_object(name: str, manifest: Mapping[str, Any], opts: pulumi.ResourceOptions, *,
                force: bool = False) -> pulumi.Resource:
    """Any Kubernetes object as its own resource: core/v1 kinds through their own classes (their type token
    is `kubernetes:core/v1:Kind`), everything else (apps/v1, CRDs) through CustomResource.

    `force` (dr:recovery etcd-snapshot): the object may have come back with the control plane, set by
    another field manager; the graph's fields win a server-side apply conflict (pulumi.com/patchForce)
    instead of stopping the rebuild. The object is updated in place, never recreated."""
    api_version, kind = str(manifest["apiVersion"]), str(manifest["kind"])
    fields = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    if force:
        metadata = dict(manifest["metadata"])
        metadata["annotations"] = {**(metadata.get("annotations") or {}), PATCH_FORCE: "true"}
        manifest = {**manifest, "metadata": metadata}
    if api_version == "v1":
        resource_class = CORE_KINDS.get(kind) or getattr(k8s.core.v1, kind, None)
        if resource_class is None:
            raise pulumi.RunError(f"{name}: unknown core/v1 kind {kind!r}")
        core: pulumi.Resource = resource_class(name, metadata=manifest["metadata"],
                                               **{_snake(k): v for k, v in fields.items()}, opts=opts)
        return core
    return k8s.apiextensions.CustomResource(name, api_version=api_version, kind=kind, metadata=manifest["metadata"],
                                            opts=opts, **fields)


def run() -> None:
    config = pulumi.Config("dr")
    graph_path = config.get("graph") or "stacks/cluster.yaml"
    mode = config.get("mode") or "prod"
    if mode not in ("prod", "drill"):
        raise pulumi.RunError(f"config dr:mode must be prod or drill, not {mode!r}")
    # etcd-snapshot: the control plane came back from a snapshot with its objects; adopt them (Helm release
    # records set aside, objects taken over by server-side apply) instead of failing. scratch: an empty etcd,
    # everything is created, and a release found in the cluster stops the run.
    recovery = config.get("recovery") or "scratch"
    if recovery not in RECOVERIES:
        raise pulumi.RunError(f"config dr:recovery must be one of {', '.join(RECOVERIES)}, not {recovery!r}")
    try:
        spec, resources = load_resources(graph_path=graph_path, mode=mode)
    except GraphError as exc:
        raise pulumi.RunError(f"the recovery graph is invalid:\n{exc}") from None
    if mode == "drill" and not config.get_bool("offline"):
        from dr.hosts.identity import DrillRefused, check_drill_hosts

        try:
            check_drill_hosts(spec)  # no host step of this drill may reach a production host
        except DrillRefused as exc:
            raise pulumi.RunError(str(exc)) from None
    secrets: pulumi.Input[Mapping[str, str]] = config.get_secret_object("secrets") or {}
    exports: dict[str, Any] = {}
    registered = register(resources, hosts=hosts_inventory(spec), secrets=secrets,
                          kubeconfig=config.get_secret("kubeconfig"),
                          kube_context=pulumi.Config("kubernetes").get("context"), exports=exports,
                          adopt=recovery == "etcd-snapshot", chart_mirror=config.get("chart_mirror"),
                          rebuild=config.get("rebuild"))
    if "kubeconfig" in exports:
        pulumi.export("kubeconfig", pulumi.Output.secret(exports["kubeconfig"]))
    pulumi.export("cluster", resources.cluster)
    pulumi.export("mode", resources.mode)
    pulumi.export("recovery_order", [c.name for c in resources.components])
    pulumi.export("components", len(registered))
