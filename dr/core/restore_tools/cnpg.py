"""CloudNativePG: a database recovered from its barman object store, in-tree (`cnpg-barman`) or through
the barman-cloud plugin (`cnpg-barman-plugin`, CloudNativePG 1.26+)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dr.core.backups import BackupPoint
from dr.core.kube_objects import KubeObject, MissingInput, endpoint, labels, need
from dr.core.repositories import barman_problem
from dr.core.restore_tools.base import (
    BackupsFound,
    ClusterBackups,
    Completion,
    RestoreRequest,
    RestoreTool,
    SecretsRead,
    always,
    parse_time,
)

if TYPE_CHECKING:
    from dr.core.leaks import JsonPath
    from dr.core.spec import Backup

BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
GROUP = "postgresql.cnpg.io"


def cnpg_target_time(target_time: str) -> str:
    """The graph's ISO time in the form CloudNativePG's recoveryTarget.targetTime documents."""
    return target_time.replace("T", " ").replace("Z", "+00")


def _archive(request: RestoreRequest) -> tuple[str, str, str]:
    """(archive path, server name recovered from, new server name) of a recovered cluster.

    A drill archives somewhere other than production. CloudNativePG refuses to archive into a non-empty
    archive ("Expected empty archive"): the recovered cluster writes under a new server name; the next
    recovery reads from that one."""
    name, backup, values = request.component, request.backup, request.values
    if request.mode == "drill":
        archive = need(values, "wal_archive", name,
                       "a drill must archive the restored database's WAL somewhere other than production; "
                       "set it under drill.values")
    else:
        archive = values.get("wal_archive", backup.repo)
    server = str(values.get("server_name", name))
    new_server = str(values.get("archive_server_name", f"{server}-restored"))
    if new_server == server and archive == backup.repo:
        raise MissingInput(f"component {name!r}: vars.archive_server_name must differ from the server name "
                           f"{server!r} it recovers from when both archive to {backup.repo}")
    return str(archive), server, new_server


def _s3_credentials(values: Mapping[str, Any], default_secret: str) -> dict[str, Any]:
    # The Secret's key names and the endpoint (MinIO, Garage, a NAS) are the user's, not ours to fix.
    secret = str(values.get("s3_credentials_secret", default_secret))
    return {"accessKeyId": {"name": secret, "key": str(values.get("s3_access_key_id_key", "ACCESS_KEY_ID"))},
            "secretAccessKey": {"name": secret,
                                "key": str(values.get("s3_secret_access_key_key", "ACCESS_SECRET_KEY"))}}


def _recovery(source: str, target_time: str) -> dict[str, Any]:
    recovery: dict[str, Any] = {"source": source}
    if target_time != "latest":
        recovery["recoveryTarget"] = {"targetTime": cnpg_target_time(target_time)}
    return recovery


def _cluster(request: RestoreRequest, spec: dict[str, Any], *,
             restore_sources: tuple[JsonPath, ...] = (("spec", "externalClusters", 0, "barmanObjectStore",
                                                       "destinationPath"),)) -> KubeObject:
    return KubeObject(manifest={"apiVersion": f"{GROUP}/v1", "kind": "Cluster",
                                "metadata": {"name": request.component, "namespace": request.namespace,
                                             "labels": labels(request.component)}, "spec": spec},
                      data_bearing=True, restore_sources=restore_sources)


def in_tree_objects(request: RestoreRequest) -> list[KubeObject]:
    """A Cluster bootstrapped by recovery from `barmanObjectStore`, archiving under a new server name."""
    backup, values = request.backup, request.values
    s3 = _s3_credentials(values, f"{backup.name}-s3")
    source = f"{backup.name}-origin"
    archive, server, new_server = _archive(request)
    spec: dict[str, Any] = {
        "instances": int(values.get("instances", 1)),
        "storage": {"size": str(values.get("storage_size", "10Gi"))},
        "bootstrap": {"recovery": _recovery(source, request.target_time)},
        "externalClusters": [{"name": source, "barmanObjectStore": {
            "destinationPath": backup.repo, "serverName": server, **endpoint(values.get("endpoint_url")),
            "s3Credentials": copy.deepcopy(s3),
            "wal": {"maxParallel": 8}}}],
        "backup": {"barmanObjectStore": {"destinationPath": archive, "serverName": new_server,
                                         **endpoint(values.get("wal_archive_endpoint_url",
                                                               values.get("endpoint_url"))),
                                         "s3Credentials": copy.deepcopy(s3)},
                   "retentionPolicy": values.get("retention_policy", "30d")},
    }
    return [_cluster(request, spec)]


def _object_store(name: str, path: str, request: RestoreRequest) -> KubeObject:
    values = request.values
    configuration: dict[str, Any] = {
        "destinationPath": path, **endpoint(values.get("endpoint_url")),
        "s3Credentials": _s3_credentials(values, f"{request.component}-s3"), "wal": {"maxParallel": 8}}
    return KubeObject(manifest={"apiVersion": "barmancloud.cnpg.io/v1", "kind": "ObjectStore",
                                "metadata": {"name": name, "namespace": request.namespace,
                                             "labels": labels(request.component)},
                                "spec": {"configuration": configuration,
                                         "retentionPolicy": str(values.get("retention_policy", "30d"))}},
                      data_bearing=True)


def plugin_objects(request: RestoreRequest) -> list[KubeObject]:
    """An ObjectStore for the backup it reads, one for the archive it writes under a new server name, the
    Cluster with `externalClusters[].plugin` and the plugin as its WAL archiver."""
    name, values = request.component, request.values
    archive, server, new_server = _archive(request)
    origin = _object_store(f"{name}-origin", request.backup.repo, request)
    target = _object_store(f"{name}-archive", archive, request)
    storage: dict[str, Any] = {"size": str(values.get("storage_size", "10Gi"))}
    if "storage_class" in values:
        storage["storageClass"] = str(values["storage_class"])
    spec: dict[str, Any] = {
        "instances": int(values.get("instances", 1)), "storage": storage,
        "bootstrap": {"recovery": _recovery("origin", request.target_time)},
        "externalClusters": [{"name": "origin", "plugin": {
            "name": BARMAN_PLUGIN, "parameters": {"barmanObjectName": f"{name}-origin", "serverName": server}}}],
        "plugins": [{"name": BARMAN_PLUGIN, "isWALArchiver": True,
                     "parameters": {"barmanObjectName": f"{name}-archive", "serverName": new_server}}]}
    if "image" in values:
        spec["imageName"] = str(values["image"])
    return [KubeObject(manifest=origin.manifest, data_bearing=True,
                       restore_sources=(("spec", "configuration", "destinationPath"),)), target,
            _cluster(request, spec, restore_sources=())]


def _credentials_of(stores: list[Mapping[str, Any]]) -> SecretsRead:
    return [(str(ref["name"]), {str(ref["key"])}) for store in stores
            for ref in store.get("s3Credentials", {}).values() if isinstance(ref, Mapping) and "name" in ref]


def secrets_read(kind: str, spec: Mapping[str, Any]) -> SecretsRead:
    """The stores a Cluster recovers from and archives to; an ObjectStore's own."""
    if kind == "Cluster":
        stores = [c.get("barmanObjectStore", {}) for c in spec.get("externalClusters", [])]
        return _credentials_of([*stores, spec.get("backup", {}).get("barmanObjectStore", {})])
    if kind == "ObjectStore":
        return _credentials_of([spec.get("configuration", {})])
    return []


def _ready(manifest: Mapping[str, Any], now: str) -> dict[str, Any]:
    return {"phase": "Cluster in healthy state", "conditions": [
        {"type": "Ready", "status": "True", "reason": "SetByDrSandbox", "lastTransitionTime": now,
         "message": "set by the dr sandbox: no CloudNativePG operator runs here"}]}


def read_backups(clusters: Sequence[Mapping[str, Any]], backup: Backup, variables: Mapping[str, Any]) -> BackupsFound:
    """The Cluster's `lastSuccessfulBackup`; with WAL archiving working, it restores up to now."""
    name, namespace = variables.get("component"), variables.get("namespace")
    for cluster in clusters:
        meta = cluster.get("metadata", {})
        if meta.get("name") == name and (namespace is None or meta.get("namespace") == namespace):
            status = cluster.get("status", {})
            last = parse_time(status.get("lastSuccessfulBackup"))
            points = (BackupPoint(id="lastSuccessfulBackup", time=last, size_bytes=0, file_count=0),) if last else ()
            archiving = next((c for c in status.get("conditions", []) if c.get("type") == "ContinuousArchiving"),
                             None)
            working = archiving is not None and archiving.get("status") == "True"
            return BackupsFound(points=points, newest_restorable=last, archiving=working)
    raise LookupError(f"no CloudNativePG Cluster {namespace}/{name} in the cluster")


# Recovered and serving.
COMPLETIONS = {(GROUP, "Cluster"): Completion("CloudNativePG", always("condition=Ready"), _ready)}

BARMAN = RestoreTool(
    name="cnpg-barman", repository_problem=barman_problem, objects=in_tree_objects, completions=COMPLETIONS,
    secrets_read=secrets_read, kinds=frozenset({(GROUP, "Cluster")}),
    cluster_backups=ClusterBackups("cnpg", f"clusters.{GROUP}", read_backups))
BARMAN_PLUGIN_TOOL = RestoreTool(
    name="cnpg-barman-plugin", repository_problem=barman_problem, objects=plugin_objects, completions=COMPLETIONS,
    secrets_read=secrets_read, kinds=frozenset({(GROUP, "Cluster"), ("barmancloud.cnpg.io", "ObjectStore")}))
