"""The recovery graph as typed, immutable objects (format v1 of design.md).

`GraphSpec.from_yaml` turns YAML text into these frozen dataclasses through the reader
(`dr.core.spec_reader`), which checks the shape of every field. Cross-references between components
and backups are the graph module's job.
Pure: reading files lives in `dr.graph_file` (the edge); the graph, modes and plan modules get
`read_text` passed in.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from dr.core.restore_tools import HOST_LEVEL_TOOLS
from dr.core.yaml_source import LocatedDocument, parse_yaml, paused_gc

LAYERS: tuple[str, ...] = ("os", "etcd", "control-plane", "cni", "storage", "addon", "gitops", "data", "app")
LAYER_INDEX: dict[str, int] = {layer: i for i, layer in enumerate(LAYERS)}
ACTIONS: tuple[str, ...] = ("playbook", "helm", "manifests", "restore", "command", "talos", "external")
VERIFY_KINDS: tuple[str, ...] = ("http", "command", "sql", "etcd", "files")
# The fields each kind of verify check reads besides its own (`dr.drill.checks`, the sandbox, the runbook).
VERIFY_FIELDS: Mapping[str, tuple[str, ...]] = {"http": ("status",), "command": (), "sql": ("database", "min"),
                                                "etcd": ("min_keys",), "files": ("min_files",)}
COMPONENT_FIELDS: tuple[str, ...] = (
    "layer", "depends_on", *ACTIONS, "hosts", "vars", "estimate", "timeout", "stateful", "prod_only", "drill_only",
    "drill", "verify", "description", "reconciled_by", "serves")
# The fields of each part of the graph (the reader and the JSON Schema, dr/core/graph_schema.py, both use them).
TOP_FIELDS: tuple[str, ...] = ("cluster", "kubernetes", "rto", "hosts", "drill_hosts", "prod_markers", "backups",
                                "components", "crds", "playbooks")
HOST_FIELDS: tuple[str, ...] = ("address", "groups", "vars", "hostname", "host_key")
BACKUP_FIELDS: tuple[str, ...] = ("tool", "protects", "repo", "schedule", "retention", "rpo", "source")
COMMAND_FIELDS: tuple[str, ...] = ("run", "cwd", "secrets", "env")
TALOS_FIELDS: tuple[str, ...] = ("nodes", "config", "talosconfig", "endpoint", "recover_from", "insecure")
EXTERNAL_FIELDS: tuple[str, ...] = ("check",)
HELM_FIELDS: tuple[str, ...] = ("chart", "repo", "version", "namespace", "values", "release")
RESTORE_FIELDS: tuple[str, ...] = ("backup", "target_time", "allow_collapsed")
DRILL_FIELDS: tuple[str, ...] = ("replace_with", "values", "reconciled_by")
DRILL_RECONCILED_BY_FIELDS: tuple[str, ...] = ("source", "path", "substitutions")
RETENTION_KEYS: tuple[str, ...] = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
# The GitOps objects that can own a component, and the controller family of each.
GITOPS_KINDS: Mapping[str, str] = MappingProxyType({"Kustomization": "flux", "HelmRelease": "flux",
                                                     "Application": "argo"})
RECONCILED_BY_FIELDS: tuple[str, ...] = ("kind", "name", "namespace", "controller", "source", "path", "manifest")



def freeze(value: Any) -> Any:
    """Deep, read-only copy: mappings become MappingProxyType, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()}) if value else EMPTY
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain dict/list copy of frozen data, for JSON, YAML and deep merges."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Override wins; nested mappings merge key by key; lists and scalars are replaced."""
    merged: dict[str, Any] = thaw(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = thaw(value)
    return merged


def walk_strings(value: Any, path: tuple[Any, ...] = (), *, keys: bool = False
                 ) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, text) of every string in nested data; mapping keys too when `keys`."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if keys and isinstance(key, str):
                yield (*path, key), key
            yield from walk_strings(item, (*path, key), keys=keys)
    elif isinstance(value, tuple | list):
        for i, item in enumerate(value):
            yield from walk_strings(item, (*path, i), keys=keys)
    elif isinstance(value, str):
        yield path, value


EMPTY: Mapping[str, Any] = MappingProxyType({})  # shared: it cannot be mutated


@dataclass(frozen=True, slots=True)
class Retention:
    """GFS retention: how many of each kind of restore point a backup keeps."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within_s: int = 0  # keep every restore point younger than this (restic --keep-within, CNPG "30d")

    @property
    def restore_points(self) -> int:
        """Restore points counted by number; a `within` policy keeps at least the ones inside it."""
        counted = self.last + self.hourly + self.daily + self.weekly + self.monthly + self.yearly
        return counted if not self.within_s else max(counted, 2)


@dataclass(frozen=True, slots=True)
class Backup:
    """Where the data of one component lives, how often it is taken and how fresh it must be."""

    name: str
    tool: str
    repo: str
    schedule: str
    retention: Retention
    rpo_s: int
    protects: tuple[str, ...] = ()  # one backup may protect several components (a Velero schedule)
    source: tuple[str, ...] = ()

    @property
    def host_level(self) -> bool:
        return self.tool in HOST_LEVEL_TOOLS


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    address: str
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    hostname: str = ""   # the machine's own name, compared in drills besides the address
    host_key: str = ""   # its SSH host public key ("ssh-ed25519 AAAA..."), from known_hosts


@dataclass(frozen=True, slots=True)
class PlaybookAction:
    playbook: str
    hosts: tuple[str, ...] = ("all",)
    vars: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    kind: Literal["playbook"] = "playbook"


@dataclass(frozen=True, slots=True)
class HelmAction:
    chart: str
    repo: str
    version: str
    namespace: str
    values: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    release: str = ""
    kind: Literal["helm"] = "helm"


@dataclass(frozen=True, slots=True)
class ManifestsAction:
    paths: tuple[str, ...]  # relative to the graph file's directory
    kind: Literal["manifests"] = "manifests"


@dataclass(frozen=True, slots=True)
class RestoreAction:
    backup: str
    target_time: str = "latest"  # "latest" or an ISO 8601 time with a UTC offset
    hosts: tuple[str, ...] = ("all",)
    vars: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    allow_collapsed: bool = False
    kind: Literal["restore"] = "restore"


@dataclass(frozen=True, slots=True)
class CommandAction:
    """A command run on the machine running dr: helmfile, just, terraform, a secret-store bootstrap."""

    run: tuple[str, ...]                 # argv; text in the graph becomes ("sh", "-c", text)
    cwd: str = ""                        # relative to the graph file's directory
    secrets: tuple[str, ...] = ()        # dr:secrets names, passed as DR_SECRET_<NAME> environment variables
    env: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    kind: Literal["command"] = "command"


@dataclass(frozen=True, slots=True)
class TalosAction:
    """A Talos control plane: `talosctl apply-config` on each node, then `bootstrap` (from an etcd
    snapshot with `recover_from`), then the kubeconfig. Talos has no SSH: this runs talosctl here."""

    nodes: tuple[str, ...]
    config: str                          # the machine configuration file, relative to the graph file
    talosconfig: str = ""                # relative to the graph file; default: talosctl's own
    endpoint: str = ""                   # default: the first node
    recover_from: str = ""               # an etcd-snapshot backup whose newest snapshot bootstraps etcd
    insecure: bool = True                # nodes in maintenance mode (freshly installed) take --insecure
    kind: Literal["talos"] = "talos"


@dataclass(frozen=True, slots=True)
class ExternalAction:
    """Something outside the cluster the rebuild needs (a NAS, an S3 bucket, a DNS provider): checked,
    never created."""

    check: str                           # tcp://host:port, http(s)://..., or an absolute path
    kind: Literal["external"] = "external"


Action: TypeAlias = (PlaybookAction | HelmAction | ManifestsAction | RestoreAction | CommandAction | TalosAction
                     | ExternalAction)


@dataclass(frozen=True, slots=True)
class DrillOverrides:
    """How a component changes in drill mode."""

    replace_with: str | None = None
    values: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    reconciled_by: Mapping[str, Any] = field(default_factory=lambda: EMPTY)  # a drill path, source, substitutions


NO_DRILL_OVERRIDES = DrillOverrides()


@dataclass(frozen=True, slots=True)
class VerifyCheck:
    """One check that proves a component came back (`http`, `command`, `sql`, `etcd`, `files`)."""

    kind: str
    spec: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ReconciledBy:
    """The GitOps object that installs a component: dr never installs it, it holds the object until the
    component's data is restored, then resumes it and waits for Ready."""

    kind: str          # Kustomization, HelmRelease (Flux) or Application (Argo CD)
    name: str
    namespace: str
    controller: str    # the component that installs Flux or Argo CD
    source: str = ""   # the git or chart repository URL the object syncs from
    path: str = ""     # the path inside that repository
    manifest: str = ""  # the object's YAML, relative to the graph file: dr creates it held (the gate)
    substitutions: Mapping[str, str] = field(default_factory=lambda: EMPTY)  # Flux postBuild, drill only

    @property
    def family(self) -> str:
        return GITOPS_KINDS[self.kind]

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    layer: str
    depends_on: tuple[str, ...] = ()
    action: Action | None = None
    estimate_s: int = 0
    timeout_s: int = 0  # its own timeout (`timeout:`); 0: from its estimate (`dr.core.durations.step_timeout_s`)
    stateful: bool = False
    prod_only: bool = False
    drill_only: bool = False
    drill: DrillOverrides = DrillOverrides()
    verify: tuple[VerifyCheck, ...] = ()
    description: str = ""
    reconciled_by: ReconciledBy | None = None
    serves: tuple[str, ...] = ()  # URL prefixes this component serves (a git server, a registry, a chart repo)

    @property
    def action_kind(self) -> str:
        if self.action is not None:
            return self.action.kind
        return "gitops" if self.reconciled_by is not None else "milestone"

    @property
    def layer_index(self) -> int:
        return LAYER_INDEX[self.layer]


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """One cluster's recovery graph, as declared (before any mode is applied)."""

    path: str
    cluster: str
    kubernetes: str
    hosts: Mapping[str, Host]
    prod_markers: tuple[str, ...]
    backups: Mapping[str, Backup]
    components: Mapping[str, Component]
    document: LocatedDocument | None = field(default=None, repr=False, compare=False)
    rto_s: int = 0  # the recovery-time target; 0 when the graph sets none
    # Hosts a drill runs on. In drill mode (`dr.core.modes.for_mode`) they become `hosts`, and the
    # production inventory moves to `production_hosts`, which a drill may never resolve to.
    drill_hosts: Mapping[str, Host] = field(default_factory=lambda: EMPTY)
    production_hosts: Mapping[str, Host] = field(default_factory=lambda: EMPTY)
    crds: tuple[str, ...] = ()  # directories of the user's own CRDs, relative to the graph file
    playbooks: str = ""  # the user's own playbook directory, relative to the graph file (before dr's own)

    @property
    def crd_dirs(self) -> tuple[Path, ...]:
        return tuple(self.base_dir / d for d in self.crds)

    @property
    def base_dir(self) -> Path:
        return Path(self.path).parent

    def line_of(self, *where: str | int) -> int:
        return self.document.line_of(where) if self.document is not None else 0

    def ancestors(self, name: str) -> set[str]:
        """Everything `name` needs, directly or through others (names not in the graph are skipped)."""
        seen: set[str] = set()
        stack = list(self.components[name].depends_on)
        while stack:
            dep = stack.pop()
            if dep in self.components and dep not in seen:
                seen.add(dep)
                stack.extend(self.components[dep].depends_on)
        return seen

    def with_components(self, components: Mapping[str, Component]) -> GraphSpec:
        return replace(self, components=MappingProxyType(dict(components)))

    @classmethod
    def from_yaml(cls, text: str, *, path: str) -> GraphSpec:
        from dr.core.spec_reader import SpecReader  # the reader builds these objects: imported when used

        document = parse_yaml(text, path=path)
        with paused_gc():
            return SpecReader(document).read()


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | Mapping[str, Any]) -> str:
    """' (did you mean 'x'?)' for a near-miss, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


ReadText = Callable[[Path], str]
