"""Reads what each backup really holds, for `dr audit`: the I/O side of the audit.

Host-level tools are asked directly: `restic snapshots`, `pgbackrest info` and `repo-ls` of the WAL
archive, the etcd snapshot files. Kubernetes-level tools are read from their objects' status
(CloudNativePG `Cluster`, Longhorn `Backup`, Velero `Backup`), either from `kubectl get -o json`
or from a JSON file holding those lists (`--k8s-status`), which is also how the tests feed them.
Where a tool's location comes from: the restore step's `vars` for that backup, else the backup's repo.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dr.audit.checks import BackupState, CascadeView, ClusterInventory
from dr.core.invocations import etcd_snapshot_dir, restic_repository
from dr.core.restore_tools import TOOLS
from dr.core.spec import Backup, GraphSpec, RestoreAction
from dr.errors import RestoreError
from dr.restore import etcd, pgbackrest, restic

_WAL = re.compile(r"^[0-9A-F]{24}")


def restore_vars(spec: GraphSpec, backup: str) -> dict[str, Any]:
    for component in spec.components.values():
        if isinstance(component.action, RestoreAction) and component.action.backup == backup:
            return {"component": component.name, **dict(component.action.vars)}
    return {}


@dataclass(frozen=True)
class DrillHistory:
    """What the drill history says for the audit: only drills that rebuild the cluster's own path count
    (a sandbox drill rehearses dr on stand-ins)."""

    last_passed: dt.datetime | None = None
    proving: int = 0
    sandbox_only: int = 0
    problem: str = ""  # the history could not be read: said as a finding, never a pass


def drill_history(history_file: Path, cluster: str) -> DrillHistory:
    from dr.core.drill_report import PROVING_KINDS
    from dr.drill.history import History, HistoryDamaged

    if not history_file.is_file():
        return DrillHistory()
    try:
        with History(history_file) as history:
            entries = history.entries(cluster)
    except HistoryDamaged as exc:
        return DrillHistory(problem=str(exc))
    proving = [e for e in entries if e.kind in PROVING_KINDS]
    passed = [e.finished_at for e in proving if e.success]
    return DrillHistory(last_passed=dt.datetime.fromtimestamp(max(passed), tz=dt.UTC) if passed else None,
                        proving=len(proving), sandbox_only=len(entries) - len(proving))


def read_state(spec: GraphSpec, backup: Backup, *, secrets: Mapping[str, str],
               k8s: Mapping[str, list[dict[str, Any]]] | None) -> BackupState | None:
    """The state of one backup; None when dr cannot look (no access configured)."""
    # The same view of the backup a restore step has, so the audit reads what a restore would read.
    variables = restore_vars(spec, backup.name)
    if backup.tool in HOST_READERS:
        try:
            return HOST_READERS[backup.tool]({"repo": backup.repo, "vars": variables}, secrets)
        except RestoreError as exc:
            return BackupState(error=str(exc))
    cluster_backups = TOOLS[backup.tool].cluster_backups if backup.tool in TOOLS else None
    if cluster_backups is None:
        return None
    if k8s is None:
        # Not a pass: the audit could not look, and says so as a finding.
        return BackupState(error="no access to the cluster, so its backup objects could not be read; run where "
                                 "kubectl reaches the cluster or pass --k8s-status FILE")
    unavailable: Any = k8s.get("_unavailable", [])
    key = cluster_backups.key
    if key in unavailable:
        return BackupState(error=f"the cluster does not list its {key} backup objects (is the operator and its "
                                 "CRD installed, and may this user read them?)")
    try:
        found = cluster_backups.read(k8s.get(key, []), backup, variables)
    except LookupError as exc:
        return BackupState(error=str(exc))
    # WAL archiving that works restores up to now, not only to the last base backup.
    newest = dt.datetime.now(dt.UTC) if found.archiving else found.newest_restorable
    return BackupState(points=found.points, newest_restorable=newest)


def _restic_state(inputs: Mapping[str, Any], secrets: Mapping[str, str]) -> BackupState:
    password = secrets.get("restic_password")
    if not password:
        return BackupState(error="no restic password (set RESTIC_PASSWORD or pass --secrets)")
    repo = restic.ResticRepository(restic_repository(inputs), password, restic.s3_environment(secrets))
    return BackupState(points=tuple(s.point for s in restic.list_snapshots(repo)))


def _etcd_state(inputs: Mapping[str, Any], secrets: Mapping[str, str]) -> BackupState:
    return BackupState(points=tuple(etcd.list_snapshots(Path(etcd_snapshot_dir(inputs)))))


def _pgbackrest_state(inputs: Mapping[str, Any], secrets: Mapping[str, str]) -> BackupState:
    stanza = pgbackrest.stanza_for(inputs)
    try:
        points = tuple(pgbackrest.list_backups(stanza))
    except RestoreError as exc:
        if "no valid backups" not in str(exc):
            raise
        points = ()
    return BackupState(points=points, newest_restorable=newest_archived_wal(stanza))


# The host-level backups: read where the restore would read them (the repository, the snapshot directory).
HOST_READERS: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, str]], BackupState]] = {
    "restic": _restic_state, "etcd-snapshot": _etcd_state, "pgbackrest": _pgbackrest_state}


def newest_archived_wal(stanza: pgbackrest.PgBackRestStanza) -> dt.datetime | None:
    """When the newest WAL segment reached the repository (any repository type, via `repo-ls`)."""
    listing = json.loads(stanza.run("--output=json", "--recurse", "repo-ls", f"archive/{stanza.stanza}") or "{}")
    times = [entry.get("time", 0) for name, entry in listing.items()
             if entry.get("type") == "file" and _WAL.match(Path(name).name)]
    return dt.datetime.fromtimestamp(max(times), tz=dt.UTC) if times else None


# What the cascade check reads besides the claims: volumes, CRDs, and the GitOps objects that prune.
CASCADE_KINDS = {"pvs": "persistentvolumes", "crds": "customresourcedefinitions",
                 "kustomizations": "kustomizations.kustomize.toolkit.fluxcd.io"}
PRUNE_DISABLED = {"kustomize.toolkit.fluxcd.io/prune": "disabled"}


def k8s_status_from_kubectl(kubeconfig: str | None = None, *, kubectl: str = "kubectl"
                            ) -> dict[str, list[dict[str, Any]]] | None:
    """The status objects the audit reads, from the current kube context (or `kubeconfig`); None without
    kubectl or access."""
    if shutil.which(kubectl) is None:
        return None
    kinds = {"pvcs": "persistentvolumeclaims", **{t.cluster_backups.key: t.cluster_backups.resource
                                                  for t in TOOLS.values() if t.cluster_backups is not None},
             **CASCADE_KINDS}
    found: dict[str, list[dict[str, Any]]] = {}
    config = ["--kubeconfig", kubeconfig] if kubeconfig else []
    for key, resource in kinds.items():
        done = subprocess.run([kubectl, *config, "get", resource, "-A", "-o", "json"], capture_output=True,
                              text=True, check=False, timeout=60)
        if done.returncode != 0:
            if key == "pvcs":
                return None
            found[key] = []
            found.setdefault("_unavailable", []).append(key)  # type: ignore[arg-type]  # names, not objects
            continue
        found[key] = json.loads(done.stdout).get("items", [])
    return found


def inventory_from(k8s: Mapping[str, list[dict[str, Any]]] | None, host_paths: list[str]) -> ClusterInventory:
    if k8s is None:
        return ClusterInventory(host_paths=tuple(host_paths))
    def key(item: Mapping[str, Any]) -> str:
        meta = item.get("metadata", {})
        return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"
    return ClusterInventory(pvcs=tuple(sorted(key(p) for p in k8s.get("pvcs", []))),
                            databases=tuple(sorted(key(c) for c in k8s.get("cnpg", []))),
                            host_paths=tuple(host_paths), known=True)


def _data_groups() -> set[str]:
    """The API groups whose objects hold or restore data: every backup tool's, as the registry says."""
    groups = {group for tool in TOOLS.values() for group, _ in tool.kinds}
    groups |= {t.cluster_backups.resource.split(".", 1)[1] for t in TOOLS.values() if t.cluster_backups is not None}
    return groups


def _name(item: Mapping[str, Any]) -> tuple[str, str]:
    meta = item.get("metadata", {})
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def cascade_view(k8s: Mapping[str, list[dict[str, Any]]] | None) -> CascadeView | None:
    """What decides whether a cascade reaches data; None when the status holds no volumes or CRDs."""
    unavailable: Any = (k8s or {}).get("_unavailable", [])
    if k8s is None or any(key not in k8s or key in unavailable for key in ("pvs", "crds")):
        return None
    volumes = tuple(sorted(
        (str(pv["metadata"]["name"]), f"{ref.get('namespace', '')}/{ref.get('name', '')}",
         str(pv.get("spec", {}).get("persistentVolumeReclaimPolicy", "Delete")))
        for pv in k8s["pvs"] if (ref := pv.get("spec", {}).get("claimRef"))))
    groups = _data_groups()
    crds = tuple(sorted(
        (str(crd["metadata"]["name"]),
         crd["metadata"].get("annotations", {}).get("helm.sh/resource-policy") == "keep")
        for crd in k8s["crds"] if crd.get("spec", {}).get("group") in groups))
    live = {("PersistentVolumeClaim", *_name(p)): p for p in k8s.get("pvcs", [])}
    live.update({("Cluster", *_name(c)): c for c in k8s.get("cnpg", [])})
    pruned = []
    for ks in k8s.get("kustomizations", []):
        if not ks.get("spec", {}).get("prune"):
            continue
        owner = "Kustomization {}/{}".format(*_name(ks))
        for entry in ks.get("status", {}).get("inventory", {}).get("entries", []) or []:
            # Flux's inventory id: <namespace>_<name>_<group>_<kind> (Kubernetes names hold no "_").
            namespace, name, _group, kind = (*str(entry.get("id", "")).split("_"), "", "", "", "")[:4]
            obj = live.get((kind, namespace, name))
            annotations = (obj or {}).get("metadata", {}).get("annotations", {}) or {}
            if obj is not None and not PRUNE_DISABLED.items() <= annotations.items():
                pruned.append((owner, f"{kind} {namespace}/{name}"))
    return CascadeView(volumes=volumes, data_crds=crds, pruned=tuple(sorted(pruned)))
