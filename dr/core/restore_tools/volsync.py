"""VolSync: a ReplicationDestination (restic mover) that restores once into the claim the app mounts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dr.core.kube_objects import KubeObject, MissingInput, claim, labels, need
from dr.core.restore_tools.base import Completion, RestoreRequest, RestoreTool, SecretsRead, always

GROUP = "volsync.backube"
TRIGGER = "dr-restore"  # VolSync sets status.lastManualSync to this when the restore has run


def objects(request: RestoreRequest) -> list[KubeObject]:
    """`direct` (default) writes into that PVC, which dr creates; `populator` lets the app's own PVC
    (declared by GitOps with dataSourceRef to this object) be filled by VolSync's volume populator."""
    name, values = request.component, request.values
    pvc = need(values, "pvc", name, "the PersistentVolumeClaim the app mounts")
    method = str(values.get("copy_method", "direct"))
    if method not in ("direct", "populator"):
        raise MissingInput(f"component {name!r}: vars.copy_method must be direct or populator, not {method!r}")
    restic: dict[str, Any] = {"repository": str(values.get("repository_secret", f"{pvc}-volsync"))}
    if request.target_time != "latest":
        restic["restoreAsOf"] = request.target_time
    size = str(need(values, "size", name, "the size of the restored volume, like 5Gi"))
    extra = []
    if method == "direct":
        restic.update(destinationPVC=pvc, copyMethod="Direct")
        extra.append(claim(pvc, request.namespace, size, name, str(values.get("storage_class", ""))))
    else:
        restic.update(copyMethod="Snapshot", capacity=size, accessModes=["ReadWriteOnce"])
        if "storage_class" in values:
            restic["storageClassName"] = str(values["storage_class"])
        if "snapshot_class" in values:
            restic["volumeSnapshotClassName"] = str(values["snapshot_class"])
    destination = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ReplicationDestination",
                   "metadata": {"name": f"{pvc}-restore" if method == "direct" else pvc,
                                "namespace": request.namespace, "labels": labels(name)},
                   "spec": {"trigger": {"manual": TRIGGER}, "restic": restic}}
    return [KubeObject(manifest=destination, data_bearing=True), *extra]


def secrets_read(kind: str, spec: Mapping[str, Any]) -> SecretsRead:
    repository = spec.get("restic", {}).get("repository") if kind == "ReplicationDestination" else None
    return [(str(repository), {"RESTIC_REPOSITORY", "RESTIC_PASSWORD"})] if repository else []


def _synced(manifest: Mapping[str, Any], now: str) -> dict[str, Any]:
    return {"lastManualSync": str(manifest.get("spec", {}).get("trigger", {}).get("manual", TRIGGER))}


TOOL = RestoreTool(
    name="volsync", objects=objects, secrets_read=secrets_read, kinds=frozenset({(GROUP, "ReplicationDestination")}),
    completions={(GROUP, "ReplicationDestination"): Completion(
        "VolSync", always(f"jsonpath={{.status.lastManualSync}}={TRIGGER}"), _synced)})
