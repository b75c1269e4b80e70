"""Longhorn: a Volume restored from a backup on the backup target, bound to the app's claim."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dr.core.backups import BackupPoint
from dr.core.kube_objects import KubeObject, labels, need
from dr.core.repositories import longhorn_problem
from dr.core.restore_tools.base import (
    BackupsFound,
    ClusterBackups,
    Completion,
    RestoreRequest,
    RestoreTool,
    always,
    parse_time,
)

if TYPE_CHECKING:
    from dr.core.spec import Backup

GROUP = "longhorn.io"


def backup_url(backup: Backup, volume: str, backup_name: str) -> str:
    return f"{backup.repo}?backup={backup_name}&volume={volume}"


def _size_bytes(size: str) -> str:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in units.items():
        if size.endswith(suffix):
            return str(int(size[: -len(suffix)]) * factor)
    return str(int(size))


def objects(request: RestoreRequest) -> list[KubeObject]:
    name, values, namespace = request.component, request.values, request.namespace
    pvc = need(values, "pvc", name, "the PersistentVolumeClaim the app mounts")
    size = str(need(values, "size", name, "the size of the restored volume, like 20Gi"))
    backup_volume = values.get("backup_volume", pvc)
    # Longhorn restores one named backup; which one is newest is only known to the backup target.
    backup_name = need(values, "backup_name", name,
                       "the Longhorn backup to restore; list them with `kubectl -n longhorn-system get "
                       f"backups.longhorn.io -l backup-volume={backup_volume}` or in the Longhorn UI")
    volume = f"{name}-vol"
    restored = {"apiVersion": f"{GROUP}/v1beta2", "kind": "Volume",
                "metadata": {"name": volume, "namespace": values.get("longhorn_namespace", "longhorn-system"),
                             "labels": labels(name)},
                "spec": {"fromBackup": backup_url(request.backup, backup_volume, backup_name),
                         "size": _size_bytes(size), "numberOfReplicas": int(values.get("replicas", 3)),
                         "frontend": "blockdev", "accessMode": "rwo"}}
    pv = {"apiVersion": "v1", "kind": "PersistentVolume",
          "metadata": {"name": volume, "labels": labels(name)},
          "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "longhorn-static",
                   "csi": {"driver": "driver.longhorn.io", "volumeHandle": volume, "fsType": "ext4"},
                   "claimRef": {"namespace": namespace, "name": pvc}}}
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": pvc, "namespace": namespace, "labels": labels(name)},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                      "storageClassName": "longhorn-static", "volumeName": volume}}
    return [KubeObject(manifest=restored, data_bearing=True, restore_sources=(("spec", "fromBackup"),)),
            KubeObject(manifest=pv, data_bearing=True), KubeObject(manifest=claim, data_bearing=True)]


def backup_waited_for(kind: str, spec: Mapping[str, Any], namespace: str) -> dict[str, Any] | None:
    """Longhorn's webhook rejects a `fromBackup` volume until the backup target has synced the backup."""
    if kind != "Volume" or "fromBackup" not in spec:
        return None
    query = str(spec["fromBackup"]).split("?", 1)[-1]
    fields = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
    if "backup" not in fields:
        return None
    return {"apiVersion": f"{GROUP}/v1beta2", "kind": "Backup", "namespace": namespace, "name": fields["backup"]}


def read_backups(backups: Sequence[Mapping[str, Any]], backup: Backup, variables: Mapping[str, Any]) -> BackupsFound:
    """The completed Longhorn Backups of the volume the app mounts."""
    volume = variables.get("backup_volume", variables.get("pvc"))
    points = []
    for item in backups:
        found_labels = item.get("metadata", {}).get("labels", {})
        status = item.get("status", {})
        if (found_labels.get("backup-volume") == volume or status.get("volumeName") == volume) and \
                status.get("state") == "Completed":
            created = parse_time(status.get("backupCreatedAt"))
            if created:
                points.append(BackupPoint(id=item["metadata"]["name"], time=created,
                                          size_bytes=int(status.get("size", 0) or 0), file_count=0))
    return BackupsFound(points=tuple(points))


def _restored(manifest: Mapping[str, Any], now: str) -> dict[str, Any]:
    return {"restoreRequired": False, "state": "detached"}


TOOL = RestoreTool(
    name="longhorn", repository_problem=longhorn_problem, objects=objects, backup_waited_for=backup_waited_for,
    kinds=frozenset({(GROUP, "Volume")}), cluster_backups=ClusterBackups("longhorn", f"backups.{GROUP}", read_backups),
    completions={(GROUP, "Volume"): Completion("Longhorn", always("jsonpath={.status.restoreRequired}=false"),
                                               _restored)})
