"""Velero: a Restore of a namespace from a named backup or the newest of a schedule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dr.core.backups import BackupPoint
from dr.core.kube_objects import KubeObject, labels
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

GROUP = "velero.io"


def objects(request: RestoreRequest) -> list[KubeObject]:
    values = request.values
    spec: dict[str, Any] = {"includedNamespaces": [request.namespace], "restorePVs": True,
                            "existingResourcePolicy": "none"}
    if "backup_name" in values:
        spec["backupName"] = values["backup_name"]
    else:  # Velero restores the newest successful backup of a schedule
        spec["scheduleName"] = values.get("schedule_name", request.backup.name)
    if "included_resources" in values:
        spec["includedResources"] = list(values["included_resources"])
    manifest = {"apiVersion": f"{GROUP}/v1", "kind": "Restore",
                "metadata": {"name": request.component, "namespace": values.get("velero_namespace", "velero"),
                             "labels": labels(request.component)}, "spec": spec}
    return [KubeObject(manifest=manifest, data_bearing=True)]


def backup_waited_for(kind: str, spec: Mapping[str, Any], namespace: str) -> dict[str, Any] | None:
    """A Restore created before its backups synced from the storage location fails validation and is
    never retried: it waits for the Backup it names, or a completed one of its schedule."""
    if kind != "Restore":
        return None
    entry: dict[str, Any] = {"apiVersion": f"{GROUP}/v1", "kind": "Backup", "namespace": namespace}
    if spec.get("backupName"):
        entry["name"] = str(spec["backupName"])
    else:
        entry["selector"] = f"velero.io/schedule-name={spec.get('scheduleName', '')}"
        entry["phase"] = "Completed"
    return entry


def read_backups(backups: Sequence[Mapping[str, Any]], backup: Backup, variables: Mapping[str, Any]) -> BackupsFound:
    """The completed Backups of the schedule a restore would read."""
    schedule = variables.get("schedule_name", backup.name)
    points = []
    for item in backups:
        status = item.get("status", {})
        if item.get("metadata", {}).get("labels", {}).get("velero.io/schedule-name") == schedule and \
                status.get("phase") == "Completed":
            finished = parse_time(status.get("completionTimestamp"))
            if finished:
                points.append(BackupPoint(id=item["metadata"]["name"], time=finished,
                                          size_bytes=int(status.get("progress", {}).get("totalItems", 0)),
                                          file_count=int(status.get("progress", {}).get("itemsBackedUp", 0))))
    return BackupsFound(points=tuple(points))


def _completed(manifest: Mapping[str, Any], now: str) -> dict[str, Any]:
    return {"phase": "Completed", "completionTimestamp": now}


TOOL = RestoreTool(
    name="velero", objects=objects, backup_waited_for=backup_waited_for, kinds=frozenset({(GROUP, "Restore")}),
    cluster_backups=ClusterBackups("velero", f"backups.{GROUP}", read_backups),
    completions={(GROUP, "Restore"): Completion("Velero", always("jsonpath={.status.phase}=Completed"),
                                                _completed)})
