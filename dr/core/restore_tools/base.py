"""What every restore tool tells dr: the protocol of one backup tool.

A tool is one `RestoreTool` value in its own module; the registry (`dr.core.restore_tools`) lists
them. Host-level tools (restic, pgBackRest, etcd snapshots) restore through a playbook on the hosts;
the others through Kubernetes objects that dr creates and waits for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dr.core.backups import BackupPoint
from dr.core.kube_objects import KubeObject

if TYPE_CHECKING:
    from dr.core.spec import Backup

GroupKind = tuple[str, str]  # (API group, kind): two tools both name a kind `Restore`
SecretsRead = list[tuple[str, set[str]]]  # (Secret name, the keys read)


@dataclass(frozen=True)
class BackupsFound:
    """What a tool's backup objects in the cluster say: its restore points, and the newest moment it can
    restore to when that is later than the newest point (continuous WAL archiving)."""

    points: tuple[BackupPoint, ...] = ()
    newest_restorable: dt.datetime | None = None
    archiving: bool = False  # continuous archiving works: it restores up to now (the edge reads the clock)


@dataclass(frozen=True)
class ClusterBackups:
    """Where the audit finds a tool's backups in the cluster: the objects it lists (`kubectl get -A`),
    under which key of the `--k8s-status` file, and how it reads them (LookupError: not there)."""

    key: str
    resource: str  # plural.group, as kubectl lists them
    read: Callable[[Sequence[Mapping[str, Any]], Backup, Mapping[str, Any]], BackupsFound]


def parse_time(text: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None


@dataclass(frozen=True)
class RestoreRequest:
    """One restore step, as its tool renders it."""

    component: str
    backup: Backup
    target_time: str  # "latest" or an ISO time
    values: Mapping[str, Any]  # the step's vars (drill values merged in drill mode)
    namespace: str  # where the restored data lives
    mode: str  # prod | drill


@dataclass(frozen=True)
class Completion:
    """When a restore object is done, and who says so."""

    operator: str  # the operator that writes the status (named in notes: none runs in the sandbox)
    condition: Callable[[Mapping[str, Any]], str | None]  # `kubectl wait --for` / `pulumi.com/waitFor`, or None
    # The status a finished restore object has (the sandbox's stand-in operator writes it): (manifest, now).
    finished_status: Callable[[Mapping[str, Any], str], dict[str, Any]]


def always(condition: str) -> Callable[[Mapping[str, Any]], str | None]:
    return lambda manifest: condition


def _no_problem(repo: str) -> str | None:
    return None


def _no_objects(request: RestoreRequest) -> list[KubeObject]:
    return []


def _reads_no_secret(kind: str, spec: Mapping[str, Any]) -> SecretsRead:
    return []


def _waits_for_no_backup(kind: str, spec: Mapping[str, Any], namespace: str) -> dict[str, Any] | None:
    return None


@dataclass(frozen=True)
class RestoreTool:
    name: str  # the graph's `tool`
    host_level: bool = False
    playbook: str = ""  # host-level tools: the playbook that restores on the hosts
    repository_problem: Callable[[str], str | None] = _no_problem  # `repo` as the tool reads it
    objects: Callable[[RestoreRequest], list[KubeObject]] = _no_objects  # Kubernetes tools: what to create
    completions: Mapping[GroupKind, Completion] = field(default_factory=dict)
    # What a restore object of this tool reads before it can start: credential Secrets, synced backups.
    secrets_read: Callable[[str, Mapping[str, Any]], SecretsRead] = _reads_no_secret
    backup_waited_for: Callable[[str, Mapping[str, Any], str], dict[str, Any] | None] = _waits_for_no_backup
    kinds: frozenset[GroupKind] = frozenset()  # the kinds its restore objects have
    cluster_backups: ClusterBackups | None = None  # Kubernetes tools the audit can read in the cluster
    # Checks of the cluster's own objects this tool reads (a repository's backend), wherever dr sees one.
    object_checks: Mapping[GroupKind, Callable[[Mapping[str, Any]], list[str]]] = field(default_factory=dict)
