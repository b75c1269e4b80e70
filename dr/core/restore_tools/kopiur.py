"""kopiur (kopia-based): a `Restore` from a snapshot of a SnapshotPolicy (or a raw kopia identity) into the
claim the app mounts.

The graph's `repo` names the kopiur repository object the snapshots live in, as kopiur's own references
do: `kopiur:ClusterRepository/<name>` or `kopiur:Repository/<namespace>/<name>`. That object (its backend:
bucket, endpoint, prefix) is the cluster's, usually installed by GitOps; `backend_problems` checks its
object-store fields as kopiur reads them wherever dr sees one.

Two targets, like VolSync: `pvc` (default) has kopiur create the claim and fill it, and dr waits for the
Restore's phase `Completed` before the app starts; `populator` leaves the claim to the app (GitOps declares
it with `dataSourceRef` naming this Restore), which stays Pending until kopiur filled it: Kubernetes itself
then keeps the app from starting on an empty volume, so dr does not wait (the Restore is passive until a
claim takes it). A restore dr creates fails when no snapshot matches (`onMissingSnapshot: Fail`): an
explicit restore must never provision an empty volume instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dr.core.backups import BackupPoint
from dr.core.kube_names import is_label
from dr.core.kube_objects import KubeObject, MissingInput, labels, need
from dr.core.restore_tools.base import BackupsFound, ClusterBackups, Completion, RestoreRequest, RestoreTool, parse_time

if TYPE_CHECKING:
    from dr.core.spec import Backup

GROUP = "kopiur.home-operations.com"
API_VERSION = f"{GROUP}/v1alpha1"
WRITTEN = "kopiur:ClusterRepository/<name> or kopiur:Repository/<namespace>/<name>"


def repository_ref(repo: str) -> dict[str, str]:
    """kopiur's `repository` reference for the graph's `repo` (checked by `repository_problem` first)."""
    parts = repo.removeprefix("kopiur:").split("/")
    if parts[0] == "ClusterRepository":
        return {"kind": "ClusterRepository", "name": parts[1]}
    return {"kind": "Repository", "namespace": parts[1], "name": parts[2]}


def repository_problem(repo: str) -> str | None:
    if not repo.startswith("kopiur:"):
        return f"{repo!r} is not a kopiur repository: write {WRITTEN} (the object that holds the backend)"
    parts = repo.removeprefix("kopiur:").split("/")
    shapes = {"ClusterRepository": 2, "Repository": 3}
    if parts[0] not in shapes or len(parts) != shapes[parts[0]]:
        return f"{repo!r}: write {WRITTEN}"
    bad = [p for p in parts[1:] if not is_label(p)]
    if bad:
        return f"{repo!r}: {bad[0]!r} is not a Kubernetes object name (lower-case letters, digits and '-')"
    return None


def _source(request: RestoreRequest) -> dict[str, Any]:
    """A raw kopia identity when the step names one (the SnapshotPolicy is not there yet in a rebuild
    that restores before GitOps installs the app), else the app's SnapshotPolicy."""
    values = request.values
    as_of = {"asOf": request.target_time} if request.target_time != "latest" else {}
    if "kopia_username" in values or "kopia_hostname" in values:
        identity = {"username": str(need(values, "kopia_username", request.component, "the kopia identity's user")),
                    "hostname": str(need(values, "kopia_hostname", request.component, "the kopia identity's host"))}
        if "kopia_source_path" in values:
            identity["sourcePath"] = str(values["kopia_source_path"])
        return {"identity": {**identity, **as_of}}
    pvc = str(values["pvc"])
    return {"fromPolicy": {"name": str(values.get("policy", pvc)), **as_of}}


def objects(request: RestoreRequest) -> list[KubeObject]:
    name, values = request.component, request.values
    pvc = str(need(values, "pvc", name, "the PersistentVolumeClaim the app mounts"))
    method = str(values.get("target", "pvc"))
    if method not in ("pvc", "populator"):
        raise MissingInput(f"component {name!r}: vars.target must be pvc or populator, not {method!r}")
    target: dict[str, Any] = {"populator": {}}
    if method == "pvc":
        claim: dict[str, Any] = {"name": pvc, "accessModes": ["ReadWriteOnce"],
                                 "capacity": str(need(values, "size", name, "the size of the restored volume"))}
        if "storage_class" in values:
            claim["storageClassName"] = str(values["storage_class"])
        target = {"pvc": claim}
    policy: dict[str, Any] = {"onMissingSnapshot": "Fail"}
    if "wait_timeout" in values:
        policy["waitTimeout"] = str(values["wait_timeout"])
    restore_name = str(values.get("restore_name", pvc if method == "populator" else f"{pvc}-restore"))
    manifest = {"apiVersion": API_VERSION, "kind": "Restore",
                "metadata": {"name": restore_name,
                             "namespace": request.namespace, "labels": labels(name)},
                "spec": {"repository": repository_ref(request.backup.repo), "source": _source(request),
                         "target": target, "policy": policy}}
    return [KubeObject(manifest=manifest, data_bearing=True)]


def read_backups(snapshots: Sequence[Mapping[str, Any]], backup: Backup, variables: Mapping[str, Any]) -> BackupsFound:
    """The succeeded Snapshots of the SnapshotPolicy the restore reads (in the restore's namespace). A
    snapshot that could not read some files (`stats.filesFailed`) is incomplete: not a restore point."""
    policy, namespace = str(variables.get("policy", variables.get("pvc", ""))), variables.get("namespace")
    points = []
    for item in snapshots:
        ref, status = item.get("spec", {}).get("policyRef") or {}, item.get("status", {})
        meta = item.get("metadata", {})
        if ref.get("name") != policy or (namespace is not None and meta.get("namespace") != namespace):
            continue
        stats = status.get("stats", {})
        finished = parse_time(status.get("timing", {}).get("endTime"))
        if status.get("phase") == "Succeeded" and finished and not stats.get("filesFailed"):
            files = sum(int(stats.get(k, 0) or 0) for k in ("filesNew", "filesModified", "filesUnchanged"))
            points.append(BackupPoint(id=str(status.get("snapshot", {}).get("kopiaSnapshotID") or meta.get("name")),
                                      time=finished, size_bytes=int(stats.get("sizeBytes", 0) or 0), file_count=files))
    return BackupsFound(points=tuple(points))


def _condition(manifest: Mapping[str, Any]) -> str | None:
    passive = "populator" in manifest.get("spec", {}).get("target", {})
    return None if passive else "jsonpath={.status.phase}=Completed"


def _completed(manifest: Mapping[str, Any], now: str) -> dict[str, Any]:
    return {"phase": "Completed", "timing": {"endTime": now}}


def backend_problems(manifest: Mapping[str, Any]) -> list[str]:
    """A kopiur Repository/ClusterRepository's object-store fields as kopiur reads them: a bare bucket
    (no scheme, no path: the path is `prefix`), an endpoint that is a host (kopiur adds the scheme)."""
    backend = manifest.get("spec", {}).get("backend", {})
    title = f"{manifest.get('kind')} {manifest.get('metadata', {}).get('name', '')!r}"
    problems = []
    for store in ("s3", "gcs", "b2"):
        bucket = str(backend.get(store, {}).get("bucket", "") or "")
        if "://" in bucket or "/" in bucket:
            problems.append(f"{title}: backend.{store}.bucket {bucket!r} must be the bucket's name alone; "
                            f"put the path in backend.{store}.prefix")
    host = str(backend.get("s3", {}).get("endpoint", "") or "")
    if "://" in host or "/" in host:
        problems.append(f"{title}: backend.s3.endpoint {host!r} is a host (and port), like s3.example.com:9000, "
                        "without a scheme or a path")
    return problems


TOOL = RestoreTool(
    name="kopiur", repository_problem=repository_problem, objects=objects, kinds=frozenset({(GROUP, "Restore")}),
    completions={(GROUP, "Restore"): Completion("kopiur", _condition, _completed)},
    cluster_backups=ClusterBackups("kopiur", f"snapshots.{GROUP}", read_backups),
    object_checks={(GROUP, "Repository"): backend_problems, (GROUP, "ClusterRepository"): backend_problems})
