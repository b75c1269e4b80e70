"""Prod and drill modes: which components exist in each, and what a drill must never touch.

`for_mode` takes a declared `GraphSpec` and returns the spec of one mode: in drill mode,
`prod_only` components are dropped and their dependents re-pointed to `drill.replace_with`, `drill`
values are deep-merged into each action; in prod mode `drill_only` components are dropped.
`find_leaks` scans what a drill would deploy for the graph's `prod_markers`. Both are pure: the only
outside input, the text of manifest files, comes through the `read_text` callable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from dr.core.gitops import drill_follow_problems
from dr.core.leaks import RESTORE_SOURCES, as_data, find_markers
from dr.core.spec import (
    Component,
    GraphSpec,
    HelmAction,
    Host,
    ManifestsAction,
    PlaybookAction,
    RestoreAction,
    deep_merge,
    freeze,
    thaw,
)
from dr.errors import Diagnostic

MODES: tuple[str, ...] = ("prod", "drill")
ReadText = Callable[[Path], str]


def for_mode(spec: GraphSpec, mode: str) -> tuple[GraphSpec, list[Diagnostic]]:
    """The spec as it is deployed in `mode`, and the problems that mode has (rule 8, first half)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    return _for_prod(spec) if mode == "prod" else _for_drill(spec)


def _for_prod(spec: GraphSpec) -> tuple[GraphSpec, list[Diagnostic]]:
    components = spec.components
    kept = {n: c for n, c in components.items() if not c.drill_only}
    problems = [Diagnostic(spec.path, spec.line_of("components", component.name, "depends_on"),
                           f"component {component.name!r} depends on {dep!r}, which is drill_only and does not "
                           f"exist in prod; depend on the production component that {dep!r} replaces instead")
                for component in kept.values() for dep in component.depends_on
                if dep in components and components[dep].drill_only]
    return spec.with_components(kept), problems


def _for_drill(spec: GraphSpec) -> tuple[GraphSpec, list[Diagnostic]]:
    problems: list[Diagnostic] = []
    kept = {name: _with_drill_overrides(c) for name, c in spec.components.items() if not c.prod_only}
    for name, component in list(kept.items()):
        depends_on = _drill_dependencies(spec, name, component, problems)
        if tuple(depends_on) != component.depends_on:
            kept[name] = replace(component, depends_on=tuple(depends_on))
    problems += drill_follow_problems(spec, kept)
    drill_spec = spec.with_components(kept)
    problems += _drill_host_problems(drill_spec)
    return _on_drill_hosts(drill_spec), problems


def _drill_dependencies(spec: GraphSpec, name: str, component: Component, problems: list[Diagnostic]) -> list[str]:
    """A component's dependencies in drill mode: a prod_only one becomes its drill replacement."""
    depends_on: list[str] = []
    line = spec.line_of("components", name, "depends_on")
    for dep in component.depends_on:
        target = spec.components.get(dep)
        if target is None or not target.prod_only:
            depends_on.append(dep)
            continue
        replacement = target.drill.replace_with
        if replacement is None:
            problems.append(Diagnostic(
                spec.path, line,
                f"component {name!r} depends on {dep!r}, which is prod_only and has no "
                f"drill.replace_with; in drill mode {name!r} would lose it. Give {dep!r} a "
                "drill.replace_with (a drill_only component) or mark it not prod_only"))
        elif replacement == name:
            problems.append(Diagnostic(
                spec.path, line,
                f"drill_only component {name!r} depends on {dep!r}, the component it replaces in drill mode"))
        elif replacement not in depends_on:
            depends_on.append(replacement)
    return depends_on


def runs_on_hosts(spec: GraphSpec, component: Component) -> bool:
    """A playbook step or a host-level restore: something Ansible runs on the graph's hosts."""
    action = component.action
    if isinstance(action, PlaybookAction):
        return True
    return isinstance(action, RestoreAction) and action.backup in spec.backups and spec.backups[
        action.backup].host_level


def _host_targets(hosts: Mapping[str, Host]) -> set[str]:
    return {"all", *hosts, *(g for h in hosts.values() for g in h.groups)}


def _drill_host_problems(spec: GraphSpec) -> list[Diagnostic]:
    """A drill never runs on production: it needs its own hosts, and none may be a production host."""
    problems: list[Diagnostic] = []
    if not spec.hosts:
        return problems  # no inventory: host steps run on the machine dr runs on, in prod and drill alike
    drill_targets = _host_targets(spec.drill_hosts)
    for name, component in spec.components.items():
        action = component.action
        if not runs_on_hosts(spec, component) or not isinstance(action, PlaybookAction | RestoreAction):
            continue
        wanted = [t for t in action.hosts if t not in drill_targets]
        if not spec.drill_hosts:
            problems.append(Diagnostic(
                spec.path, spec.line_of("components", name),
                f"component {name!r} runs on hosts ({', '.join(action.hosts)}), and the graph declares "
                "no drill_hosts: in drill mode it would run on the production hosts. Add a drill_hosts: inventory "
                "of test machines with the same groups"))
        elif wanted:
            problems.append(Diagnostic(
                spec.path, spec.line_of("components", name, "hosts"),
                f"component {name!r} runs on {', '.join(wanted)} in drill mode, but no host of drill_hosts is "
                f"or belongs to it; add a drill host in group(s) {', '.join(wanted)}"))
    production = list(spec.hosts.values())
    for drill in spec.drill_hosts.values():
        for prod in production:
            same = _same_machine(drill, prod)
            if same:
                problems.append(Diagnostic(
                    spec.path, spec.line_of("drill_hosts", drill.name),
                    f"drill host {drill.name!r} is the production host {prod.name!r} ({same}); a drill must never "
                    "run on production. Give the drill its own machine"))
    return problems


def _same_machine(drill: Host, prod: Host) -> str:
    """Why two inventory entries are the same machine, or '' when nothing says so."""
    prod_names = {n.lower() for n in (prod.address, prod.hostname) if n}
    for label, value in (("address", drill.address), ("hostname", drill.hostname)):
        if value and value.lower() in prod_names:
            return f"same {label} {value}"
    if drill.host_key and prod.host_key and drill.host_key == prod.host_key:
        return "same SSH host key"
    return ""


def _on_drill_hosts(spec: GraphSpec) -> GraphSpec:
    """The drill-mode spec: drill hosts are the hosts; production addresses and names become markers."""
    production = {**spec.production_hosts, **spec.hosts}
    markers = list(spec.prod_markers)
    for host in production.values():
        for value in (host.address, host.hostname):
            if value and value not in markers:
                markers.append(value)
    return replace(spec, hosts=spec.drill_hosts, production_hosts=production, prod_markers=tuple(markers))


def _with_drill_overrides(component: Component) -> Component:
    owner = component.reconciled_by
    if owner is not None and component.drill.reconciled_by:
        moved = thaw(component.drill.reconciled_by)
        if "substitutions" in moved:
            moved["substitutions"] = freeze({**thaw(owner.substitutions), **moved["substitutions"]})
        component = replace(component, reconciled_by=replace(owner, **moved))
    overrides = component.drill.values
    action = component.action
    if not overrides or action is None:
        return component
    if isinstance(action, HelmAction):
        return replace(component, action=replace(action, values=freeze(deep_merge(action.values, overrides))))
    if isinstance(action, PlaybookAction | RestoreAction):
        return replace(component, action=replace(action, vars=freeze(deep_merge(action.vars, overrides))))
    return component


def _has_path(value: Any, path: tuple[str | int, ...]) -> bool:
    for key in path:
        in_mapping = isinstance(value, Mapping) and key in value
        in_sequence = isinstance(value, tuple | list) and isinstance(key, int) and key < len(value)
        if not (in_mapping or in_sequence):
            return False
        value = value[key]
    return True


def _declared_fields(component: Component) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """(path in the graph file, value) of every field a drill would deploy.

    Every field of the action (a Helm repo, playbook vars, a restore's vars and hosts), the checks and
    the description. A restore's backup name is all it carries of its source: the production
    repository is the read-only source a drill restores from, checked by the rendered-object scan.
    """
    action = as_data(component.action) if component.action is not None else {}
    key = {"helm": "helm", "playbook": None, "manifests": "manifests", "restore": "restore", "command": "command",
           "talos": "talos", "external": "external"}.get(component.action_kind)
    for name, value in action.items():
        if name in ("kind", "backup", "paths"):
            continue
        if key is None or name in ("vars", "hosts"):  # a playbook's fields sit on the component itself
            yield (name,), value
        else:
            yield (key, name), value
    if component.reconciled_by is not None:  # the GitOps source and path a drill would sync
        yield ("reconciled_by",), {"source": component.reconciled_by.source, "path": component.reconciled_by.path,
                                   "substitutions": thaw(component.reconciled_by.substitutions)}
    for i, check in enumerate(component.verify):
        yield ("verify", i), dict(check.spec)
    yield ("description",), component.description


def find_leaks(spec: GraphSpec, read_text: ReadText | None) -> list[Diagnostic]:
    """Every place a drill-mode component carries a production marker (rule 8, second half)."""
    problems: list[Diagnostic] = []
    if not spec.prod_markers:
        return problems
    for name, component in spec.components.items():
        is_restore = isinstance(component.action, RestoreAction)
        for field_path, value in _declared_fields(component):
            exempt = [s[1:] for s in RESTORE_SOURCES if is_restore and s[:1] == field_path]
            for hit in find_markers(value, spec.prod_markers, exempt=exempt):
                full = (*field_path, *hit.path)
                # Point at the drill override when the value came from one (drill.values is relative
                # to a Helm action's values or a playbook's / restore's vars).
                relative = full[2:] if full[:2] == ("helm", "values") else full[1:] if full[0] == "vars" else None
                overridden = relative is not None and bool(hit.path) and _has_path(component.drill.values, relative)
                where = ("drill", "values", *relative) if overridden and relative is not None else full
                line = spec.line_of("components", name, *where)
                shown = ".".join(str(p) for p in full)
                problems.append(Diagnostic(
                    spec.path, line,
                    f"component {name!r} in drill mode: {shown} contains the production marker "
                    f"{hit.marker!r}; a drill must not touch production. {_fix_for(shown)}"))
        if isinstance(component.action, ManifestsAction) and read_text is not None:
            for manifest in component.action.paths:
                problems.extend(_manifest_leaks(spec, name, manifest, read_text))
    return problems


def _fix_for(field: str) -> str:
    if "backupStorageLocation" in field or "velero" in field.lower():
        return ("Velero writes restore logs and results into its backup storage location even when it is "
                "ReadOnly: point the drill at a copy of the backups (a replica bucket) under drill.values")
    return "Override it under drill.values, or mark the component prod_only with a drill.replace_with"


def _manifest_leaks(spec: GraphSpec, name: str, manifest: str, read_text: ReadText) -> list[Diagnostic]:
    path = spec.base_dir / manifest
    try:
        text = read_text(path)
    except OSError:
        return []  # a missing manifest is reported by the graph's reference checks
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        for marker in spec.prod_markers:
            if marker in line:
                problems.append(Diagnostic(
                    str(path), number,
                    f"component {name!r} in drill mode: manifest {manifest} contains the production marker "
                    f"{marker!r}; a drill must not touch production. Put the drill version in a drill_only "
                    "component and mark this one prod_only with drill.replace_with"))
    return problems
