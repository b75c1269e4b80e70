"""PostgreSQL point-in-time restore, for real: WAL archived by pgBackRest, destroy, restore to a time."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dr.ansible import Inventory, PlaybookError
from dr.errors import RestoreError
from dr.restore import pgbackrest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (PG_BIN / "postgres").exists() or shutil.which("pgbackrest") is None,
                                 reason="PostgreSQL 15 or pgBackRest is not installed (make system)")]


def as_postgres(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *args], capture_output=True, text=True, check=check, timeout=300)


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

    def sql(self, statement: str) -> str:
        done = as_postgres(str(PG_BIN / "psql"), "-h", str(self.base), "-p", str(self.port), "-d", "postgres",
                           "-v", "ON_ERROR_STOP=1", "-Atc", statement)
        return done.stdout.strip()

    def stop(self) -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False)


@pytest.fixture
def pg() -> Iterator[PgSandbox]:
    """A PostgreSQL 15 archiving its WAL with pgBackRest, all inside one directory owned by postgres."""
    base = Path(tempfile.mkdtemp(prefix="dr-pg-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sandbox = PgSandbox(base=base, port=port)
    for sub in ("repo", "lock", "log", "spool"):
        (base / sub).mkdir()
    sandbox.config.write_text(
        "[global]\n"
        f"repo1-path={base}/repo\nrepo1-retention-full=2\nlock-path={base}/lock\nlog-path={base}/log\n"
        f"spool-path={base}/spool\nstart-fast=y\nlog-level-console=warn\n"
        "[main]\n"
        f"pg1-path={sandbox.data}\npg1-port={port}\npg1-socket-path={base}\n")
    shutil.chown(base, "postgres", "postgres")
    for path in base.rglob("*"):
        shutil.chown(path, "postgres", "postgres")
    as_postgres(str(PG_BIN / "initdb"), "-D", str(sandbox.data), "-A", "trust", "-U", "postgres")
    with (sandbox.data / "postgresql.conf").open("a") as conf:
        conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{base}'\n"
                   "wal_level = replica\narchive_mode = on\n"
                   f"archive_command = 'pgbackrest --config={sandbox.config} --stanza=main archive-push %p'\n")
    as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(sandbox.data), "-l", str(base / "pg.log"), "-w", "start")
    try:
        yield sandbox
    finally:
        sandbox.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_restore_to_a_time_keeps_exactly_the_rows_committed_before_it(pg: PgSandbox) -> None:
    stanza = pgbackrest.PgBackRestStanza(config=str(pg.config))
    stanza.run("stanza-create")
    pg.sql("CREATE TABLE orders (id serial PRIMARY KEY, note text, at timestamptz DEFAULT clock_timestamp())")
    stanza.run("--type=full", "backup")
    for i in range(5):
        pg.sql(f"INSERT INTO orders (note) VALUES ('before-{i}')")
    time.sleep(1.1)
    target = pg.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    time.sleep(1.1)
    for i in range(3):
        pg.sql(f"INSERT INTO orders (note) VALUES ('after-{i}')")
    pg.sql("SELECT pg_switch_wal()")
    stanza.run("check")  # waits until the switched WAL segment is in the repository
    pg.stop()
    shutil.rmtree(pg.data)  # the disaster

    chosen = pgbackrest.choose_set(stanza, target)
    result = pgbackrest.restore(stanza, chosen, target_time=target, pg_data=pg.data, pg_port=pg.port,
                                pg_socket_dir=pg.base, inventory=Inventory.local())
    assert result.ok
    notes = pg.sql("SELECT string_agg(note, ',' ORDER BY id) FROM orders")
    assert notes == ",".join(f"before-{i}" for i in range(5))
    assert pg.sql("SELECT pg_is_in_recovery()") == "f"

    again = pgbackrest.restore(stanza, chosen, target_time=target, pg_data=pg.data, pg_port=pg.port,
                               pg_socket_dir=pg.base, inventory=Inventory.local())
    assert again.changed == 0, "a second run finds the database restored and running"


def test_non_empty_data_directory_is_refused_and_nothing_lost(pg: PgSandbox) -> None:
    stanza = pgbackrest.PgBackRestStanza(config=str(pg.config))
    stanza.run("stanza-create")
    stanza.run("--type=full", "backup")
    pg.sql("CREATE TABLE keep_me (x int)")
    chosen = pgbackrest.choose_set(stanza, "latest")
    with pytest.raises(PlaybookError, match="is not empty"):
        pgbackrest.restore(stanza, chosen, target_time="latest", pg_data=pg.data, pg_port=pg.port,
                           pg_socket_dir=pg.base, inventory=Inventory.local())
    assert pg.sql("SELECT count(*) FROM pg_class WHERE relname = 'keep_me'") == "1"


def test_missing_backup_is_a_clear_error(pg: PgSandbox) -> None:
    stanza = pgbackrest.PgBackRestStanza(config=str(pg.config))
    stanza.run("stanza-create")
    with pytest.raises(RestoreError, match="nothing to restore: pgbackrest info says 'no valid backups'"):
        pgbackrest.choose_set(stanza, "latest")


def test_unknown_stanza_is_a_clear_error(pg: PgSandbox) -> None:
    with pytest.raises(RestoreError, match="pgbackrest"):
        pgbackrest.choose_set(pgbackrest.PgBackRestStanza(config=str(pg.config), stanza="nope"), "latest")
