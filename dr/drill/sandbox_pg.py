"""A throwaway PostgreSQL 15 whose WAL pgBackRest archives, all inside one directory.

Used by sandbox drills, tests and benchmarks to build a small "production" database on this machine.
PostgreSQL refuses to run as root, so everything runs as the `postgres` user (through `runuser` when
dr runs as root) in a directory that user owns; nothing listens beyond 127.0.0.1 and a socket in
that directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dr import process_tree
from dr.core.invocations import PGBACKREST_DEFAULTS, run_as
from dr.kube.sandbox_cluster import free_port

PG_BIN = Path(PGBACKREST_DEFAULTS["pg_bin"])


def postgres_argv(*args: str) -> list[str]:
    return run_as("postgres", args, am_root=os.geteuid() == 0)


def as_postgres(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(postgres_argv(*args), capture_output=True, text=True, check=check, timeout=timeout)



@dataclass
class PgSandbox:
    base: Path
    port: int

    @property
    def data(self) -> Path:
        return self.base / "pgdata"

    @property
    def config(self) -> Path:
        return self.base / "pgbackrest.conf"

    @classmethod
    def create(cls, *, parent: Path | None = None, repository: Mapping[str, str] | None = None) -> PgSandbox:
        """initdb, WAL archiving to a pgBackRest repository, start. The repository is a directory beside
        the data unless `repository` gives pgBackRest's repo1-* options (an S3 bucket, say)."""
        base = Path(tempfile.mkdtemp(prefix="dr-pg-", dir=parent))
        sandbox = cls(base=base, port=free_port())
        try:
            sandbox._initialise(repository)
        except BaseException:
            # A crash or Ctrl-C while building must not leak a running server or 55 MB of data directory.
            sandbox.destroy()
            raise
        return sandbox

    def _initialise(self, repository: Mapping[str, str] | None) -> None:
        sandbox, base = self, self.base
        for sub in ("repo", "lock", "log", "spool"):
            (base / sub).mkdir()
        repo = "".join(f"{key}={value}\n" for key, value in (repository or {"repo1-path": f"{base}/repo"}).items())
        sandbox.config.write_text(
            "[global]\n"
            f"{repo}repo1-retention-full=2\nlock-path={base}/lock\nlog-path={base}/log\n"
            f"spool-path={base}/spool\nstart-fast=y\nlog-level-console=warn\n"
            "[main]\n"
            f"pg1-path={sandbox.data}\npg1-port={sandbox.port}\npg1-socket-path={base}\n")
        for path in [base, *base.rglob("*")]:
            shutil.chown(path, "postgres", "postgres")
        as_postgres(str(PG_BIN / "initdb"), "-D", str(sandbox.data), "-A", "trust", "-U", "postgres")
        with (sandbox.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {sandbox.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{base}'\nwal_level = replica\narchive_mode = on\n"
                       f"archive_command = 'pgbackrest --config={sandbox.config} --stanza=main archive-push %p'\n")
        sandbox.start()

    def start(self) -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "pg.log"), "-w", "start")

    def sql(self, statement: str) -> str:
        done = as_postgres(str(PG_BIN / "psql"), "-h", str(self.base), "-p", str(self.port), "-d", "postgres",
                           "-v", "ON_ERROR_STOP=1", "-Atc", statement)
        return done.stdout.strip()

    def postmaster(self) -> int | None:
        """The server's pid from its `postmaster.pid`, while that file exists."""
        try:
            first = (self.data / "postmaster.pid").read_text(encoding="ascii", errors="replace").split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the server now (immediate mode), waiting at most 15 s. A server that already died is not
        waited for: after a stop signal the postmaster may be a zombie that dr, as subreaper, inherited, and
        `pg_ctl stop` took it for running and waited its full minute."""
        pid = self.postmaster()
        if pid is not None and not process_tree.alive((pid, None)):
            process_tree.reap([pid])
            return
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-t", "15", "stop", check=False,
                    timeout=30)
        if pid is not None:
            process_tree.reap([pid])

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
