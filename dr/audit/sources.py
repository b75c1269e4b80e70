"""Reads what each backup really holds, for `dr audit`: the I/O side of the audit.

Host-level tools are asked directly: `restic snapshots`, `pgbackrest info` and `repo-ls` of the WAL
archive, the etcd snapshot files. Kubernetes-level tools are read from their objects' status
(CloudNativePG `Cluster`, Longhorn `Backup`, Velero `Backup`), either from `kubectl get -o json`
or from a JSON file holding those lists (`--k8s-status`), which is also how the tests feed them.
Where a tool's location comes from: the restore step's `vars` for that backup, else the backup's repo.

Every call that waits on a server (restic, pgBackRest, kubectl) has a timeout of its own (`Bound`) and
says what it waits for before it waits; a server that does not answer in time raises NoAnswer, which
the audit reports as "not checked", never as a pass and never as a hang.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dr.audit.checks import BackupState, CascadeView, ClusterInventory
from dr.core.durations import format_duration
from dr.core.invocations import etcd_snapshot_dir, restic_repository
from dr.core.restore_tools import TOOLS
from dr.core.spec import Backup, GraphSpec, RestoreAction
from dr.errors import NoAnswer, RestoreError
from dr.process_groups import run_bounded
from dr.restore import etcd, pgbackrest, restic

_WAL = re.compile(r"^[0-9A-F]{24}")


@dataclass(frozen=True)
class Bound:
    """How long one call to a server may wait for its answer, and where to say (stderr) what it waits for."""

    timeout_s: float = 120
    say: Callable[[str], None] = field(default=lambda _: None, repr=False, compare=False)


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
    passed: tuple[dt.datetime, ...] = ()  # when each proving drill that passed finished
    skipped: tuple[str, ...] = ()  # rows that cannot be a drill (an absurd time, torn JSON), and why


def drill_history(history_file: Path, cluster: str) -> DrillHistory:
    from dr.core.drill_report import PROVING_KINDS
    from dr.drill.history import History, HistoryDamaged

    if not history_file.is_file():
        return DrillHistory()
    try:
        with History(history_file) as history:
            entries, skipped = history.read(cluster)
    except HistoryDamaged as exc:
        return DrillHistory(problem=str(exc))
    proving = [e for e in entries if e.kind in PROVING_KINDS]
    passed = tuple(sorted(dt.datetime.fromtimestamp(e.finished_at, tz=dt.UTC) for e in proving if e.success))
    return DrillHistory(last_passed=passed[-1] if passed else None, proving=len(proving),
                        sandbox_only=len(entries) - len(proving), passed=passed, skipped=tuple(skipped))


def read_state(spec: GraphSpec, backup: Backup, *, secrets: Mapping[str, str],
               k8s: Mapping[str, list[dict[str, Any]]] | None, bound: Bound = Bound()) -> BackupState | None:
    """The state of one backup; None when dr cannot look (no access configured). NoAnswer when its
    repository's server did not answer within `bound`."""
    # The same view of the backup a restore step has, so the audit reads what a restore would read.
    variables = restore_vars(spec, backup.name)
    if backup.tool in HOST_READERS:
        try:
            return HOST_READERS[backup.tool]({"repo": backup.repo, "vars": variables}, secrets, bound)
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


def _restic_state(inputs: Mapping[str, Any], secrets: Mapping[str, str], bound: Bound = Bound()) -> BackupState:
    password = secrets.get("restic_password")
    if not password:
        return BackupState(error="no restic password (set RESTIC_PASSWORD or pass --secrets)")
    repo = restic.ResticRepository(restic_repository(inputs), password, restic.s3_environment(secrets),
                                   timeout_s=bound.timeout_s, say=bound.say)
    return BackupState(points=tuple(s.point for s in restic.list_snapshots(repo)))


def _etcd_state(inputs: Mapping[str, Any], secrets: Mapping[str, str], bound: Bound = Bound()) -> BackupState:
    return BackupState(points=tuple(etcd.list_snapshots(Path(etcd_snapshot_dir(inputs)))))  # local files


def _pgbackrest_state(inputs: Mapping[str, Any], secrets: Mapping[str, str], bound: Bound = Bound()
                      ) -> BackupState:
    stanza = dataclasses.replace(pgbackrest.stanza_for(inputs), timeout_s=bound.timeout_s, say=bound.say)
    try:
        points = tuple(pgbackrest.list_backups(stanza))
    except RestoreError as exc:
        if "no valid backups" not in str(exc):
            raise
        points = ()
    return BackupState(points=points, newest_restorable=newest_archived_wal(stanza))


# The host-level backups: read where the restore would read them (the repository, the snapshot directory).
HOST_READERS: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, str], Bound], BackupState]] = {
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


_NO_ANSWER = ("Client.Timeout", "context deadline exceeded", "i/o timeout", "TLS handshake timeout",
              "request canceled", "Timeout exceeded")


def _api_server(kubectl: str, config: list[str]) -> str:
    """The API server the kubeconfig points at, for messages (read locally, no request)."""
    try:
        done = run_bounded([kubectl, *config, "config", "view", "--minify", "-o",
                            "jsonpath={.clusters[0].cluster.server}"], timeout_s=30)
    except subprocess.TimeoutExpired:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def k8s_status_from_kubectl(kubeconfig: str | None = None, *, kubectl: str = "kubectl", bound: Bound = Bound()
                            ) -> dict[str, list[dict[str, Any]]] | None:
    """The status objects the audit reads, from the current kube context (or `kubeconfig`); None without
    kubectl or access; NoAnswer when the API server does not answer one request within `bound`."""
    if shutil.which(kubectl) is None:
        return None
    kinds = {"pvcs": "persistentvolumeclaims", **{t.cluster_backups.key: t.cluster_backups.resource
                                                  for t in TOOLS.values() if t.cluster_backups is not None},
             **CASCADE_KINDS}
    found: dict[str, list[dict[str, Any]]] = {}
    config = ["--kubeconfig", kubeconfig] if kubeconfig else []
    server = _api_server(kubectl, config)
    where = f"the API server {server}" if server else "the API server"
    for key, resource in kinds.items():
        bound.say(f"kubectl get {resource}: waiting for {where} (at most {format_duration(bound.timeout_s)})")
        argv = [kubectl, *config, f"--request-timeout={max(1, round(bound.timeout_s))}s", "get", resource, "-A",
                "-o", "json"]
        try:
            done = run_bounded(argv, timeout_s=bound.timeout_s + 5)  # kubectl's own timeout comes first
        except subprocess.TimeoutExpired:
            done = subprocess.CompletedProcess(argv, -1, "", "Timeout exceeded")
        if done.returncode != 0 and any(marker in done.stderr for marker in _NO_ANSWER):
            raise NoAnswer(f"{where} did not answer within {bound.timeout_s:g} s (kubectl get {resource})")
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
