"""The recovery graph as a networkx DiGraph: validation rules, waves, critical path, subgraphs.

Edges point from a dependency to the component that needs it, so a topological order is a valid
recovery order. `RecoveryGraph.build` runs every rule of design.md against a declared `GraphSpec`
for one mode (the mode rules come from `dr.core.modes`) and raises one `GraphError` holding all errors;
warnings travel with the graph. Nothing here touches the disk: manifest text comes through `read_text`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import networkx as nx

from dr.core.gitops import gitops_problems
from dr.core.kube_names import namespace_problem, object_name_problem
from dr.core.modes import ReadText, find_leaks, for_mode
from dr.core.repositories import restic_problem
from dr.core.spec import (
    Backup,
    Component,
    GraphSpec,
    ManifestsAction,
    RestoreAction,
    TalosAction,
    did_you_mean,
)
from dr.core.spec_reader import path_problem
from dr.errors import Diagnostic, GraphError, UnknownComponents


@dataclass(frozen=True)
class RecoveryGraph:
    """A validated, mode-resolved recovery graph.

    The hot paths (order, waves, critical path) walk each component's `depends_on` directly; the
    networkx view, `digraph`, is built on first use for structural queries (ancestors, drawing).
    """

    spec: GraphSpec
    mode: str
    warnings: tuple[Diagnostic, ...] = ()
    order: tuple[str, ...] = field(default=(), repr=False, compare=False)  # a topological order

    @cached_property
    def digraph(self) -> nx.DiGraph:
        """Edges point from a dependency to the component that needs it. Treat it as read-only."""
        return _digraph(self.spec)

    @classmethod
    def build(cls, spec: GraphSpec, *, mode: str = "prod", read_text: ReadText | None = None) -> RecoveryGraph:
        """Validate `spec` for `mode`; raise GraphError with every error found."""
        problems = check_references(spec, read_text) + gitops_problems(spec, read_text)
        if problems:
            raise GraphError(problems)
        resolved, problems = for_mode(spec, mode)
        if problems:
            raise GraphError(problems)
        order = _topological_order(resolved)
        if order is None:
            raise GraphError(_cycles(resolved, _digraph(resolved)))
        problems = _data_rules(resolved)
        if mode == "drill":
            problems += find_leaks(resolved, read_text)
        if problems:
            raise GraphError(problems)
        return cls(spec=resolved, mode=mode, warnings=tuple(_warnings(resolved)), order=order)

    # -- order -------------------------------------------------------------------------------
    @property
    def components(self) -> dict[str, Component]:
        return dict(self.spec.components)

    def topological_order(self) -> list[str]:
        return list(self.order)

    def wave_of(self) -> dict[str, int]:
        """Each component's wave: 0 without dependencies, else 1 + the largest wave among them."""
        wave: dict[str, int] = {}
        components = self.spec.components
        for name in self.order:
            deps = components[name].depends_on
            wave[name] = 1 + max([wave[d] for d in deps]) if deps else 0
        return wave

    def waves(self, wave: dict[str, int] | None = None) -> list[list[str]]:
        """Topological generations: wave i holds what can start once waves 0..i-1 are done."""
        wave = wave if wave is not None else self.wave_of()
        grouped: list[list[str]] = [[] for _ in range(max(wave.values(), default=-1) + 1)]
        for name, index in wave.items():
            grouped[index].append(name)
        return [sorted(group) for group in grouped]

    def critical_path(self) -> tuple[list[str], int]:
        """The longest chain by estimate and its length in seconds (ties go to the first name)."""
        finish: dict[str, int] = {}
        best_pred: dict[str, str | None] = {}
        components = self.spec.components
        for name in self.order:
            chosen: str | None = None
            for pred in components[name].depends_on:
                if chosen is None or finish[pred] > finish[chosen] or (
                        finish[pred] == finish[chosen] and pred < chosen):
                    chosen = pred
            best_pred[name] = chosen
            finish[name] = components[name].estimate_s + (finish[chosen] if chosen else 0)
        if not finish:
            return [], 0
        end = min(finish, key=lambda n: (-finish[n], n))
        path: list[str] = []
        cursor: str | None = end
        while cursor is not None:
            path.append(cursor)
            cursor = best_pred[cursor]
        return path[::-1], finish[end]

    def only(self, names: Iterable[str]) -> RecoveryGraph:
        """The named components and everything they need (their ancestors), nothing else."""
        wanted = list(names)
        unknown = [n for n in wanted if n not in self.spec.components]
        if unknown:
            hints = "; ".join(f"{n!r}{did_you_mean(n, self.spec.components)}" for n in unknown)
            raise UnknownComponents(f"components that are not in the {self.mode} graph: {hints}")
        keep: set[str] = set()
        for name in wanted:
            keep.add(name)
            keep |= nx.ancestors(self.digraph, name)
        sub_spec = self.spec.with_components({n: c for n, c in self.spec.components.items() if n in keep})
        return RecoveryGraph(spec=sub_spec, mode=self.mode,
                             warnings=tuple(w for w in self.warnings if _mentions(w, keep)),
                             order=tuple(n for n in self.topological_order() if n in keep))


def _mentions(warning: Diagnostic, names: set[str]) -> bool:
    return any(f"{n!r}" in warning.message for n in names)


def _topological_order(spec: GraphSpec) -> tuple[str, ...] | None:
    """Kahn's algorithm over depends_on; None when there is a cycle."""
    components = spec.components
    waiting = {name: len(c.depends_on) for name, c in components.items()}
    dependents: dict[str, list[str]] = {name: [] for name in components}
    for name, component in components.items():
        for dep in component.depends_on:
            dependents[dep].append(name)
    ready = deque(name for name, count in waiting.items() if count == 0)
    order: list[str] = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    return tuple(order) if len(order) == len(components) else None


def _digraph(spec: GraphSpec) -> nx.DiGraph:
    digraph = nx.DiGraph()
    digraph.add_nodes_from(spec.components)
    digraph.add_edges_from((dep, c.name) for c in spec.components.values() for dep in c.depends_on)
    return digraph


# What a host-level restore cannot run without, checked when the graph is loaded (not when the drill,
# after building and backing up production, reaches the step).
REQUIRED_RESTORE_VARS: dict[str, tuple[tuple[str, str], ...]] = {
    "restic": (("restore_path", "where the restored files go on the host"),),
    "pgbackrest": (("pg_data", "the PostgreSQL data directory to restore into"),),
}


# Restore vars that name a directory on a host: they reach Ansible tasks and the runbook's commands.
PATH_VARS = ("restore_path", "pg_data", "etcd_data_dir", "snapshot_dir")

# Restore vars that name Kubernetes objects (restores by the backup tool's own objects): they reach the
# objects dr renders and the runbook's kubectl commands, checked as the API server checks them.
KUBE_NAME_VARS: dict[str, Callable[[str], str | None]] = {
    **dict.fromkeys(("namespace", "longhorn_namespace", "velero_namespace"), namespace_problem),
    **dict.fromkeys(("pvc", "repository_secret", "s3_credentials_secret", "storage_class", "snapshot_class",
                     "policy", "restore_name", "backup_name", "backup_volume", "schedule_name"),
                    object_name_problem)}


Error = Callable[[int, str], None]


def check_references(spec: GraphSpec, read_text: ReadText | None = None) -> list[Diagnostic]:
    """Rules 1, 5 and the names a component or backup refers to; mode-independent."""
    problems: list[Diagnostic] = []

    def error(line: int, message: str) -> None:
        problems.append(Diagnostic(spec.path, line, message))

    host_targets = {"all", *spec.hosts, *(g for h in spec.hosts.values() for g in h.groups)}
    for name, component in spec.components.items():
        _check_dependencies(spec, name, component, error)
        if isinstance(component.action, RestoreAction):
            _check_restore(spec, name, component.action, error)
        if isinstance(component.action, TalosAction):
            _check_talos(spec, name, component.action, error)
        _check_host_targets(spec, name, component, host_targets, error)
        if isinstance(component.action, ManifestsAction) and read_text is not None:
            _check_manifests(spec, name, component.action, read_text, error)
        _check_replacement(spec, name, component, error)
    for backup in spec.backups.values():
        for i, protected in enumerate(backup.protects):
            if protected not in spec.components:
                error(spec.line_of("backups", backup.name, "protects", i) or spec.line_of("backups", backup.name,
                                                                                         "protects"),
                      f"backup {backup.name!r} protects unknown component {protected!r}"
                      f"{did_you_mean(protected, spec.components)}")
    return problems


def _check_dependencies(spec: GraphSpec, name: str, component: Component, error: Error) -> None:
    names = spec.components
    for i, dep in enumerate(component.depends_on):
        if dep == name:
            error(spec.line_of("components", name, "depends_on", i),
                  f"component {name!r} depends on itself: cycle {name} -> {name}")
        elif dep not in names and not (component.reconciled_by and dep == component.reconciled_by.controller):
            error(spec.line_of("components", name, "depends_on", i),
                  f"component {name!r} depends on unknown component {dep!r}{did_you_mean(dep, names)}")


def _check_restore(spec: GraphSpec, name: str, action: RestoreAction, error: Error) -> None:
    line = spec.line_of("components", name, "restore")
    backup = spec.backups.get(action.backup)
    if backup is not None:
        for var, why in REQUIRED_RESTORE_VARS.get(backup.tool, ()):
            if var not in action.vars:
                error(line, f"component {name!r} restores {backup.tool} backup {action.backup!r} and needs "
                            f"vars.{var} ({why}); add it under the component's vars")
        if "repository" in action.vars and backup.tool == "restic":
            problem = restic_problem(str(action.vars["repository"]))
            if problem:
                error(line, f"component {name!r}: vars.repository: {problem}")
    for var in PATH_VARS:
        value = action.vars.get(var)
        problem = path_problem(value) if isinstance(value, str) else (
            None if value is None else f"must be a path, not {type(value).__name__}")
        if problem:
            error(line, f"component {name!r}: vars.{var} {problem}")
    if backup is not None and not backup.host_level:
        _check_kube_name_vars(spec, name, error)
    if backup is None:
        hint = did_you_mean(action.backup, spec.backups) or (
            f"; declared backups: {', '.join(sorted(spec.backups)) or 'none'}")
        error(spec.line_of("components", name, "restore", "backup"),
              f"component {name!r} restores unknown backup {action.backup!r}{hint}")


def _check_kube_name_vars(spec: GraphSpec, name: str, error: Error) -> None:
    """The restore vars that name Kubernetes objects, as written and as a drill merges them."""
    component = spec.components[name]
    assert isinstance(component.action, RestoreAction)
    for where, variables in ((("vars",), component.action.vars), (("drill", "values"), component.drill.values)):
        for var, problem_of in KUBE_NAME_VARS.items():
            if var not in variables:
                continue
            value = variables[var]
            problem = problem_of(value) if isinstance(value, str) else f"must be a name, not {type(value).__name__}"
            if problem:
                error(spec.line_of("components", name, *where, var) or spec.line_of("components", name, "restore"),
                      f"component {name!r}: {'.'.join(where)}.{var} {problem}")


def _check_talos(spec: GraphSpec, name: str, action: TalosAction, error: Error) -> None:
    if not action.recover_from:
        return
    source = spec.backups.get(action.recover_from)
    if source is None or source.tool != "etcd-snapshot":
        error(spec.line_of("components", name, "talos", "recover_from"),
              f"component {name!r}: talos recover_from {action.recover_from!r} must name an etcd-snapshot "
              f"backup{did_you_mean(action.recover_from, spec.backups)}")


def _check_host_targets(spec: GraphSpec, name: str, component: Component, host_targets: set[str],
                        error: Error) -> None:
    action = component.action
    if not spec.hosts or action is None or action.kind not in ("playbook", "restore"):
        return
    for i, target in enumerate(action.hosts):
        if target not in host_targets:
            error(spec.line_of("components", name, "hosts", i),
                  f"component {name!r} runs on {target!r}, which is neither a host nor a group in "
                  f"'hosts'{did_you_mean(target, sorted(host_targets))}")


def _check_manifests(spec: GraphSpec, name: str, action: ManifestsAction, read_text: ReadText,
                     error: Error) -> None:
    for i, manifest in enumerate(action.paths):
        try:
            read_text(spec.base_dir / manifest)
        except OSError:
            error(spec.line_of("components", name, "manifests", i),
                  f"component {name!r}: manifest file {manifest!r} cannot be read "
                  f"(looked for {Path(spec.base_dir, manifest)}); paths are relative to the graph file")


def _check_replacement(spec: GraphSpec, name: str, component: Component, error: Error) -> None:
    replacement, names = component.drill.replace_with, spec.components
    if replacement is None:
        return
    line = spec.line_of("components", name, "drill", "replace_with")
    if not component.prod_only:
        error(line, f"component {name!r} has drill.replace_with but is not prod_only; "
                    "add prod_only: true or remove replace_with")
    if replacement not in names:
        error(line, f"component {name!r}: drill.replace_with names unknown component "
                    f"{replacement!r}{did_you_mean(replacement, names)}")
    elif not names[replacement].drill_only:
        error(line, f"component {name!r}: drill.replace_with {replacement!r} must be a drill_only "
                    "component, or it would also run in prod")


def _cycles(spec: GraphSpec, digraph: nx.DiGraph) -> list[Diagnostic]:
    """Rule 2: every cycle, printed as a -> b -> c -> a starting at its first name."""
    problems = []
    for scc in nx.strongly_connected_components(digraph):
        if len(scc) < 2:
            continue
        edges = nx.find_cycle(digraph.subgraph(scc))
        cycle = [u for u, _ in edges]
        start = cycle.index(min(cycle))
        cycle = cycle[start:] + cycle[:start]
        shown = " -> ".join([*cycle, cycle[0]])
        first = cycle[0]
        problems.append(Diagnostic(spec.path, spec.line_of("components", first, "depends_on"),
                                   f"dependency cycle: {shown}; a recovery order needs one of these "
                                   "dependencies removed"))
    return sorted(problems, key=lambda d: d.line)


def unprotected_stateful(spec: GraphSpec) -> list[str]:
    """Rule 7, the one definition (the graph and the audit both use it): stateful components no backup protects."""
    protected = {name for b in spec.backups.values() for name in b.protects}
    return [name for name, c in spec.components.items() if c.stateful and name not in protected]


def _data_rules(spec: GraphSpec) -> list[Diagnostic]:
    """Rules 6 and 7: data is restored before the component that owns it starts."""
    problems: list[Diagnostic] = []
    restores_of: dict[str, list[str]] = {}
    for name, component in spec.components.items():
        if isinstance(component.action, RestoreAction):
            restores_of.setdefault(component.action.backup, []).append(name)
        elif isinstance(component.action, TalosAction) and component.action.recover_from:
            restores_of.setdefault(component.action.recover_from, []).append(name)  # bootstrap --recover-from
    for backup in spec.backups.values():
        for owner in backup.protects:
            if owner in spec.components:
                problems += _restored_before(spec, backup, owner, restores_of.get(backup.name, []))
    for name in unprotected_stateful(spec):
        problems.append(Diagnostic(
            spec.path, spec.line_of("components", name, "stateful"),
            f"component {name!r} is stateful but no backup protects it; add a backup with "
            f"protects: {name}, or drop stateful if it holds no data"))
    return problems


def _restored_before(spec: GraphSpec, backup: Backup, owner: str, restorers: list[str]) -> list[Diagnostic]:
    """Rule 6 for one component a backup protects: it depends on a restore of that backup."""
    if owner in restorers or (restorers and spec.ancestors(owner) & set(restorers)):
        return []
    if restorers:
        fix = f"add {sorted(restorers)[0]!r} to its depends_on"
    else:
        fix = (f"add a component with restore: {{backup: {backup.name}}} (layer data) "
               "and list it in depends_on")
    return [Diagnostic(
        spec.path, spec.line_of("components", owner),
        f"component {owner!r} owns the data of backup {backup.name!r} but does not depend on a restore "
        f"of it; it would start on empty storage and initialise it: {fix}")]


def _warnings(spec: GraphSpec) -> list[Diagnostic]:
    """Rule 9 and estimates: things worth a look that do not stop a rebuild."""
    warnings: list[Diagnostic] = []
    components = spec.components
    for name, earlier in components.items():
        for dep in earlier.depends_on:
            later = components[dep]
            if later.layer_index <= earlier.layer_index:
                continue
            if earlier.reconciled_by is not None and dep == earlier.reconciled_by.controller:
                continue  # GitOps-first: storage and add-ons come after the GitOps controller that installs them
            warnings.append(Diagnostic(
                spec.path, spec.line_of("components", name, "depends_on"),
                f"component {name!r} (layer {earlier.layer}) depends on {dep!r} from the later layer "
                f"{later.layer}; is that intended?", severity="warning"))
    for name, component in components.items():
        if component.action is not None and component.estimate_s == 0:
            warnings.append(Diagnostic(
                spec.path, spec.line_of("components", name),
                f"component {name!r} has no estimate; the predicted RTO counts it as 0s", severity="warning"))
    return sorted(warnings, key=lambda d: d.line)
