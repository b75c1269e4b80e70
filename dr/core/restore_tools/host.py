"""The host-level tools: their restores run on the hosts through a playbook (dr/restore picks the backup)."""

from __future__ import annotations

from dr.core.repositories import etcd_snapshot_problem, pgbackrest_problem, restic_problem
from dr.core.restore_tools.base import RestoreTool

ETCD_SNAPSHOT = RestoreTool(name="etcd-snapshot", host_level=True, playbook="etcd-restore.yml",
                            repository_problem=etcd_snapshot_problem)
RESTIC = RestoreTool(name="restic", host_level=True, playbook="volume-restore.yml", repository_problem=restic_problem)
PGBACKREST = RestoreTool(name="pgbackrest", host_level=True, playbook="postgres-pitr.yml",
                         repository_problem=pgbackrest_problem)
