"""pgBackRest restore driver: list backup sets, choose one for a target time, restore through
postgres-pitr.yml.

Talks to `pgbackrest` (info) as the PostgreSQL operating-system user, and to `dr.hosts.ansible` for the
restore itself (postgres-pitr.yml, run by `dr.hosts.host_steps`). PostgreSQL refuses to run as root,
so every command runs through `runuser` (`dr.core.invocations.run_as`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dr.core.backups import BackupPoint, choose_backup
from dr.core.durations import format_duration
from dr.core.invocations import PGBACKREST_DEFAULTS, ChosenBackup, pgbackrest_settings, run_as
from dr.errors import NoAnswer, RestoreError
from dr.process_groups import run_bounded


@dataclass(frozen=True)
class PgBackRestStanza:
    config: str
    stanza: str = "main"
    os_user: str = "postgres"
    timeout_s: float = 600  # one pgbackrest call; past it the call is stopped (NoAnswer)
    say: Callable[[str], None] | None = field(default=None, repr=False, compare=False)  # a line before each wait

    def command(self, *args: str) -> list[str]:
        return run_as(self.os_user, ["pgbackrest", f"--config={self.config}", f"--stanza={self.stanza}", *args],
                      am_root=os.geteuid() == 0)

    def run(self, *args: str) -> str:
        if self.say is not None:
            self.say(f"pgbackrest {args[-1]} (stanza {self.stanza}): waiting for its repository (at most "
                     f"{format_duration(self.timeout_s)})")
        try:
            done = run_bounded(self.command(*args), timeout_s=self.timeout_s)
        except FileNotFoundError:
            raise RestoreError("pgbackrest is not installed; run `make system` (Debian package pgbackrest)") from None
        except subprocess.TimeoutExpired:
            raise NoAnswer(f"the pgBackRest repository of stanza {self.stanza} ({self.config}) did not answer "
                           f"within {self.timeout_s:g} s (pgbackrest {args[-1]})") from None
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


def stanza_for(inputs: Mapping[str, Any]) -> PgBackRestStanza:
    pg = pgbackrest_settings(inputs.get("vars", {}))
    return PgBackRestStanza(config=pg.config, stanza=pg.stanza, os_user=pg.os_user)


def choose(inputs: Mapping[str, Any], secrets: Mapping[str, str]) -> tuple[ChosenBackup, BackupPoint]:
    """Pick the newest backup set before the step's target time."""
    point = choose_set(stanza_for(inputs), str(inputs.get("target_time", "latest")),
                       allow_collapsed=bool(inputs.get("allow_collapsed", False)))
    return ChosenBackup(id=point.id), point


def verify(*, pg_socket_dir: Path, pg_port: int, sql: str, minimum: int, database: str = "postgres",
           os_user: str = PGBACKREST_DEFAULTS["pg_os_user"], pg_bin: str = PGBACKREST_DEFAULTS["pg_bin"]) -> int:
    """Run a counting query on the restored server; RestoreError when it returns less than `minimum`."""
    argv = run_as(os_user, [f"{pg_bin}/psql", "-h", str(pg_socket_dir), "-p", str(pg_port), "-d", database,
                            "-v", "ON_ERROR_STOP=1", "-Atc", sql], am_root=os.geteuid() == 0)
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RestoreError(f"verification query failed on the restored database: {done.stderr.strip()}")
    try:
        value = int(done.stdout.strip().splitlines()[0])
    except (ValueError, IndexError):
        raise RestoreError(f"verification query must return one number, got {done.stdout.strip()!r}") from None
    if value < minimum:
        raise RestoreError(f"verification failed: {sql!r} returned {value}, expected at least {minimum}")
    return value
