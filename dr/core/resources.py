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

from dr.core.leaks import RESTORE_SOURCES, JsonPath, find_markers
from dr.core.modes import ReadText
from dr.core.plan import Plan, Step
from dr.core.spec import (
    Backup,
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

# Playbook that restores each host-level tool.
RESTORE_PLAYBOOKS: Mapping[str, str] = {"etcd-snapshot": "etcd-restore.yml", "restic": "volume-restore.yml",
                                        "pgbackrest": "postgres-pitr.yml"}
DATA_KINDS = frozenset({"PersistentVolumeClaim", "PersistentVolume", "Namespace", "Cluster", "Restore", "Volume"})



@dataclass(frozen=True)
class KubeObject:
    """One Kubernetes object dr renders (not the ones a Helm chart renders inside the cluster)."""

    manifest: Mapping[str, Any]
    data_bearing: bool = False
    # Fields that name a production backup a drill restores from, read-only: exempt from the leak scan.
    restore_sources: tuple[JsonPath, ...] = ()

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.manifest.get("metadata", {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.manifest.get("metadata", {}).get("namespace", ""))

    @property
    def title(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class Child:
    """One resource under a component: what it is, its inputs, and how it is protected."""

    kind: str  # playbook | host-restore | helm-release | config-group | kube-object
    name: str
    inputs: Mapping[str, Any]
    protect: bool = False
    retain_on_delete: bool = False
    objects: tuple[KubeObject, ...] = ()


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
        except _MissingInput as exc:
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


class _MissingInput(ValueError):
    pass


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
        objects = []
        for manifest in action.paths:
            text = read_text(spec.base_dir / manifest) if read_text is not None else ""
            objects += [KubeObject(manifest=doc) for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
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
            "playbook": RESTORE_PLAYBOOKS[backup.tool], "tool": backup.tool, "backup": backup.name,
            "repo": backup.repo, "target_time": action.target_time, "allow_collapsed": action.allow_collapsed,
            "hosts": list(action.hosts), "vars": thaw(action.vars),
            # A drill reads production backups and never writes them: a restored database must not
            # archive its new timeline into the production repository.
            "write_back": mode != "drill"})]
    objects = [_awaited(obj, step.component.estimate_s)
               for obj in _restore_objects(step.name, backup, action, mode, namespaces_created,
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
        kind, spec = str(manifest.get("kind", "")), manifest.get("spec", {})
        namespace = str(manifest.get("metadata", {}).get("namespace", ""))
        for name, keys in _secrets_read(kind, spec):
            secrets.setdefault((namespace, name), set()).update(keys)
        backup = _backup_waited_for(kind, spec, namespace)
        if backup is not None:
            backups.append(backup)
    return {"secrets": [{"namespace": ns, "name": name, "keys": sorted(keys)}
                        for (ns, name), keys in sorted(secrets.items())],
            "backups": backups}


def _s3_credentials(stores: list[Mapping[str, Any]]) -> list[tuple[str, set[str]]]:
    return [(str(ref["name"]), {str(ref["key"])}) for store in stores
            for ref in store.get("s3Credentials", {}).values() if isinstance(ref, Mapping) and "name" in ref]


def _secrets_read(kind: str, spec: Mapping[str, Any]) -> list[tuple[str, set[str]]]:
    """The credential Secrets a restore object reads (name, keys)."""
    if kind == "Cluster":  # CloudNativePG: the store it recovers from and the one it archives to
        stores = [c.get("barmanObjectStore", {}) for c in spec.get("externalClusters", [])]
        return _s3_credentials([*stores, spec.get("backup", {}).get("barmanObjectStore", {})])
    if kind == "ObjectStore":  # the barman-cloud plugin
        return _s3_credentials([spec.get("configuration", {})])
    repository = spec.get("restic", {}).get("repository") if kind == "ReplicationDestination" else None
    return [(str(repository), {"RESTIC_REPOSITORY", "RESTIC_PASSWORD"})] if repository else []


def _backup_waited_for(kind: str, spec: Mapping[str, Any], namespace: str) -> dict[str, Any] | None:
    """The backup object a restore object needs synced before it is created (Longhorn, Velero)."""
    if kind == "Volume" and "fromBackup" in spec:
        query = str(spec["fromBackup"]).split("?", 1)[-1]
        fields = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        if "backup" in fields:
            return {"apiVersion": "longhorn.io/v1beta2", "kind": "Backup", "namespace": namespace,
                    "name": fields["backup"]}
        return None
    if kind != "Restore":
        return None
    entry: dict[str, Any] = {"apiVersion": "velero.io/v1", "kind": "Backup", "namespace": namespace}
    if spec.get("backupName"):
        entry["name"] = str(spec["backupName"])
    else:
        entry["selector"] = f"velero.io/schedule-name={spec.get('scheduleName', '')}"
        entry["phase"] = "Completed"
    return entry


def _gitops_object(step: Step, spec: GraphSpec, read_text: ReadText | None) -> dict[str, Any]:
    """The GitOps object a gate holds, from its manifest file, pointed at the drill path in drill mode."""
    owner = step.component.reconciled_by
    assert owner is not None
    text = read_text(spec.base_dir / owner.manifest) if read_text is not None else ""
    found = [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") == owner.kind
             and d.get("metadata", {}).get("name") == owner.name] if text else []
    if read_text is not None and not found:
        raise _MissingInput(f"component {step.name!r}: {owner.manifest} holds no {owner.kind} named {owner.name!r}")
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
                            if obj.manifest.get("kind") in RESTORE_DONE]
                child = Child(kind=child.kind, name=child.name, inputs={**child.inputs, "restores": restores},
                              objects=child.objects)
                holds.setdefault(str(child.inputs["controller"]), []).append(Child(
                    kind="gitops-hold", name=f"{component.name}-hold",
                    inputs={"step": component.name, "gitops": "hold", "manifest": child.inputs["manifest"]}))
            children.append(child)
        out.append(replace(component, children=tuple(children)))
    return [replace(c, children=(*c.children, *holds.get(c.name, ()))) for c in out]


def _need(values: Mapping[str, Any], key: str, component: str, why: str) -> Any:
    if key not in values:
        raise _MissingInput(f"component {component!r}: vars.{key} is required ({why})")
    return values[key]


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


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": "dr", "dr.example.com/component": component}


def _restore_objects(name: str, backup: Backup, action: RestoreAction, mode: str,
                     namespaces_created: dict[str, set[str]], ancestors: set[str]) -> list[KubeObject]:
    values = thaw(action.vars)
    namespace = _need(values, "namespace", name, "the namespace the restored data lives in")
    objects = _namespace(namespace, namespaces_created, name, ancestors)
    if backup.tool == "cnpg-barman":
        objects.append(_cnpg_cluster(name, backup, action, values, namespace, mode))
    elif backup.tool == "velero":
        objects.append(_velero_restore(name, backup, action, values, namespace))
    elif backup.tool == "longhorn":
        objects += _longhorn_volume(name, backup, values, namespace)
    elif backup.tool == "volsync":
        objects += _volsync_restore(name, backup, action, values, namespace)
    elif backup.tool == "cnpg-barman-plugin":
        objects += _cnpg_plugin_cluster(name, backup, action, values, namespace, mode)
    return objects


def kubectl_resource(api_version: str, kind: str, *, plural: bool = False) -> str:
    """How kubectl names a kind unambiguously: `kind.group` (`cluster.postgresql.cnpg.io`), or the kind
    alone for the core group; `plural` for listing (`backups.velero.io`)."""
    group = api_version.split("/")[0] if "/" in api_version else ""
    name = kind.lower() + ("s" if plural else "")
    return f"{name}.{group}" if group else name


VOLSYNC_TRIGGER = "dr-restore"  # VolSync sets status.lastManualSync to this when the restore has run

# When a restore object is done (the pulumi-kubernetes `pulumi.com/waitFor` annotation): its dependents
# (the app) must not start before the data is back -- the blank-volume incident.
RESTORE_DONE: Mapping[str, str] = {
    "Cluster": "condition=Ready",                             # CloudNativePG: recovered and serving
    "Restore": "jsonpath={.status.phase}=Completed",          # Velero
    "Volume": "jsonpath={.status.restoreRequired}=false",     # Longhorn: restored from the backup
    "ReplicationDestination": f"jsonpath={{.status.lastManualSync}}={VOLSYNC_TRIGGER}",  # VolSync: the sync ran
}


def _awaited(obj: KubeObject, estimate_s: int) -> KubeObject:
    """The object with the annotations that make `pulumi up` wait for it, for up to twice the estimate."""
    condition = RESTORE_DONE.get(str(obj.manifest.get("kind")))
    if condition is None:
        return obj
    manifest = copy.deepcopy(dict(obj.manifest))
    annotations = manifest.setdefault("metadata", {}).setdefault("annotations", {})
    annotations["pulumi.com/waitFor"] = condition
    annotations["pulumi.com/timeoutSeconds"] = str(max(600, 2 * estimate_s))
    return KubeObject(manifest=manifest, data_bearing=obj.data_bearing, restore_sources=obj.restore_sources)


def cnpg_target_time(target_time: str) -> str:
    """The graph's ISO time in the form CloudNativePG's recoveryTarget.targetTime documents."""
    return target_time.replace("T", " ").replace("Z", "+00")


def _endpoint(url: Any) -> dict[str, str]:
    return {"endpointURL": str(url)} if url else {}


def _cnpg_archive(name: str, backup: Backup, values: Mapping[str, Any], mode: str) -> tuple[str, str, str]:
    """(archive path, server name recovered from, new server name) of a recovered CloudNativePG cluster.

    A drill archives somewhere other than production. CloudNativePG refuses to archive into a non-empty
    archive ("Expected empty archive"): the recovered cluster writes under a new server name; the next
    recovery reads from that one."""
    if mode == "drill":
        archive = _need(values, "wal_archive", name,
                        "a drill must archive the restored database's WAL somewhere other than production; "
                        "set it under drill.values")
    else:
        archive = values.get("wal_archive", backup.repo)
    server = str(values.get("server_name", name))
    new_server = str(values.get("archive_server_name", f"{server}-restored"))
    if new_server == server and archive == backup.repo:
        raise _MissingInput(f"component {name!r}: vars.archive_server_name must differ from the server name "
                            f"{server!r} it recovers from when both archive to {backup.repo}")
    return str(archive), server, new_server


def _cnpg_cluster(name: str, backup: Backup, action: RestoreAction, values: dict[str, Any], namespace: str,
                  mode: str) -> KubeObject:
    credentials = values.get("s3_credentials_secret", f"{backup.name}-s3")
    # The Secret's key names and the endpoint (MinIO, Garage, a NAS) are the user's, not ours to fix.
    s3 = {"accessKeyId": {"name": credentials, "key": str(values.get("s3_access_key_id_key", "ACCESS_KEY_ID"))},
          "secretAccessKey": {"name": credentials,
                              "key": str(values.get("s3_secret_access_key_key", "ACCESS_SECRET_KEY"))}}
    endpoint = _endpoint(values.get("endpoint_url"))
    source = f"{backup.name}-origin"
    recovery: dict[str, Any] = {"source": source}
    if action.target_time != "latest":
        recovery["recoveryTarget"] = {"targetTime": cnpg_target_time(action.target_time)}
    archive, server, new_server = _cnpg_archive(name, backup, values, mode)
    spec: dict[str, Any] = {
        "instances": int(values.get("instances", 1)),
        "storage": {"size": str(values.get("storage_size", "10Gi"))},
        "bootstrap": {"recovery": recovery},
        "externalClusters": [{"name": source, "barmanObjectStore": {
            "destinationPath": backup.repo, "serverName": server, **endpoint,
            "s3Credentials": copy.deepcopy(s3),
            "wal": {"maxParallel": 8}}}],
        "backup": {"barmanObjectStore": {"destinationPath": archive, "serverName": new_server,
                                         **_endpoint(values.get("wal_archive_endpoint_url",
                                                                values.get("endpoint_url"))),
                                         "s3Credentials": copy.deepcopy(s3)},
                   "retentionPolicy": values.get("retention_policy", "30d")},
    }
    manifest = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                "metadata": {"name": name, "namespace": namespace, "labels": _labels(name)}, "spec": spec}
    return KubeObject(manifest=manifest, data_bearing=True,
                      restore_sources=(("spec", "externalClusters", 0, "barmanObjectStore", "destinationPath"),))


BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"


def _object_store(name: str, namespace: str, path: str, values: Mapping[str, Any], component: str) -> KubeObject:
    credentials = str(values.get("s3_credentials_secret", f"{component}-s3"))
    configuration: dict[str, Any] = {
        "destinationPath": path, **_endpoint(values.get("endpoint_url")),
        "s3Credentials": {"accessKeyId": {"name": credentials,
                                          "key": str(values.get("s3_access_key_id_key", "ACCESS_KEY_ID"))},
                          "secretAccessKey": {"name": credentials,
                                              "key": str(values.get("s3_secret_access_key_key", "ACCESS_SECRET_KEY"))}},
        "wal": {"maxParallel": 8}}
    return KubeObject(manifest={"apiVersion": "barmancloud.cnpg.io/v1", "kind": "ObjectStore",
                                "metadata": {"name": name, "namespace": namespace, "labels": _labels(component)},
                                "spec": {"configuration": configuration,
                                         "retentionPolicy": str(values.get("retention_policy", "30d"))}},
                      data_bearing=True)


def _cnpg_plugin_cluster(name: str, backup: Backup, action: RestoreAction, values: dict[str, Any], namespace: str,
                         mode: str) -> list[KubeObject]:
    """A CloudNativePG cluster recovered through the barman-cloud plugin (CloudNativePG 1.26+): an
    ObjectStore for the backup it reads, one for the archive it writes under a new server name, the
    Cluster with `externalClusters[].plugin` and the plugin as its WAL archiver."""
    archive, server, new_server = _cnpg_archive(name, backup, values, mode)
    origin = _object_store(f"{name}-origin", namespace, backup.repo, values, name)
    target = _object_store(f"{name}-archive", namespace, str(archive), values, name)
    recovery: dict[str, Any] = {"source": "origin"}
    if action.target_time != "latest":
        recovery["recoveryTarget"] = {"targetTime": cnpg_target_time(action.target_time)}
    storage: dict[str, Any] = {"size": str(values.get("storage_size", "10Gi"))}
    if "storage_class" in values:
        storage["storageClass"] = str(values["storage_class"])
    spec: dict[str, Any] = {
        "instances": int(values.get("instances", 1)), "storage": storage,
        "bootstrap": {"recovery": recovery},
        "externalClusters": [{"name": "origin", "plugin": {
            "name": BARMAN_PLUGIN, "parameters": {"barmanObjectName": f"{name}-origin", "serverName": server}}}],
        "plugins": [{"name": BARMAN_PLUGIN, "isWALArchiver": True,
                     "parameters": {"barmanObjectName": f"{name}-archive", "serverName": new_server}}]}
    if "image" in values:
        spec["imageName"] = str(values["image"])
    cluster = KubeObject(manifest={"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                                   "metadata": {"name": name, "namespace": namespace, "labels": _labels(name)},
                                   "spec": spec}, data_bearing=True)
    return [KubeObject(manifest=origin.manifest, data_bearing=True,
                       restore_sources=(("spec", "configuration", "destinationPath"),)), target, cluster]


def _velero_restore(name: str, backup: Backup, action: RestoreAction, values: dict[str, Any],
                    namespace: str) -> KubeObject:
    spec: dict[str, Any] = {"includedNamespaces": [namespace], "restorePVs": True,
                            "existingResourcePolicy": "none"}
    if "backup_name" in values:
        spec["backupName"] = values["backup_name"]
    else:  # Velero restores the newest successful backup of a schedule
        spec["scheduleName"] = values.get("schedule_name", backup.name)
    if "included_resources" in values:
        spec["includedResources"] = list(values["included_resources"])
    manifest = {"apiVersion": "velero.io/v1", "kind": "Restore",
                "metadata": {"name": name, "namespace": values.get("velero_namespace", "velero"),
                             "labels": _labels(name)}, "spec": spec}
    return KubeObject(manifest=manifest, data_bearing=True)


def longhorn_backup_url(backup: Backup, volume: str, backup_name: str) -> str:
    return f"{backup.repo}?backup={backup_name}&volume={volume}"


def _size_bytes(size: str) -> str:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in units.items():
        if size.endswith(suffix):
            return str(int(size[: -len(suffix)]) * factor)
    return str(int(size))


def _longhorn_volume(name: str, backup: Backup, values: dict[str, Any], namespace: str) -> list[KubeObject]:
    pvc = _need(values, "pvc", name, "the PersistentVolumeClaim the app mounts")
    size = str(_need(values, "size", name, "the size of the restored volume, like 20Gi"))
    backup_volume = values.get("backup_volume", pvc)
    # Longhorn restores one named backup; which one is newest is only known to the backup target.
    backup_name = _need(values, "backup_name", name,
                        "the Longhorn backup to restore; list them with `kubectl -n longhorn-system get "
                        f"backups.longhorn.io -l backup-volume={backup_volume}` or in the Longhorn UI")
    volume = f"{name}-vol"
    longhorn_ns = values.get("longhorn_namespace", "longhorn-system")
    restored = {"apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
                "metadata": {"name": volume, "namespace": longhorn_ns, "labels": _labels(name)},
                "spec": {"fromBackup": longhorn_backup_url(backup, backup_volume, backup_name),
                         "size": _size_bytes(size), "numberOfReplicas": int(values.get("replicas", 3)),
                         "frontend": "blockdev", "accessMode": "rwo"}}
    pv = {"apiVersion": "v1", "kind": "PersistentVolume",
          "metadata": {"name": volume, "labels": _labels(name)},
          "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "longhorn-static",
                   "csi": {"driver": "driver.longhorn.io", "volumeHandle": volume, "fsType": "ext4"},
                   "claimRef": {"namespace": namespace, "name": pvc}}}
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": pvc, "namespace": namespace, "labels": _labels(name)},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                      "storageClassName": "longhorn-static", "volumeName": volume}}
    return [KubeObject(manifest=restored, data_bearing=True, restore_sources=(("spec", "fromBackup"),)),
            KubeObject(manifest=pv, data_bearing=True), KubeObject(manifest=claim, data_bearing=True)]


def _volsync_restore(name: str, backup: Backup, action: RestoreAction, values: dict[str, Any],
                     namespace: str) -> list[KubeObject]:
    """A VolSync ReplicationDestination (restic mover) that restores once into the PVC the app mounts:
    `direct` (default) writes into that PVC, which dr creates; `populator` lets the app's own PVC
    (declared by GitOps with dataSourceRef to this object) be filled by VolSync's volume populator."""
    pvc = _need(values, "pvc", name, "the PersistentVolumeClaim the app mounts")
    method = str(values.get("copy_method", "direct"))
    if method not in ("direct", "populator"):
        raise _MissingInput(f"component {name!r}: vars.copy_method must be direct or populator, not {method!r}")
    restic: dict[str, Any] = {"repository": str(values.get("repository_secret", f"{pvc}-volsync"))}
    if action.target_time != "latest":
        restic["restoreAsOf"] = action.target_time
    objects = []
    if method == "direct":
        size = str(_need(values, "size", name, "the size of the restored volume, like 5Gi"))
        restic["destinationPVC"] = pvc
        restic["copyMethod"] = "Direct"
        claim: dict[str, Any] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                 "metadata": {"name": pvc, "namespace": namespace, "labels": _labels(name)},
                                 "spec": {"accessModes": ["ReadWriteOnce"],
                                          "resources": {"requests": {"storage": size}}}}
        if "storage_class" in values:
            claim["spec"]["storageClassName"] = str(values["storage_class"])
        objects.append(KubeObject(manifest=claim, data_bearing=True))
    else:
        restic["copyMethod"] = "Snapshot"
        restic["capacity"] = str(_need(values, "size", name, "the size of the restored volume, like 5Gi"))
        restic["accessModes"] = ["ReadWriteOnce"]
        if "storage_class" in values:
            restic["storageClassName"] = str(values["storage_class"])
        if "snapshot_class" in values:
            restic["volumeSnapshotClassName"] = str(values["snapshot_class"])
    destination = {"apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationDestination",
                   "metadata": {"name": f"{pvc}-restore" if method == "direct" else pvc, "namespace": namespace,
                                "labels": _labels(name)},
                   "spec": {"trigger": {"manual": VOLSYNC_TRIGGER}, "restic": restic}}
    objects.insert(0, KubeObject(manifest=destination, data_bearing=True))
    return objects


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
