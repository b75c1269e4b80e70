"""Reads a recovery graph's YAML into `dr.core.spec`'s objects, checking the shape of every field: types,
unknown fields (with a suggestion for near-misses), durations, cron schedules, versions, host addresses
and paths. Every problem is a `Diagnostic` with file and line; all of them are collected and raised
together as a `GraphError`. Pure.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from dr.core.durations import parse_duration
from dr.core.kube_names import is_label, namespace_problem, object_name_problem, release_name_problem
from dr.core.restore_tools import BACKUP_TOOLS, repository_problem
from dr.core.spec import (
    ACTIONS,
    BACKUP_FIELDS,
    COMMAND_FIELDS,
    COMPONENT_FIELDS,
    DRILL_FIELDS,
    DRILL_RECONCILED_BY_FIELDS,
    EXTERNAL_FIELDS,
    GITOPS_KINDS,
    HELM_FIELDS,
    HOST_FIELDS,
    LAYERS,
    NO_DRILL_OVERRIDES,
    RECONCILED_BY_FIELDS,
    RESTORE_FIELDS,
    RETENTION_KEYS,
    TALOS_FIELDS,
    TOP_FIELDS,
    VERIFY_FIELDS,
    VERIFY_KINDS,
    Action,
    Backup,
    CommandAction,
    Component,
    DrillOverrides,
    ExternalAction,
    GraphSpec,
    HelmAction,
    Host,
    ManifestsAction,
    PlaybookAction,
    ReconciledBy,
    RestoreAction,
    Retention,
    TalosAction,
    VerifyCheck,
    did_you_mean,
    freeze,
)
from dr.core.yaml_source import LocatedDocument, PathKey
from dr.errors import Diagnostic, GraphError

# Every pattern here is used with `fullmatch`: `$` with `match` also accepts the value and a newline after
# it, and `[0-9]`, not `\d`, which matches any Unicode digit.
_CRON_ITEM = r"(\*|\?|[0-9]+(-[0-9]+)?|[A-Za-z]{3}(-[A-Za-z]{3})?)(/[0-9]+)?"
_CRON_FIELD = re.compile(rf"{_CRON_ITEM}(,{_CRON_ITEM})*")
_KUBERNETES_MINOR = re.compile(r"1\.[0-9]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # what a shell takes before `=`
_SECRET_NAME = re.compile(r"[A-Za-z0-9_-]+")  # passed as DR_SECRET_<NAME>, '-' as '_'
_CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})


class SpecReader:
    """Reads the located document field by field, collecting every problem it finds."""

    def __init__(self, document: LocatedDocument) -> None:
        self.doc = document
        self.problems: list[Diagnostic] = []

    # -- reporting -----------------------------------------------------------------------------
    def error(self, where: PathKey, message: str, *, at_key: bool = False) -> None:
        line = self.doc.key_line_of(where) if at_key else self.doc.line_of(where)
        self.problems.append(Diagnostic(self.doc.path, line, message))

    def fields(self, mapping: Mapping[Any, Any], where: PathKey, allowed: tuple[str, ...], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed)
                if not hint:
                    hint = f"; known fields: {', '.join(allowed)}"
                self.error((*where, key), f"unknown field {key!r} in {what}{hint}", at_key=True)

    # -- typed getters -------------------------------------------------------------------------
    def mapping(self, value: Any, where: PathKey, what: str) -> Mapping[Any, Any] | None:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(where, f"{what} must be a mapping of name: value, not {_kind(value)}")
            return None
        return value

    def string(self, value: Any, where: PathKey, what: str, *, required: bool = False) -> str | None:
        if value is None:
            if required:
                self.error(where, f"{what} is required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.error(where, f"{what} must be text, not {_kind(value)}")
            return None
        if not isinstance(value, str):
            self.error(where, f"{what} must be text; quote it: \"{value}\"")
            return None
        if required and not value.strip():
            self.error(where, f"{what} must not be empty")
            return None
        return value

    def version(self, value: Any, where: PathKey, what: str, *, required: bool = False) -> str | None:
        if isinstance(value, float | int) and not isinstance(value, bool):
            self.error(where, f"{what} must be a quoted string: YAML reads it as the number {value!r} "
                              "(1.30 would become 1.3); put the version in quotes, like \"1.30\"")
            return None
        return self.string(value, where, what, required=required)

    def boolean(self, value: Any, where: PathKey, what: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.error(where, f"{what} must be true or false, not {value!r}")
            return False
        return value

    def count(self, value: Any, where: PathKey, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.error(where, f"{what} must be a whole number of 0 or more, not {value!r}")
            return 0
        return value

    def duration(self, value: Any, where: PathKey, what: str) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool):
            self.error(where, f"{what} needs a unit: write {value}s, {value}m or {value}h")
            return None
        text = self.string(value, where, what)
        if text is None:
            return None
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.error(where, f"{what}: {exc}")
            return None

    def names(self, value: Any, where: PathKey, what: str) -> tuple[str, ...]:
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self.error(where, f"{what} must be a list of names, like [os, etcd], not {_kind(value)}")
            return ()
        out: list[str] = []
        for i, item in enumerate(items):
            at = (*where, i) if isinstance(value, list) else where
            if not isinstance(item, str):
                self.error(at, f"{what} must list names, not {_kind(item)} ({item!r})")
            elif item in out:
                self.error(at, f"{what} lists {item!r} twice")
            else:
                out.append(item)
        return tuple(out)

    def name(self, name: Any, where: PathKey, what: str) -> bool:
        if not is_label(name):
            self.error(where, f"{what} name {name!r} must be lowercase letters, digits and '-', "
                              "start and end with a letter or digit, at most 63 characters "
                              "(it becomes a Kubernetes and Pulumi name)", at_key=True)
            return False
        return True

    # -- sections ------------------------------------------------------------------------------
    def read(self) -> GraphSpec:
        root = self.doc.data
        if not isinstance(root, Mapping):
            raise GraphError([Diagnostic(self.doc.path, 1,
                                         f"the top level must be a mapping with 'cluster' and 'components', "
                                         f"not {_kind(root)}")])
        self.fields(root, (), TOP_FIELDS, "the recovery graph")
        crds = self.names(root.get("crds"), ("crds",), "'crds'")
        playbooks = self.string(root.get("playbooks"), ("playbooks",), "'playbooks'") or ""
        cluster = self.string(root.get("cluster"), ("cluster",), "'cluster'", required=True) or ""
        kubernetes = self.version(root.get("kubernetes", "1.30"), ("kubernetes",), "'kubernetes'") or "1.30"
        if not _KUBERNETES_MINOR.fullmatch(kubernetes):
            self.error(("kubernetes",), f"'kubernetes' must be a minor version like \"1.30\", not {kubernetes!r}")
        hosts = self.hosts(root.get("hosts"))
        drill_hosts = self.hosts(root.get("drill_hosts"), section_name="drill_hosts")
        markers = self.markers(root.get("prod_markers"))
        backups = self.backups(root.get("backups"))
        if "components" not in root:
            self.error((), "the recovery graph needs a 'components' mapping")
        components = self.components(root.get("components"))
        rto_s = (self.duration(root["rto"], ("rto",), "'rto'") or 0) if "rto" in root else 0
        if self.problems:
            raise GraphError(self.problems)
        return GraphSpec(path=self.doc.path, cluster=cluster, kubernetes=kubernetes, rto_s=rto_s,
                         hosts=MappingProxyType(hosts), drill_hosts=MappingProxyType(drill_hosts),
                         prod_markers=markers,
                         backups=MappingProxyType(backups), components=MappingProxyType(components),
                         document=self.doc, crds=crds, playbooks=playbooks)

    def hosts(self, value: Any, *, section_name: str = "hosts") -> dict[str, Host]:
        section = self.mapping(value, (section_name,), f"'{section_name}'")
        out: dict[str, Host] = {}
        for name, body in (section or {}).items():
            where: PathKey = (section_name, name)
            if not isinstance(name, str) or not name:
                self.error(where, f"host name {name!r} must be text", at_key=True)
                continue
            if host_address_problem(name):  # it names the host in Ansible's inventory and the runbook
                self.error(where, f"host name {host_address_problem(name)}", at_key=True)
                continue
            spec = self.mapping(body, where, f"host {name!r}")
            if spec is None:
                continue
            self.fields(spec, where, HOST_FIELDS, f"host {name!r}")
            address = self.string(spec.get("address"), (*where, "address"), f"host {name!r}: 'address'",
                                  required=True)
            groups = self.names(spec.get("groups"), (*where, "groups"), f"host {name!r}: 'groups'")
            host_vars = self.mapping(spec.get("vars"), (*where, "vars"), f"host {name!r}: 'vars'")
            if address and host_address_problem(address):
                self.error((*where, "address"), f"host {name!r}: 'address' {host_address_problem(address)}")
            hostname = self.string(spec.get("hostname"), (*where, "hostname"), f"host {name!r}: 'hostname'") or ""
            if hostname and host_address_problem(hostname):
                self.error((*where, "hostname"), f"host {name!r}: 'hostname' {host_address_problem(hostname)}")
            host_key = self.string(spec.get("host_key"), (*where, "host_key"), f"host {name!r}: 'host_key'") or ""
            if host_key and len(host_key.split()) < 2:
                self.error((*where, "host_key"), f"host {name!r}: 'host_key' must be a public key line like "
                           "'ssh-ed25519 AAAA...' (from known_hosts or ssh-keyscan)")
            out[name] = Host(name=name, address=address or "", groups=groups, vars=freeze(host_vars or {}),
                             hostname=hostname, host_key=" ".join(host_key.split()[:2]))
        return out

    def markers(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(("prod_markers",), f"'prod_markers' must be a list of strings, not {_kind(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            text = self.string(item, ("prod_markers", i), "a prod_markers entry", required=True)
            if text:
                out.append(text)
        return tuple(out)

    def backups(self, value: Any) -> dict[str, Backup]:
        section = self.mapping(value, ("backups",), "'backups'")
        out: dict[str, Backup] = {}
        for name, body in (section or {}).items():
            where: PathKey = ("backups", name)
            if not self.name(name, where, "backup"):
                continue
            spec = self.mapping(body, where, f"backup {name!r}")
            if spec is None:
                continue
            what = f"backup {name!r}"
            self.fields(spec, where, BACKUP_FIELDS, what)
            tool = self.string(spec.get("tool"), (*where, "tool"), f"{what}: 'tool'", required=True)
            if tool is not None and tool not in BACKUP_TOOLS:
                self.error((*where, "tool"), f"{what}: unknown tool {tool!r}{did_you_mean(tool, BACKUP_TOOLS)}; "
                                             f"one of {', '.join(BACKUP_TOOLS)}")
            repo = self.string(spec.get("repo"), (*where, "repo"), f"{what}: 'repo'", required=True)
            problem = (f"{repo!r} holds a control character" if repo and has_control_character(repo) else
                       repository_problem(tool, repo) if tool and repo else None)
            if problem:
                self.error((*where, "repo"), f"{what}: 'repo' {problem}")
            schedule = self.schedule(spec.get("schedule"), (*where, "schedule"), what)
            retention = self.retention(spec.get("retention"), (*where, "retention"), what)
            rpo = spec.get("rpo")
            if rpo is None:
                self.error(where, f"{what}: 'rpo' is required (how old the newest good backup may be, like 1h)")
            rpo_s = self.duration(rpo, (*where, "rpo"), f"{what}: 'rpo'") if rpo is not None else None
            protects = self.names(spec.get("protects"), (*where, "protects"), f"{what}: 'protects'")
            source = self.names(spec.get("source"), (*where, "source"), f"{what}: 'source'")
            out[name] = Backup(name=name, tool=tool or "", repo=repo or "", schedule=schedule or "",
                               retention=retention, rpo_s=rpo_s or 0, protects=protects, source=source)
        return out

    def schedule(self, value: Any, where: PathKey, what: str) -> str | None:
        text = self.string(value, where, f"{what}: 'schedule'", required=True)
        if text is None:
            return None
        if text in _CRON_MACROS:
            return text
        fields = [f for f in text.split(" ") if f]  # spaces only: a newline or a tab is no separator
        if text != text.strip() or len(fields) not in (5, 6) or not all(_CRON_FIELD.fullmatch(f) for f in fields):
            self.error(where, f"{what}: 'schedule' must be a cron expression with five fields "
                              f"(minute hour day month weekday; six with seconds first), like \"0 3 * * *\", "
                              f"not {text!r}")
            return None
        return text

    def retention(self, value: Any, where: PathKey, what: str) -> Retention:
        if value is None:
            self.error(where, f"{what}: 'retention' is required, like {{hourly: 24, daily: 7, weekly: 4, monthly: 6}}")
            return Retention()
        spec = self.mapping(value, where, f"{what}: 'retention'")
        if spec is None:
            return Retention()
        self.fields(spec, where, (*RETENTION_KEYS, "within"), f"{what}: 'retention'")
        counts = {k: self.count(spec[k], (*where, k), f"{what}: retention '{k}'") for k in RETENTION_KEYS
                  if k in spec}
        within_s = 0
        if "within" in spec:
            within_s = self.duration(spec["within"], (*where, "within"), f"{what}: retention 'within'") or 0
        return Retention(**counts, within_s=within_s)

    def components(self, value: Any) -> dict[str, Component]:
        section = self.mapping(value, ("components",), "'components'")
        out: dict[str, Component] = {}
        if not section and (value is None or section is not None):
            self.error(("components",), "'components' is empty; declare at least one component")
        for name, body in (section or {}).items():
            where: PathKey = ("components", name)
            if not self.name(name, where, "component"):
                continue
            spec = self.mapping(body, where, f"component {name!r}")
            if spec is None:
                continue
            component = self.component(name, spec, where)
            if component is not None:
                out[name] = component
        return out

    def component(self, name: str, spec: Mapping[Any, Any], where: PathKey) -> Component | None:
        what = f"component {name!r}"
        self.fields(spec, where, COMPONENT_FIELDS, what)
        layer = self.string(spec.get("layer"), (*where, "layer"), f"{what}: 'layer'", required=True)
        if layer is not None and layer not in LAYERS:
            self.error((*where, "layer"), f"{what}: unknown layer {layer!r}{did_you_mean(layer, LAYERS)}; "
                                          f"one of {', '.join(LAYERS)}")
            layer = None
        depends_on = self.names(spec.get("depends_on"), (*where, "depends_on"), f"{what}: 'depends_on'")
        action = self.action(name, spec, where)
        estimate_s = 0
        if "estimate" in spec:
            estimate_s = self.duration(spec["estimate"], (*where, "estimate"), f"{what}: 'estimate'") or 0
        timeout_s = 0
        if "timeout" in spec:
            timeout_s = self.duration(spec["timeout"], (*where, "timeout"), f"{what}: 'timeout'") or 0
            if timeout_s <= 0:
                self.error((*where, "timeout"), f"{what}: 'timeout' must be longer than 0s")
        prod_only = self.boolean(spec.get("prod_only"), (*where, "prod_only"), f"{what}: 'prod_only'")
        drill_only = self.boolean(spec.get("drill_only"), (*where, "drill_only"), f"{what}: 'drill_only'")
        if prod_only and drill_only:
            self.error(where, f"{what} is both prod_only and drill_only; it would never run", at_key=True)
        drill = self.drill(spec.get("drill"), (*where, "drill"), what)
        if drill.values and action is not None and action.kind in ("manifests", "command", "talos", "external"):
            self.error((*where, "drill"), f"{what}: drill 'values' have nothing to merge into for a {action.kind} "
                                          "action; add a drill_only component with the drill version instead")
        if drill.values and action is None:
            self.error((*where, "drill"), f"{what}: drill 'values' need a helm, playbook or restore action")
        description = self.string(spec.get("description"), (*where, "description"), f"{what}: 'description'")
        reconciled_by = self.reconciled_by(spec.get("reconciled_by"), (*where, "reconciled_by"), what)
        if reconciled_by is not None and action is not None:
            self.error((*where, "reconciled_by"), f"{what} is reconciled_by {reconciled_by.ref} and also has a "
                       f"{action.kind} action: GitOps installs it, so dr must not install it too; drop the action "
                       "(or reconciled_by)", at_key=True)
        if reconciled_by is not None and reconciled_by.controller not in depends_on:
            depends_on = (*depends_on, reconciled_by.controller)  # its reconciler comes back first
        serves = self.names(spec.get("serves"), (*where, "serves"), f"{what}: 'serves'")
        return Component(
            name=name, layer=layer or "app", depends_on=depends_on, action=action, estimate_s=estimate_s,
            timeout_s=timeout_s,
            stateful=self.boolean(spec.get("stateful"), (*where, "stateful"), f"{what}: 'stateful'"),
            prod_only=prod_only, drill_only=drill_only, drill=drill,
            verify=self.verify(spec.get("verify"), (*where, "verify"), what),
            description=description or "", reconciled_by=reconciled_by, serves=serves,
        )

    def reconciled_by(self, value: Any, where: PathKey, what: str) -> ReconciledBy | None:
        if value is None:
            return None
        spec = self.mapping(value, where, f"{what}: 'reconciled_by'")
        if spec is None:
            return None
        label = f"{what}: reconciled_by"
        self.fields(spec, where, RECONCILED_BY_FIELDS, label)
        texts = {key: self.string(spec.get(key), (*where, key), f"{label} '{key}'",
                                  required=key in ("kind", "name", "controller")) for key in RECONCILED_BY_FIELDS}
        kind = texts["kind"]
        if kind is not None and kind not in GITOPS_KINDS:
            self.error((*where, "kind"), f"{label} 'kind' must be one of {', '.join(GITOPS_KINDS)}, not {kind!r}"
                                         f"{did_you_mean(kind, GITOPS_KINDS)}")
            return None
        for key, problem_of in (("name", object_name_problem), ("namespace", namespace_problem)):
            text = texts[key]
            problem = problem_of(text) if text is not None else None
            if problem:
                self.error((*where, key), f"{label} '{key}' {problem}")
                texts[key] = None
        if kind is None or texts["name"] is None or texts["controller"] is None:
            return None
        namespace = texts["namespace"] or ("argocd" if GITOPS_KINDS[kind] == "argo" else "flux-system")
        return ReconciledBy(kind=kind, name=texts["name"], namespace=namespace, controller=texts["controller"],
                            source=texts["source"] or "", path=texts["path"] or "", manifest=texts["manifest"] or "")

    def action(self, name: str, spec: Mapping[Any, Any], where: PathKey) -> Action | None:
        what = f"component {name!r}"
        present = [a for a in ACTIONS if a in spec]
        if len(present) > 1:
            self.error((*where, present[1]), f"{what} has {len(present)} actions ({', '.join(present)}); "
                                             "one action per component: split it into components that "
                                             "depend on each other", at_key=True)
            return None
        hosts = self.names(spec.get("hosts", "all"), (*where, "hosts"), f"{what}: 'hosts'")
        raw_vars = self.mapping(spec.get("vars"), (*where, "vars"), f"{what}: 'vars'") or {}
        if not present:
            for key in ("hosts", "vars"):
                if key in spec:
                    self.error((*where, key), f"{what}: {key!r} only applies to playbook and restore actions",
                               at_key=True)
            return None
        kind = present[0]
        value = spec[kind]
        at: PathKey = (*where, kind)
        if kind in ("helm", "manifests", "command", "talos", "external"):
            for key in ("hosts", "vars"):
                if key in spec:
                    self.error((*where, key), f"{what}: {key!r} only applies to playbook and restore actions; "
                                              "a helm chart takes 'values'", at_key=True)
        if kind == "playbook":
            playbook = self.string(value, at, f"{what}: 'playbook'", required=True)
            return None if playbook is None else PlaybookAction(playbook=playbook, hosts=hosts or ("all",),
                                                                vars=freeze(raw_vars))
        if kind == "restore":
            return self.restore(name, value, at, hosts=hosts, raw_vars=raw_vars)
        readers: dict[str, Callable[[str, Any, PathKey], Action | None]] = {
            "helm": self.helm, "command": self.command, "talos": self.talos, "external": self.external,
            "manifests": self.manifests}
        return readers[kind](name, value, at)

    def manifests(self, name: str, value: Any, at: PathKey) -> ManifestsAction | None:
        what = f"component {name!r}"
        paths = self.names(value, at, f"{what}: 'manifests'")
        if not paths:
            self.error(at, f"{what}: 'manifests' must name at least one YAML file")
            return None
        return ManifestsAction(paths=paths)

    def command(self, name: str, value: Any, at: PathKey) -> CommandAction | None:
        what = f"component {name!r}: command"
        spec = self.mapping({"run": value} if isinstance(value, str | list) else value, at, what)
        if spec is None:
            return None
        self.fields(spec, at, COMMAND_FIELDS, what)
        run = spec.get("run")
        argv: tuple[str, ...] = ()
        if isinstance(run, str) and run.strip():
            argv = ("sh", "-c", run)
        elif isinstance(run, list) and run and all(isinstance(a, str) for a in run):
            argv = tuple(run)
        else:
            self.error((*at, "run") if isinstance(value, Mapping) else at,
                       f"{what} 'run' must be a command line (text, run by sh) or a list of arguments")
        cwd = self.string(spec.get("cwd"), (*at, "cwd"), f"{what} 'cwd'") or ""
        secrets = self.names(spec.get("secrets"), (*at, "secrets"), f"{what} 'secrets'")
        for i, secret in enumerate(secrets):
            if not _SECRET_NAME.fullmatch(secret):
                self.error((*at, "secrets", i) if isinstance(spec.get("secrets"), list) else (*at, "secrets"),
                           f"{what} 'secrets': {secret!r} must be letters, digits, '_' and '-' (it is passed as "
                           "the environment variable DR_SECRET_<NAME>)")
        env = self.mapping(spec.get("env"), (*at, "env"), f"{what} 'env'") or {}
        for key, item in env.items():
            if not isinstance(key, str) or not isinstance(item, str):
                self.error((*at, "env"), f"{what} 'env' must map names to text; quote {key!r}'s value")
            elif not _ENV_NAME.fullmatch(key):
                self.error((*at, "env", key), f"{what} 'env': {key!r} is not an environment variable name "
                                              "(letters, digits and '_', not starting with a digit)", at_key=True)
        if not argv:
            return None
        return CommandAction(run=argv, cwd=cwd, secrets=secrets, env=freeze(env))

    def talos(self, name: str, value: Any, at: PathKey) -> TalosAction | None:
        what = f"component {name!r}: talos"
        spec = self.mapping(value, at, what)
        if spec is None:
            return None
        self.fields(spec, at, TALOS_FIELDS, what)
        nodes = self.names(spec.get("nodes"), (*at, "nodes"), f"{what} 'nodes'")
        if not nodes:
            self.error(at, f"{what} needs 'nodes': the control-plane node addresses")
        config = self.string(spec.get("config"), (*at, "config"), f"{what} 'config'", required=True)
        texts = {k: self.string(spec.get(k), (*at, k), f"{what} '{k}'") or ""
                 for k in ("talosconfig", "endpoint", "recover_from")}
        insecure = self.boolean(spec.get("insecure", True), (*at, "insecure"), f"{what} 'insecure'")
        if not nodes or config is None:
            return None
        return TalosAction(nodes=nodes, config=config, insecure=insecure, talosconfig=texts["talosconfig"],
                           endpoint=texts["endpoint"], recover_from=texts["recover_from"])

    def external(self, name: str, value: Any, at: PathKey) -> ExternalAction | None:
        what = f"component {name!r}: external"
        spec = self.mapping({"check": value} if isinstance(value, str) else value, at, what)
        if spec is None:
            return None
        self.fields(spec, at, EXTERNAL_FIELDS, what)
        check = self.string(spec.get("check"), (*at, "check") if isinstance(value, Mapping) else at,
                            f"{what} 'check'", required=True)
        if check is None:
            return None
        if not (check.startswith(("tcp://", "http://", "https://", "/"))):
            self.error(at, f"{what} 'check' must be tcp://host:port, an http(s) URL or an absolute path, "
                           f"not {check!r}")
            return None
        if check.startswith("tcp://") and not re.fullmatch(r"tcp://[^:/\s]+:\d{1,5}", check):
            self.error(at, f"{what} 'check' {check!r} must be tcp://host:port")
            return None
        return ExternalAction(check=check)

    def helm(self, name: str, value: Any, at: PathKey) -> HelmAction | None:
        what = f"component {name!r}: helm"
        spec = self.mapping(value, at, what)
        if spec is None:
            return None
        self.fields(spec, at, HELM_FIELDS, what)
        chart = self.string(spec.get("chart"), (*at, "chart"), f"{what} 'chart'", required=True)
        repo = self.string(spec.get("repo"), (*at, "repo"), f"{what} 'repo'", required=True)
        version = self.version(spec.get("version"), (*at, "version"), f"{what} 'version'", required=True)
        namespace = self.string(spec.get("namespace"), (*at, "namespace"), f"{what} 'namespace'", required=True)
        values = self.mapping(spec.get("values"), (*at, "values"), f"{what} 'values'")
        release = self.string(spec.get("release"), (*at, "release"), f"{what} 'release'")
        if namespace is not None and namespace_problem(namespace):
            self.error((*at, "namespace"), f"{what} 'namespace' {namespace_problem(namespace)}")
            namespace = None
        release_problem = release_name_problem(release if release is not None else name)
        if release_problem:
            self.error((*at, "release") if release is not None else at, f"{what} 'release' {release_problem}"
                       + ("" if release is not None else " (the component's name, the default release name)"))
        if None in (chart, repo, version, namespace) or values is None or release_problem:
            return None
        assert chart is not None and repo is not None and version is not None and namespace is not None
        return HelmAction(chart=chart, repo=repo, version=version, namespace=namespace, values=freeze(values),
                          release=release or name)

    def restore(self, name: str, value: Any, at: PathKey, *, hosts: tuple[str, ...],
                raw_vars: Mapping[Any, Any]) -> RestoreAction | None:
        what = f"component {name!r}: restore"
        spec = self.mapping(value, at, what)
        if spec is None:
            return None
        self.fields(spec, at, RESTORE_FIELDS, what)
        backup = self.string(spec.get("backup"), (*at, "backup"), f"{what} 'backup'", required=True)
        target = self.target_time(spec.get("target_time", "latest"), (*at, "target_time"), what)
        allow_collapsed = self.boolean(spec.get("allow_collapsed"), (*at, "allow_collapsed"),
                                       f"{what} 'allow_collapsed'")
        if backup is None or target is None:
            return None
        return RestoreAction(backup=backup, target_time=target, hosts=hosts or ("all",), vars=freeze(raw_vars),
                             allow_collapsed=allow_collapsed)

    def target_time(self, value: Any, where: PathKey, what: str) -> str | None:
        if isinstance(value, dt.datetime):
            moment = value
        elif isinstance(value, str) and value == "latest":
            return value
        elif isinstance(value, str):
            try:
                moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                self.error(where, f"{what} 'target_time' must be 'latest' or an ISO 8601 time with a UTC "
                                  f"offset like 2026-11-20T03:00:00Z, not {value!r}")
                return None
        else:
            self.error(where, f"{what} 'target_time' must be 'latest' or an ISO 8601 time, not {_kind(value)}")
            return None
        if moment.tzinfo is None:
            self.error(where, f"{what} 'target_time' {value!s} has no UTC offset; a restore target must be "
                              "unambiguous: add Z or +01:00")
            return None
        return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")

    def drill(self, value: Any, where: PathKey, what: str) -> DrillOverrides:
        spec = self.mapping(value, where, f"{what}: 'drill'")
        if not spec:
            return NO_DRILL_OVERRIDES
        self.fields(spec, where, DRILL_FIELDS, f"{what}: 'drill'")
        replace_with = self.string(spec.get("replace_with"), (*where, "replace_with"),
                                   f"{what}: drill 'replace_with'")
        values = self.mapping(spec.get("values"), (*where, "values"), f"{what}: drill 'values'") or {}
        gitops = self.mapping(spec.get("reconciled_by"), (*where, "reconciled_by"),
                              f"{what}: drill 'reconciled_by'") or {}
        self.fields(gitops, (*where, "reconciled_by"), DRILL_RECONCILED_BY_FIELDS,
                    f"{what}: drill 'reconciled_by'")
        overrides: dict[str, Any] = {
            k: self.string(v, (*where, "reconciled_by", k), f"{what}: drill reconciled_by '{k}'") or ""
            for k, v in gitops.items() if k in ("source", "path")}
        if "substitutions" in gitops:
            substitutions = self.mapping(gitops["substitutions"], (*where, "reconciled_by", "substitutions"),
                                         f"{what}: drill reconciled_by 'substitutions'") or {}
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in substitutions.items()):
                self.error((*where, "reconciled_by", "substitutions"),
                           f"{what}: drill reconciled_by 'substitutions' maps variable names to text (quote values)")
            overrides["substitutions"] = {str(k): str(v) for k, v in substitutions.items()}
        return DrillOverrides(replace_with=replace_with, values=freeze(values), reconciled_by=freeze(overrides))

    def verify(self, value: Any, where: PathKey, what: str) -> tuple[VerifyCheck, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(where, f"{what}: 'verify' must be a list of checks, like "
                              "[{http: \"https://host/healthz\", status: 200}]")
            return ()
        checks = []
        for i, item in enumerate(value):
            at = (*where, i)
            if not isinstance(item, Mapping):
                self.error(at, f"{what}: each verify check must be a mapping, not {_kind(item)}")
                continue
            kinds = [k for k in VERIFY_KINDS if k in item]
            if len(kinds) != 1:
                self.error(at, f"{what}: a verify check needs exactly one of {', '.join(VERIFY_KINDS)}")
                continue
            if self.verify_check(kinds[0], item, at, what):
                checks.append(VerifyCheck(kind=kinds[0], spec=freeze(item)))
        return tuple(checks)

    def verify_check(self, kind: str, item: Mapping[Any, Any], at: PathKey, what: str) -> bool:
        """The fields of one check as its kind reads them: text to check, whole numbers to compare with (the
        runbook prints them in its commands, the drills compare with them)."""
        before = len(self.problems)
        label = f"{what}: {kind} check"
        self.fields(item, at, (kind, *VERIFY_FIELDS[kind]), label)
        self.string(item[kind], (*at, kind), f"{label} '{kind}'", required=True)
        if "database" in item:
            self.string(item["database"], (*at, "database"), f"{label} 'database'", required=True)
        for key in ("min", "min_keys", "min_files"):
            if key in item:
                self.count(item[key], (*at, key), f"{label} '{key}'")
        status = item.get("status", 200)
        if kind == "http" and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599):
            self.error((*at, "status"), f"{label} 'status' must be an HTTP status code from 100 to 599, "
                                        f"not {status!r}")
        return len(self.problems) == before


_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")  # '_': /etc/hosts allows it


def host_address_problem(value: str) -> str | None:
    """Why `value` is not an IP address or a DNS host name (RFC 1123), or None. An address reaches
    Ansible's inventory and ssh: nothing else may pass."""
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    if len(name) > 253 or not name or not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        return f"{value!r} is not an IP address or a host name (letters, digits, '-', '_' and '.')"
    return None


def has_control_character(value: str) -> bool:
    """A newline, a tab, an escape or another C0/C1 control character: text that could end a line or a
    command, or move a terminal's cursor."""
    return any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value)


def path_problem(value: str) -> str | None:
    """Why `value` is not an absolute path dr may hand to a host, or None: absolute, no '..' component,
    no control characters (a newline or NUL would split or end it)."""
    if not value.startswith("/"):
        return f"{value!r} must be an absolute path"
    if has_control_character(value):
        return f"{value!r} holds a control character"
    if ".." in value.split("/"):
        return f"{value!r} must not contain '..'"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({value!r})"
    return type(value).__name__
