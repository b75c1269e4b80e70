"""From the objects of a GitOps repository to a draft recovery graph (pure).

Flux: one component per Kustomization (the object dr holds during a restore), with its `dependsOn` as
edges and the charts of the HelmReleases under its path (HelmRepository or OCIRepository) in its
description. Argo CD: one component per Application under an app-of-apps, ordered by sync wave.
Components in layers before GitOps (a CNI, found by name) are bootstrap components: dr installs them
with a Helm action from the same chart and GitOps adopts them later, so their edges to later layers
are dropped rather than inverting the recovery order. Backups come from VolSync ReplicationSources,
CloudNativePG clusters (backup sections, barman-cloud plugin ObjectStores, ScheduledBackups), Velero
Schedules and Longhorn RecurringJobs, each with a restore component the owners depend on. What cannot
be inferred is left for review in `Draft.review` and in comments on the entries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

from dr.core.restore_tools.cnpg import BARMAN_PLUGIN
from dr.core.spec import LAYER_INDEX, deep_merge
from dr.core.yaml_source import load_bounded

KOPIUR = "kopiur.home-operations.com"
# The charts that install each tool's operator, and the tools that restore into a claim (after the storage).
OPERATOR_CHARTS: Mapping[str, tuple[str, ...]] = {
    "volsync": ("volsync",), "cnpg-barman": ("cloudnative-pg", "cnpg"),
    "cnpg-barman-plugin": ("cloudnative-pg", "cnpg"), "velero": ("velero",), "longhorn": ("longhorn",),
    "kopiur": ("kopiur",)}
PVC_TOOLS = frozenset({"volsync", "kopiur"})
KOPIUR_RETENTION = {"keepLatest": "last", "keepHourly": "hourly", "keepDaily": "daily", "keepWeekly": "weekly",
                    "keepMonthly": "monthly", "keepAnnual": "yearly"}
# What import reads as backups; any other object of a backup operator, or named like one, is listed.
MODELLED = frozenset({
    ("volsync.backube", "ReplicationSource"), ("volsync.backube", "ReplicationDestination"),
    ("postgresql.cnpg.io", "Cluster"), ("postgresql.cnpg.io", "ScheduledBackup"),
    ("barmancloud.cnpg.io", "ObjectStore"),
    ("velero.io", "Schedule"), ("longhorn.io", "RecurringJob"),
    (KOPIUR, "SnapshotPolicy"), (KOPIUR, "SnapshotSchedule"), (KOPIUR, "Restore"), (KOPIUR, "Repository"),
    (KOPIUR, "ClusterRepository"), (KOPIUR, "Maintenance")})
BACKUP_GROUPS = frozenset({"k8up.io", "stash.appscode.com", "cr.kanister.io", "snapshot.storage.k8s.io", KOPIUR,
                           "velero.io", "volsync.backube", "longhorn.io", "barmancloud.cnpg.io"})
BACKUP_WORDS = re.compile(r"Backup|Snapshot|Replication")
_LAYER_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cni", ("cilium", "calico", "flannel", "multus", "kube-router")),
    ("storage", ("longhorn", "rook", "ceph", "openebs", "nfs", "democratic-csi", "local-path", "csi-")),
    ("gitops", ("flux", "argocd", "argo-cd")),
    ("addon", ("cert-manager", "external-dns", "ingress", "traefik", "metallb", "velero", "volsync", "kopiur", "cnpg",
               "cloudnative-pg", "postgres-operator", "sealed-secrets", "external-secrets", "snapshot-controller",
               "prometheus", "monitoring", "reloader", "cloudflared")),
)
PROD_ONLY_HINTS = ("external-dns", "cloudflared", "tunnel", "letsencrypt", "cluster-issuer")


@dataclass(frozen=True)
class Doc:
    path: str  # relative to the repository root, POSIX
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def group(self) -> str:
        """The API group: "" for the core group (`v1`)."""
        api_version = str(self.obj.get("apiVersion", ""))
        return api_version.split("/")[0] if "/" in api_version else ""

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.obj.get("metadata", {}).get("namespace", ""))

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.obj.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    def is_(self, group: str, kind: str) -> bool:
        return self.group == group and self.kind == kind


@dataclass
class Entry:
    body: dict[str, Any]
    review: list[str] = field(default_factory=list)
    namespace: str = ""
    path: str = ""  # the repository path the GitOps object syncs (what it owns)
    gitops_object: Mapping[str, Any] | None = None  # the object itself, for the gate
    charts: tuple[str, ...] = ()  # the Helm charts it installs (how an operator is recognised)


@dataclass
class Draft:
    tool: str
    cluster: str
    components: dict[str, Entry] = field(default_factory=dict)
    backups: dict[str, Entry] = field(default_factory=dict)
    review: list[str] = field(default_factory=list)
    crds: list[Mapping[str, Any]] = field(default_factory=list)  # CustomResourceDefinitions the repository holds


def dns_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63].rstrip("-") or "unnamed"


def guess_layer(*names: str) -> str:
    text = " ".join(names).lower()
    for layer, words in _LAYER_WORDS:
        if any(word in text for word in words):
            return layer
    return "app"


def _clean_path(path: str) -> str:
    return str(PurePosixPath(path.strip().lstrip("./") or ".")).strip("/") if path else ""


def _under(doc_path: str, directory: str) -> bool:
    return bool(directory) and (doc_path == directory or doc_path.startswith(directory.rstrip("/") + "/"))


def _rpo_for(schedule: str) -> str:
    """Twice the backup interval, roughly: the newest good backup may be one missed run old."""
    fields = schedule.split()
    hour = fields[-4] if len(fields) >= 5 else "*"
    if hour == "*":
        return "2h"
    if hour.startswith("*/") and re.fullmatch(r"[0-9]+", hour[2:]):
        return f"{2 * int(hour[2:])}h"
    return "25h"


def _duration(text: str) -> str:
    """A Go duration (720h0m0s) or a CNPG retention (30d) as a graph duration."""
    match = re.fullmatch(r"(\d+)([dwhm])", text.strip())
    if match:
        return text.strip()
    hours = re.match(r"^(\d+)h", text.strip())
    if hours:
        value = int(hours.group(1))
        return f"{value // 24}d" if value % 24 == 0 else f"{value}h"
    return text


class _Inference:
    def __init__(self, docs: Iterable[Doc], draft: Draft, controller: str) -> None:
        self.docs = list(docs)
        self.draft = draft
        self.controller = controller

    def owners_of(self, doc: Doc) -> list[str]:
        """Components in the doc's namespace, else the component whose path holds the doc."""
        by_namespace = [n for n, e in self.draft.components.items() if doc.namespace and e.namespace == doc.namespace]
        if by_namespace:
            return sorted(by_namespace)
        holders = [(len(e.path), n) for n, e in self.draft.components.items() if _under(doc.path, e.path)]
        return [max(holders)[1]] if holders else []

    def add_restore(self, backup: str, restore_vars: dict[str, Any], owners: list[str], estimate_note: str,
                    *, name: str = "") -> None:
        name = name or dns_name(f"{backup}-restore")
        base, number = name, 2
        while name in self.draft.components:  # never overwrite a component of the same name
            name, number = dns_name(f"{base}-{number}"), number + 1
        tool = str(self.draft.backups[backup].body["tool"])
        # The restore runs once the operator that performs it is back, and the storage it writes into;
        # an operator never waits for the restores that wait for it.
        operators, review = self.operators_of(tool)
        storage = [n for n, e in self.draft.components.items() if e.body.get("layer") == "storage"
                   and tool in PVC_TOOLS and n not in operators]
        self.draft.components[name] = Entry(
            body={"layer": "data", "depends_on": [*operators, *storage], "restore": {"backup": backup},
                  "vars": restore_vars},
            review=[f"estimate: how long {estimate_note} takes to restore", *review])
        for owner in owners:
            if owner in operators or owner in storage:
                continue
            deps = self.draft.components[owner].body.setdefault("depends_on", [])
            self.draft.components[owner].body["depends_on"] = list(dict.fromkeys([*deps, name]))

    def operators_of(self, tool: str) -> tuple[list[str], list[str]]:
        """The components that install a tool's operator: by the chart they install; by name only when no
        chart says so (then marked for review)."""
        charts = OPERATOR_CHARTS[tool]
        by_chart = [n for n, e in self.draft.components.items() if set(e.charts) & set(charts)]
        if by_chart:
            return by_chart, []
        by_name = [n for n, e in self.draft.components.items()
                   if e.body.get("layer") in ("addon", "storage") and any(c in n for c in charts)]
        if by_name:
            return by_name, [f"depends_on: {', '.join(by_name)} guessed by name as the {tool} operator"]
        return [], [f"depends_on: no component installs the {tool} operator (chart {' or '.join(charts)}); add it"]

    def backup(self, name: str, body: dict[str, Any], review: list[str], *, namespace: str = "") -> str:
        """Add a backup; a name already taken (the same name in another namespace) is qualified with the
        namespace, then numbered: nothing is ever overwritten."""
        key = dns_name(name)
        if key in self.draft.backups and namespace:
            key = dns_name(f"{namespace}-{name}")
        base, number = key, 2
        while key in self.draft.backups:
            key, number = dns_name(f"{base}-{number}"), number + 1
        self.draft.backups[key] = Entry(body=body, review=review, namespace=namespace)
        return key

    def volsync(self) -> None:
        destinations = {(d.namespace, str(d.spec.get("restic", {}).get("repository", ""))): d for d in self.docs
                        if d.is_("volsync.backube", "ReplicationDestination")}
        for doc in self.docs:
            if not doc.is_("volsync.backube", "ReplicationSource"):
                continue
            restic = doc.spec.get("restic", {})
            if not isinstance(restic, Mapping):
                self.draft.review.append(f"{doc.path}: ReplicationSource {doc.name} does not use the restic "
                                         "mover; dr restores VolSync restic repositories only")
                continue
            schedule = str(doc.spec.get("trigger", {}).get("schedule", ""))
            retention = {k: v for k, v in dict(restic.get("retain", {})).items()
                         if k in ("hourly", "daily", "weekly", "monthly", "yearly", "within")}
            owners = self.owners_of(doc)
            review = [] if schedule else ["schedule: the ReplicationSource has no trigger.schedule"]
            key = self.backup(doc.name, {
                "tool": "volsync", "protects": owners, "repo": f"volsync:{doc.namespace}/{restic.get('repository')}",
                "schedule": schedule or "0 3 * * *", "retention": retention or {"daily": 7},
                "rpo": _rpo_for(schedule)}, [*review, "rpo: guessed as twice the backup interval"])
            destination = destinations.get((doc.namespace, str(restic.get("repository", ""))))
            capacity = (destination.spec.get("restic", {}).get("capacity") if destination else None) or \
                restic.get("capacity")
            restore_vars: dict[str, Any] = {"namespace": doc.namespace, "pvc": str(doc.spec.get("sourcePVC", doc.name)),
                                            "repository_secret": str(restic.get("repository", "")),
                                            "copy_method": "populator" if destination else "direct"}
            if capacity:
                restore_vars["size"] = str(capacity)
            else:
                self.draft.review.append(f"{doc.path}: the size of PVC {restore_vars['pvc']} is not in the "
                                         f"repository; set vars.size on {key}-restore")
            self.add_restore(key, restore_vars, owners, f"PVC {restore_vars['pvc']}")

    def cnpg(self) -> None:
        stores = {(d.namespace, d.name): d for d in self.docs if d.is_("barmancloud.cnpg.io", "ObjectStore")}
        schedules = {(d.namespace, str(d.spec.get("cluster", {}).get("name", ""))): d for d in self.docs
                     if d.is_("postgresql.cnpg.io", "ScheduledBackup")}
        for doc in self.docs:
            if not doc.is_("postgresql.cnpg.io", "Cluster"):
                continue
            plugin = next((p for p in doc.spec.get("plugins", []) or [] if isinstance(p, Mapping)
                           and p.get("name") == BARMAN_PLUGIN), None)
            section = doc.spec.get("backup", {}) if isinstance(doc.spec.get("backup"), Mapping) else {}
            review = []
            if plugin is not None:
                store_name = str(plugin.get("parameters", {}).get("barmanObjectName", ""))
                store = stores.get((doc.namespace, store_name))
                config = store.spec.get("configuration", {}) if store else {}
                tool, repo = "cnpg-barman-plugin", str(config.get("destinationPath", ""))
                retention_policy = str(store.spec.get("retentionPolicy", "")) if store else ""
                if store is None:
                    review.append(f"repo: ObjectStore {store_name} is not in the repository")
                review.append("restore: recovery through the plugin needs CloudNativePG 1.26+ and the "
                              "barman-cloud plugin installed before this step")
            elif section.get("barmanObjectStore"):
                tool, repo = "cnpg-barman", str(section["barmanObjectStore"].get("destinationPath", ""))
                retention_policy = str(section.get("retentionPolicy", ""))
            else:
                self.draft.review.append(f"{doc.path}: CloudNativePG cluster {doc.name} has no backup: add one, or "
                                         "mark its owner not stateful")
                continue
            scheduled = schedules.get((doc.namespace, doc.name))
            schedule = str(scheduled.spec.get("schedule", "")) if scheduled else ""
            if not schedule:
                review.append("schedule: no ScheduledBackup for this cluster (WAL is archived continuously)")
            owners = self.owners_of(doc)
            key = self.backup(doc.name, {
                "tool": tool, "protects": owners, "repo": repo or "REVIEW", "schedule": schedule or "0 3 * * *",
                "retention": {"within": _duration(retention_policy)} if retention_policy else {"daily": 7},
                "rpo": "1h"}, [*review, "rpo: 1h assumed (WAL archiving); set what you promise"])
            self.add_restore(key, {"namespace": doc.namespace, "server_name": doc.name}, owners,
                             f"database {doc.name}")

    def velero(self) -> None:
        for doc in self.docs:
            if not doc.is_("velero.io", "Schedule"):
                continue
            template = doc.spec.get("template", {})
            namespaces = [str(n) for n in template.get("includedNamespaces", []) or []]
            excluded = {str(n) for n in template.get("excludedNamespaces", []) or []}
            if not namespaces or "*" in namespaces:  # every namespace (Velero's default), minus the excluded
                namespaces = sorted({e.namespace for e in self.draft.components.values() if e.namespace} - excluded)
            owners = sorted({n for n, e in self.draft.components.items() if e.namespace in namespaces
                             and e.body.get("layer") != "data"})
            ttl = str(template.get("ttl", ""))
            key = self.backup(doc.name, {
                "tool": "velero", "protects": owners, "repo": f"velero:{template.get('storageLocation', 'default')}",
                "schedule": str(doc.spec.get("schedule", "0 3 * * *")),
                "retention": {"within": _duration(ttl)} if ttl else {"daily": 7},
                "rpo": _rpo_for(str(doc.spec.get("schedule", "")))},
                ["repo: the bucket of the backup storage location"] if owners else
                ["protects: no component of this repository is in its includedNamespaces"])
            for namespace in namespaces:
                covered = [n for n in owners if self.draft.components[n].namespace == namespace]
                if covered:  # one Velero Restore per namespace, each before the components in it
                    self.add_restore(key, {"namespace": namespace, "schedule_name": doc.name}, covered,
                                     f"namespace {namespace}", name=dns_name(f"{key}-{namespace}-restore"))

    def longhorn(self) -> None:
        for doc in self.docs:
            if doc.is_("longhorn.io", "RecurringJob") and doc.spec.get("task") == "backup":
                self.backup(doc.name, {
                    "tool": "longhorn", "protects": [], "repo": "REVIEW: the Longhorn backup target",
                    "schedule": str(doc.spec.get("cron", "0 3 * * *")),
                    "retention": {"last": int(doc.spec.get("retain", 1))},
                    "rpo": _rpo_for(str(doc.spec.get("cron", "")))},
                    [f"protects: the components whose volumes are in groups {list(doc.spec.get('groups', []))}",
                     "restore: add a restore component per volume (vars pvc, size, backup_name)"])

    def kopiur(self) -> None:
        """kopiur: one backup per SnapshotPolicy (its SnapshotSchedule's cron, its GFS retention), restored
        by a kopiur Restore of the policy's snapshot: as a volume populator when the app's claim names a
        kopiur Restore in its dataSourceRef, else into a claim kopiur creates."""
        schedules = {(d.namespace, str(d.spec.get("policyRef", {}).get("name", ""))): d for d in self.docs
                     if d.is_(KOPIUR, "SnapshotSchedule")}
        claims = {(d.namespace, d.name): d for d in self.docs if d.is_("", "PersistentVolumeClaim")}
        for doc in self.docs:
            if not doc.is_(KOPIUR, "SnapshotPolicy"):
                continue
            ref = doc.spec.get("repository", {}) if isinstance(doc.spec.get("repository"), Mapping) else {}
            repo = (f"kopiur:ClusterRepository/{ref.get('name', '')}" if ref.get("kind") == "ClusterRepository"
                    else f"kopiur:Repository/{ref.get('namespace') or doc.namespace}/{ref.get('name', '')}")
            scheduled = schedules.get((doc.namespace, doc.name))
            cron = str(scheduled.spec.get("schedule", {}).get("cron", "")) if scheduled else ""
            review = ["rpo: guessed as twice the backup interval"]
            if "H" in cron.split():
                review.append(f"schedule: kopiur spreads `H` fields (Jenkins style: {cron!r}); dr reads 0 there")
                cron = " ".join("0" if f == "H" else f for f in cron.split())
            if not cron:
                review.append("schedule: no SnapshotSchedule names this SnapshotPolicy")
            retention = {graph_key: int(value) for key, graph_key in KOPIUR_RETENTION.items()
                         if isinstance(value := doc.spec.get("retention", {}).get(key), int)}
            pvcs = [str(s["pvc"]["name"]) for s in doc.spec.get("sources", []) or []
                    if isinstance(s, Mapping) and isinstance(s.get("pvc"), Mapping)]
            if len(pvcs) != 1:
                review.append("restore: the policy does not name exactly one PVC (a selector or NFS source); "
                              "add one restore component per volume")
            owners = self.owners_of(doc)
            key = self.backup(doc.name, {"tool": "kopiur", "protects": owners, "repo": repo,
                                         "schedule": cron or "0 3 * * *", "retention": retention or {"daily": 7},
                                         "rpo": _rpo_for(cron)}, review, namespace=doc.namespace)
            if not pvcs:
                continue
            claim = claims.get((doc.namespace, pvcs[0]))
            source = claim.spec.get("dataSourceRef") if claim else None
            source = source if isinstance(source, Mapping) else {}
            populated = (source.get("apiGroup"), source.get("kind")) == (KOPIUR, "Restore")
            restore_vars: dict[str, Any] = {"namespace": doc.namespace, "pvc": pvcs[0], "policy": doc.name,
                                            "target": "populator" if populated else "pvc"}
            if populated:
                restore_vars["restore_name"] = str(source.get("name", pvcs[0]))
            size = claim.spec.get("resources", {}).get("requests", {}).get("storage") if claim else None
            if size:
                restore_vars["size"] = str(size)
            elif not populated:
                self.draft.review.append(f"{doc.path}: the size of PVC {pvcs[0]} is not in the repository; set "
                                         f"vars.size on {key}-restore")
            self.add_restore(key, restore_vars, owners, f"PVC {pvcs[0]}", name=dns_name(f"{key}-restore"))

    def unmodelled(self) -> None:
        """Every backup-like object dr does not model, by kind and count: never dropped silently."""
        counts: dict[str, int] = {}
        for doc in self.docs:
            if (doc.group, doc.kind) in MODELLED or not (doc.group in BACKUP_GROUPS or BACKUP_WORDS.search(doc.kind)):
                continue
            label = f"{doc.kind} ({doc.group or 'core'})"
            counts[label] = counts.get(label, 0) + 1
        self.draft.review += [f"not modelled by dr: {count} {label} object{'s' if count > 1 else ''}; protect what "
                              "they hold with a backup dr knows, or record them yourself"
                              for label, count in sorted(counts.items())]

    def data(self) -> None:
        self.volsync()
        self.cnpg()
        self.velero()
        self.longhorn()
        self.kopiur()
        self.unmodelled()


def _component(draft: Draft, name: str, *, layer: str, kind: str, obj: Doc, source: str, path: str,
               namespace: str, charts: list[dict[str, Any]], depends_on: list[str], controller: str) -> None:
    body: dict[str, Any] = {"layer": layer, "depends_on": depends_on}
    review = ["estimate: how long it takes to come back"]
    chart_text = ", ".join(f"{c['chart']} {c['version']} from {c['repo']}" for c in charts)
    if _bootstrap(layer):
        # Installed before GitOps can run (its pods need the network), adopted by it afterwards: dr
        # installs it; edges to later layers exist only for the adoption and would invert the order.
        if charts:
            chart = charts[0]
            body["helm"] = {"chart": chart["chart"], "repo": chart["repo"], "version": chart["version"],
                            "namespace": chart["namespace"] or namespace or "kube-system"}
            if chart.get("values"):  # the same values GitOps installs it with (kube-proxy replacement, IPAM...)
                body["helm"]["values"] = chart["values"]
        review.append(f"bootstrap: {kind} {obj.name} adopts this after bootstrap; dr installs it first"
                      + ("" if charts else " (give it a helm action or a playbook)"))
    else:
        body["reconciled_by"] = {"kind": kind, "name": obj.name, "namespace": obj.namespace or (
            "argocd" if kind == "Application" else "flux-system"), "controller": controller}
        if source:
            body["reconciled_by"]["source"] = source
        if path:
            body["reconciled_by"]["path"] = path
    if chart_text:
        body["description"] = f"{kind} {obj.name}: {chart_text}"
    if any(hint in name for hint in PROD_ONLY_HINTS):
        review.append("prod_only: does this touch production (DNS, certificates, tunnels)? If so mark it "
                      "prod_only with a drill replacement")
    draft.components[name] = Entry(body=body, review=review, namespace=namespace, path=path,
                                   gitops_object=obj.obj if "reconciled_by" in body else None,
                                   charts=tuple(c["chart"] for c in charts))


def _bootstrap(layer: str) -> bool:
    return LAYER_INDEX[layer] <= LAYER_INDEX["cni"]


def _finish(draft: Draft, controller: str, controller_name: str) -> None:
    bootstrap = [n for n, e in draft.components.items() if _bootstrap(e.body["layer"])]
    draft.components = {controller: Entry(
        body={"layer": "gitops", "depends_on": [n for n in bootstrap if draft.components[n].body["layer"] == "cni"]},
        review=[f"action: how {controller_name} is installed (its bootstrap command or chart), and its estimate"]),
        **draft.components}
    layer_of = {n: LAYER_INDEX[e.body["layer"]] for n, e in draft.components.items()}
    for name, entry in draft.components.items():
        deps = [d for d in entry.body.get("depends_on", []) if d in draft.components and d != name]
        if name in bootstrap:
            dropped = [d for d in deps if layer_of[d] > layer_of[name]]
            if dropped:
                entry.review.append(f"dropped: depends on {', '.join(dropped)} only for GitOps adoption")
            deps = [d for d in deps if layer_of[d] <= layer_of[name]]
        entry.body["depends_on"] = list(dict.fromkeys(deps))  # a dependsOn that repeats the root: once


def component_names(objects: Iterable[Doc], reserved: Iterable[str] = ()) -> dict[tuple[str, str, str], str]:
    """A component name for each GitOps object: its own name, qualified where two objects would share one
    (by kind, then by namespace) or where it is taken (the controller's); never one for two objects."""
    taken = set(reserved)
    groups: dict[str, list[Doc]] = {}
    for doc in objects:
        groups.setdefault(dns_name(doc.name), []).append(doc)
    names: dict[tuple[str, str, str], str] = {}
    for base, group in groups.items():
        kinds = {d.kind for d in group}
        for doc in group:
            parts = []
            if base in taken or len(kinds) > 1:
                parts.append(doc.kind.lower())
            if sum(1 for o in group if o.kind == doc.kind) > 1:
                parts.append(doc.namespace or "default")
            name = dns_name("-".join([*parts, doc.name]))
            unique, number = name, 2
            while unique in taken:
                unique, number = dns_name(f"{name}-{number}"), number + 1
            taken.add(unique)
            names[(doc.kind, doc.namespace, doc.name)] = unique
    return names


class _FluxSources:
    """Where a Flux object's chart and values come from: its HelmRepository or OCIRepository, its
    `valuesFrom` ConfigMaps (plain in the repository) and its `values`."""

    def __init__(self, docs: list[Doc]) -> None:
        self.git = {(d.namespace, d.name): str(d.spec.get("url", "")) for d in docs
                    if d.is_("source.toolkit.fluxcd.io", "GitRepository")}
        self.helm_repos = {(d.namespace, d.name): str(d.spec.get("url", "")) for d in docs
                           if d.is_("source.toolkit.fluxcd.io", "HelmRepository")}
        self.oci = {(d.namespace, d.name): d for d in docs if d.is_("source.toolkit.fluxcd.io", "OCIRepository")}
        self.config_maps = {(d.namespace, d.name): d for d in docs if d.is_("", "ConfigMap")}
        self.skipped: list[str] = []  # values that could not be read, for review

    def git_url(self, ks: Doc) -> str:
        ref = ks.spec.get("sourceRef", {})
        return self.git.get((ref.get("namespace", ks.namespace), ref.get("name", "")), "")

    def values_of(self, release: Doc) -> dict[str, Any]:
        """`valuesFrom` ConfigMaps first, then `values` over them (Flux's order); Secrets are never read."""
        merged: dict[str, Any] = {}
        for ref in release.spec.get("valuesFrom") or []:
            if not isinstance(ref, Mapping) or ref.get("kind") != "ConfigMap":
                continue
            found = self.config_maps.get((release.namespace, str(ref.get("name", ""))))
            text = (found.obj.get("data") or {}).get(str(ref.get("valuesKey", "values.yaml"))) if found else None
            try:
                loaded = load_bounded(text) if isinstance(text, str) else None
            except (yaml.YAMLError, RecursionError) as exc:  # bounded: an alias bomb, nested thousands deep
                assert found is not None
                self.skipped.append(f"{found.path}: the values of ConfigMap {found.name} are not read "
                                    f"({getattr(exc, 'problem', None) or type(exc).__name__})")
                continue
            if isinstance(loaded, Mapping):
                merged = deep_merge(merged, loaded)
        values = release.spec.get("values")
        return deep_merge(merged, values) if isinstance(values, Mapping) else merged

    def chart_of(self, release: Doc) -> dict[str, Any]:
        namespace = release.namespace
        target = str(release.spec.get("targetNamespace", namespace))
        chart = release.spec.get("chart", {}).get("spec", {}) if isinstance(release.spec.get("chart"), Mapping) else {}
        if chart:
            ref = chart.get("sourceRef", {})
            repo = self.helm_repos.get((ref.get("namespace", namespace), ref.get("name", "")), "")
            return {"chart": str(chart.get("chart", "")), "version": str(chart.get("version", "")), "repo": repo,
                    "namespace": target, "values": self.values_of(release)}
        ref = release.spec.get("chartRef", {})
        source = self.oci.get((ref.get("namespace", namespace), ref.get("name", "")))
        url = str(source.spec.get("url", "")) if source else ""
        return {"chart": url.rsplit("/", 1)[-1], "version": str(source.spec.get("ref", {}).get("tag", "")) if source
                else "", "repo": url.rsplit("/", 1)[0], "namespace": target, "values": self.values_of(release)}


def _dependencies(obj: Doc, names: Mapping[tuple[str, str, str], str]) -> list[str]:
    """A Flux object's `dependsOn`, as component names (same kind, its own namespace unless named)."""
    out = []
    for dep in obj.spec.get("dependsOn", []) or []:
        if isinstance(dep, Mapping):
            key = (obj.kind, str(dep.get("namespace") or obj.namespace), str(dep.get("name", "")))
            out.append(names.get(key, dns_name(key[2])))
    return out


def infer_flux(docs: Iterable[Doc], cluster: str) -> Draft:
    docs = list(docs)
    draft = Draft(tool="flux", cluster=cluster)
    sources = _FluxSources(docs)
    kustomizations = [d for d in docs if d.is_("kustomize.toolkit.fluxcd.io", "Kustomization")]
    releases = [d for d in docs if d.is_("helm.toolkit.fluxcd.io", "HelmRelease")]
    holders = {id(k): _clean_path(str(k.spec.get("path", ""))) for k in kustomizations}
    roots = [k for k in kustomizations if any(_under(o.path, holders[id(k)]) for o in kustomizations if o is not k)]
    loose = [r for r in releases if not any(_under(r.path, holders[id(k)]) for k in kustomizations
                                            if not any(k is root for root in roots))]
    names = component_names([*kustomizations, *loose], reserved={"flux"})

    def name_of(doc: Doc) -> str:
        return names[(doc.kind, doc.namespace, doc.name)]

    def root_of(doc: Doc) -> list[str]:
        found = sorted((len(holders[id(r)]), name_of(r)) for r in roots if _under(doc.path, holders[id(r)]))
        return [found[-1][1]] if found else []

    for root in sorted(roots, key=name_of):  # the Kustomization that applies the others: it comes back first
        _component(draft, name_of(root), layer="gitops", kind="Kustomization", obj=root, source=sources.git_url(root),
                   path=holders[id(root)], namespace="", charts=[], depends_on=[], controller="flux")
    for ks in kustomizations:
        if any(ks is root for root in roots):
            continue
        path = holders[id(ks)]
        inside = [r for r in releases if _under(r.path, path)]
        charts = [sources.chart_of(r) for r in inside]
        namespace = str(ks.spec.get("targetNamespace", "")) or (inside[0].namespace if inside else "")
        _component(draft, name_of(ks), layer=guess_layer(ks.name, *(c["chart"] for c in charts)),
                   kind="Kustomization", obj=ks, source=sources.git_url(ks), path=path, namespace=namespace,
                   charts=charts, depends_on=[*root_of(ks), *_dependencies(ks, names)], controller="flux")
    for release in loose:
        chart = sources.chart_of(release)
        _component(draft, name_of(release), layer=guess_layer(release.name, chart["chart"]), kind="HelmRelease",
                   obj=release, source=chart["repo"], path="", namespace=release.namespace, charts=[chart],
                   depends_on=_dependencies(release, names), controller="flux")
    draft.review += sorted(set(sources.skipped))
    _Inference(docs, draft, "flux").data()
    _finish(draft, "flux", "Flux")
    return draft


def _wave(app: Doc) -> int:
    text = str(app.obj.get("metadata", {}).get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))
    try:
        return int(text)
    except ValueError:
        return 0


def infer_argo(docs: Iterable[Doc], cluster: str) -> Draft:
    docs = list(docs)
    draft = Draft(tool="argo", cluster=cluster)
    apps = [d for d in docs if d.is_("argoproj.io", "Application")]
    names = component_names(apps, reserved={"argocd"})

    def name_of(app: Doc) -> str:
        return names[(app.kind, app.namespace, app.name)]

    def source_of(app: Doc) -> Mapping[str, Any]:
        source = app.spec.get("source") or (app.spec.get("sources") or [{}])[0]
        return source if isinstance(source, Mapping) else {}

    paths = {id(a): _clean_path(str(source_of(a).get("path", ""))) for a in apps}
    roots = [a for a in apps if any(_under(o.path, paths[id(a)]) for o in apps if o is not a)]
    draft.review += [f"Application {r.name} is an app-of-apps: dr holds it only until it exists, then its children "
                     "one by one; its own automated sync must not re-enable theirs (keep selfHeal off on the "
                     "children's syncPolicy in git, or hold it too)" for r in sorted(roots, key=name_of)]
    for root in sorted(roots, key=name_of):
        _component(draft, name_of(root), layer="gitops", kind="Application", obj=root,
                   source=str(source_of(root).get("repoURL", "")), path=paths[id(root)], namespace="", charts=[],
                   depends_on=[], controller="argocd")
    children = [a for a in apps if not any(a is r for r in roots)]
    for app in children:
        source = source_of(app)
        chart = str(source.get("chart", ""))
        namespace = str(app.spec.get("destination", {}).get("namespace", ""))
        charts: list[dict[str, Any]] = [{
            "chart": chart, "version": str(source.get("targetRevision", "")), "repo": str(source.get("repoURL", "")),
            "namespace": namespace}] if chart else []
        wave = _wave(app)
        earlier = [_wave(o) for o in children if _wave(o) < wave]
        previous = max(earlier) if earlier else None
        deps = [name_of(o) for o in children if previous is not None and _wave(o) == previous]
        deps += [name_of(r) for r in roots if _under(app.path, paths[id(r)])]
        _component(draft, name_of(app), layer=guess_layer(app.name, chart), kind="Application", obj=app,
                   source=str(source.get("repoURL", "")), path=paths[id(app)], namespace=namespace, charts=charts,
                   depends_on=deps, controller="argocd")
    _Inference(docs, draft, "argocd").data()
    _finish(draft, "argocd", "Argo CD")
    return draft
