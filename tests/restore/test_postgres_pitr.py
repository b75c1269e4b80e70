"""PostgreSQL point-in-time restore, for real: WAL archived by pgBackRest, destroy, restore to a time."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from dr.drill.sandbox_pg import PG_BIN, PgSandbox
from dr.errors import RestoreError
from dr.hosts.ansible import PlaybookError
from dr.hosts.host_steps import run_step
from dr.restore import pgbackrest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (PG_BIN / "postgres").exists() or shutil.which("pgbackrest") is None,
                                 reason="PostgreSQL 15 or pgBackRest is not installed (make system)")]


@pytest.fixture
def pg() -> Iterator[PgSandbox]:
    """A PostgreSQL 15 archiving its WAL with pgBackRest, all inside one directory owned by postgres."""
    sandbox = PgSandbox.create()
    try:
        yield sandbox
    finally:
        sandbox.destroy()


def restore_step(pg: PgSandbox, target_time: str) -> dict[str, object]:
    """The restore as the product runs it: a host-restore step of the resource plan."""
    inputs = {"step": "postgres-restore", "step_kind": "host-restore", "tool": "pgbackrest", "repo": str(pg.base / "repo"),
              "target_time": target_time, "hosts": ["all"],
              "vars": {"pgbackrest_config": str(pg.config), "pg_data": str(pg.data), "pg_port": pg.port,
                       "pg_socket_dir": str(pg.base)}}
    return run_step(inputs, hosts={}, secrets={})


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
    result = restore_step(pg, target)
    assert result["restored"] == chosen.id
    notes = pg.sql("SELECT string_agg(note, ',' ORDER BY id) FROM orders")
    assert notes == ",".join(f"before-{i}" for i in range(5))
    assert pg.sql("SELECT pg_is_in_recovery()") == "f"
    assert pgbackrest.verify(pg_socket_dir=pg.base, pg_port=pg.port, sql="SELECT count(*) FROM orders", minimum=5) == 5
    with pytest.raises(RestoreError, match="returned 5, expected at least 8"):
        pgbackrest.verify(pg_socket_dir=pg.base, pg_port=pg.port, sql="SELECT count(*) FROM orders", minimum=8)

    again = restore_step(pg, target)
    assert again["changed"] == 0, "a second run finds the database restored and running"


def test_non_empty_data_directory_is_refused_and_nothing_lost(pg: PgSandbox) -> None:
    stanza = pgbackrest.PgBackRestStanza(config=str(pg.config))
    stanza.run("stanza-create")
    stanza.run("--type=full", "backup")
    pg.sql("CREATE TABLE keep_me (x int)")
    with pytest.raises(PlaybookError, match="is not empty"):
        restore_step(pg, "latest")
    assert pg.sql("SELECT count(*) FROM pg_class WHERE relname = 'keep_me'") == "1"


def test_missing_backup_is_a_clear_error(pg: PgSandbox) -> None:
    stanza = pgbackrest.PgBackRestStanza(config=str(pg.config))
    stanza.run("stanza-create")
    with pytest.raises(RestoreError, match="nothing to restore: pgbackrest info says 'no valid backups'"):
        pgbackrest.choose_set(stanza, "latest")


def test_unknown_stanza_is_a_clear_error(pg: PgSandbox) -> None:
    with pytest.raises(RestoreError, match="pgbackrest"):
        pgbackrest.choose_set(pgbackrest.PgBackRestStanza(config=str(pg.config), stanza="nope"), "latest")
