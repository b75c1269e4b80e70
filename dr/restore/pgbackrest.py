"""pgBackRest restore driver: list backup sets, choose one for a target time, restore through
postgres-pitr.yml.

Talks to `pgbackrest` (info) as the PostgreSQL operating-system user, and to `dr.ansible` for the
restore itself. PostgreSQL refuses to run as root, so every command runs through `runuser`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dr.ansible import Inventory, PlaybookResult, ProgressCallback, run_playbook
from dr.errors import RestoreError
from dr.invocations import pgbackrest_extravars
from dr.restore.selection import BackupPoint, choose_backup


@dataclass(frozen=True)
class PgBackRestStanza:
    config: str
    stanza: str = "main"
    os_user: str = "postgres"

    def command(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.os_user, "--"] if os.geteuid() == 0 else []
        return [*prefix, "pgbackrest", f"--config={self.config}", f"--stanza={self.stanza}", *args]

    def run(self, *args: str, timeout: float = 600) -> str:
        try:
            done = subprocess.run(self.command(*args), capture_output=True, text=True, check=False, timeout=timeout)
        except FileNotFoundError:
            raise RestoreError("pgbackrest is not installed; run `make system` (Debian package pgbackrest)") from None
        if done.returncode != 0:
            detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise RestoreError(f"pgbackrest {args[-1]} (stanza {self.stanza}) failed: "
                               f"{detail[-1] if detail else 'exit ' + str(done.returncode)}")
        return done.stdout


def list_backups(stanza: PgBackRestStanza) -> list[BackupPoint]:
    """Backup sets, oldest first, timed by when each finished."""
    info: list[dict[str, Any]] = json.loads(stanza.run("--output=json", "info") or "[]")
    points = []
    for entry in info:
        if entry.get("name") != stanza.stanza:
            continue
        if entry.get("status", {}).get("code", 0) not in (0,) and not entry.get("backup"):
            raise RestoreError(f"stanza {stanza.stanza} has nothing to restore: pgbackrest info says "
                               f"{entry['status'].get('message', 'unusable')!r}")
        for backup in entry.get("backup", []):
            points.append(BackupPoint(
                id=backup["label"], time=dt.datetime.fromtimestamp(backup["timestamp"]["stop"], tz=dt.UTC),
                size_bytes=int(backup.get("info", {}).get("size", 0)), file_count=0))
    return sorted(points, key=lambda p: p.time)


def choose_set(stanza: PgBackRestStanza, target_time: str, *, allow_collapsed: bool = False) -> BackupPoint:
    return choose_backup(list_backups(stanza), target_time, allow_collapsed=allow_collapsed)


def restore(stanza: PgBackRestStanza, backup: BackupPoint, *, target_time: str, pg_data: Path, pg_port: int,
            pg_socket_dir: Path, inventory: Inventory, pg_bin: str = "/usr/lib/postgresql/15/bin",
            force: bool = False, progress: ProgressCallback | None = None) -> PlaybookResult:
    """Restore backup set `backup`, replay WAL to `target_time`, start and wait for promotion."""
    return run_playbook("postgres-pitr.yml", inventory=inventory, progress=progress, extravars=pgbackrest_extravars(
        config=stanza.config, stanza=stanza.stanza, backup_set=backup.id, target_time=target_time,
        pg_data=str(pg_data), pg_bin=pg_bin, pg_port=pg_port, pg_socket_dir=str(pg_socket_dir),
        os_user=stanza.os_user, force=force))


def verify(*, pg_socket_dir: Path, pg_port: int, sql: str, minimum: int, database: str = "postgres",
           os_user: str = "postgres", pg_bin: str = "/usr/lib/postgresql/15/bin") -> int:
    """Run a counting query on the restored server; RestoreError when it returns less than `minimum`."""
    prefix = ["runuser", "-u", os_user, "--"] if os.geteuid() == 0 else []
    done = subprocess.run([*prefix, f"{pg_bin}/psql", "-h", str(pg_socket_dir), "-p", str(pg_port), "-d", database,
                           "-v", "ON_ERROR_STOP=1", "-Atc", sql], capture_output=True, text=True, check=False,
                          timeout=120)
    if done.returncode != 0:
        raise RestoreError(f"verification query failed on the restored database: {done.stderr.strip()}")
    try:
        value = int(done.stdout.strip().splitlines()[0])
    except (ValueError, IndexError):
        raise RestoreError(f"verification query must return one number, got {done.stdout.strip()!r}") from None
    if value < minimum:
        raise RestoreError(f"verification failed: {sql!r} returned {value}, expected at least {minimum}")
    return value
