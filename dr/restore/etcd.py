"""etcd-snapshot restore driver: list snapshot files, choose one, count keys after the restore.

Talks to `etcdctl` (snapshot status, key counts). The restore itself is etcd-restore.yml, run by
`dr.hosts.host_steps`. A
snapshot that fails `etcdctl snapshot status` is refused before any data directory is touched.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dr.core.backups import BackupPoint, choose_backup
from dr.core.invocations import ChosenBackup, etcd_snapshot_dir
from dr.errors import RestoreError


@dataclass(frozen=True)
class EtcdMember:
    name: str
    host: str
    address: str
    peer_port: int
    client_port: int
    data_dir: str


def _etcdctl(*args: str) -> str:
    try:
        done = subprocess.run(["etcdctl", *args], capture_output=True, text=True, check=False, timeout=120,
                              env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin:/usr/local/bin"})
    except FileNotFoundError:
        raise RestoreError("etcdctl is not installed; run `make system` (Debian package etcd-client)") from None
    if done.returncode != 0:
        raise RestoreError(f"etcdctl {args[0]} {args[1] if len(args) > 1 else ''} failed: "
                           f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no output'}")
    return done.stdout


def snapshot_point(path: Path) -> BackupPoint:
    """Time (file mtime), size and key count of one snapshot file; RestoreError if it is damaged."""
    try:
        status = json.loads(_etcdctl("snapshot", "status", str(path), "-w", "json"))
    except RestoreError as exc:
        raise RestoreError(f"snapshot {path} is damaged or not an etcd snapshot: {exc}") from None
    return BackupPoint(id=str(path), time=dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC),
                       size_bytes=int(status.get("totalSize", path.stat().st_size)),
                       file_count=int(status.get("totalKey", 0)))


def list_snapshots(directory: Path) -> list[BackupPoint]:
    if not directory.is_dir():
        raise RestoreError(f"snapshot directory {directory} does not exist; check the backup's repo")
    return sorted((snapshot_point(p) for p in directory.glob("*.db")), key=lambda p: p.time)


def choose_snapshot(directory: Path, target_time: str, *, allow_collapsed: bool = False) -> BackupPoint:
    return choose_backup(list_snapshots(directory), target_time, allow_collapsed=allow_collapsed)


def choose(inputs: Mapping[str, Any], secrets: Mapping[str, str]) -> tuple[ChosenBackup, BackupPoint]:
    """Pick the snapshot file for the step's target time; a damaged one is refused before any data is touched."""
    point = choose_snapshot(Path(etcd_snapshot_dir(inputs)), str(inputs.get("target_time", "latest")),
                            allow_collapsed=bool(inputs.get("allow_collapsed", False)))
    snapshot_point(Path(point.id))
    return ChosenBackup(id=point.id), point


def key_count(members: Sequence[EtcdMember], prefix: str = "") -> int:
    endpoints = ",".join(f"http://{m.address}:{m.client_port}" for m in members)
    # etcdctl 3.4 has no --count-only; a range with limit 1 still reports the total count.
    scope = ["--prefix"] if prefix else ["--from-key"]
    out = json.loads(_etcdctl("--endpoints", endpoints, "get", prefix, *scope, "--keys-only", "--limit", "1",
                              "-w", "json"))
    return int(out.get("count", 0))
