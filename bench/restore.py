"""Benchmark: how fast the host-level restores are, measured as ratios in one run.

1. restic restore of a tree against `cp -a` of the same tree (both into fresh directories);
2. PostgreSQL point-in-time restore: seconds per GB of WAL replayed (pgBackRest restore + replay);
3. ansible-runner's overhead: volume-restore.yml through dr's runner against running the same
   restic restore and `mv` directly.

    .venv/bin/python bench/restore.py [--tree-mb 200] [--wal-mb 256]

Needs restic, PostgreSQL 15 and pgBackRest (make system); runs everything in temporary directories
on this machine and leaves no process behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dr.drill.sandbox_pg import PgSandbox
from dr.hosts.host_steps import run_step
from dr.restore import pgbackrest, restic


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def make_tree(root: Path, total_mb: int) -> None:
    root.mkdir(parents=True)
    for i in range(total_mb * 4):  # 256 KiB files in 64 directories
        directory = root / f"d{i % 64:02d}"
        directory.mkdir(exist_ok=True)
        (directory / f"f{i:05d}.bin").write_bytes(os.urandom(256 * 1024))


def bench_restic(work: Path, tree_mb: int) -> None:
    source = work / "tree"
    make_tree(source, tree_mb)
    repo = restic.ResticRepository(str(work / "repo"), "bench-password")
    repo.run("init")
    repo.run("backup", str(source))
    snapshot = restic.choose_snapshot(restic.list_snapshots(repo), "latest", allow_collapsed=False)
    subprocess.run(["sync"], check=True)

    t_cp = min(timed(lambda i=i: subprocess.run(["cp", "-a", str(source), str(work / f"cp-{i}")], check=True))
               for i in range(3))
    t_restic = min(timed(lambda i=i: repo.run("restore", snapshot.point.id, "--target", str(work / f"r-{i}")))
                   for i in range(3))
    print(f"restic restore of {tree_mb} MB ({tree_mb * 4} files): {t_restic:.2f} s; cp -a: {t_cp:.2f} s; "
          f"ratio restic / cp -a = {t_restic / t_cp:.1f}")

    def direct() -> None:
        staging = work / "direct.staging"
        repo.run("restore", snapshot.point.id, "--target", str(staging))
        (staging / snapshot.source_path.lstrip("/")).rename(work / "direct")
        shutil.rmtree(staging)

    def through_ansible() -> None:
        run_step({"step": "bench", "step_kind": "host-restore", "tool": "restic", "repo": repo.repository,
                  "hosts": ["all"], "vars": {"restore_path": str(work / "playbook")}},
                 hosts={}, secrets={"restic_password": repo.password})

    t_direct = timed(direct)
    t_ansible = timed(through_ansible)
    print(f"volume-restore.yml through ansible-runner: {t_ansible:.2f} s; same commands directly: "
          f"{t_direct:.2f} s; overhead {t_ansible - t_direct:.2f} s per playbook run "
          f"(ratio {t_ansible / t_direct:.2f})")


def bench_postgres(wal_mb: int) -> None:
    pg = PgSandbox.create()
    try:
        stanza = pgbackrest.PgBackRestStanza(config=str(pg.config))
        stanza.run("stanza-create")
        stanza.run("--type=full", "backup")
        start_lsn = pg.sql("SELECT pg_current_wal_lsn()")
        rows = wal_mb * 1024 * 1024 // 1200  # about 1.2 kB of WAL per row with this payload
        pg.sql("CREATE TABLE filler (id bigserial, payload text)")
        pg.sql(f"INSERT INTO filler (payload) SELECT repeat(md5(g::text), 30) FROM generate_series(1, {rows}) g")
        wal_bytes = int(pg.sql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{start_lsn}')"))
        pg.sql("SELECT pg_switch_wal()")
        stanza.run("check")
        pg.stop()
        shutil.rmtree(pg.data)
        step = {"step": "bench", "step_kind": "host-restore", "tool": "pgbackrest", "repo": str(pg.base / "repo"),
                "hosts": ["all"],
                "vars": {"pgbackrest_config": str(pg.config), "pg_data": str(pg.data), "pg_port": pg.port,
                         "pg_socket_dir": str(pg.base)}}
        seconds = timed(lambda: run_step(step, hosts={}, secrets={}))
        restored = int(pg.sql("SELECT count(*) FROM filler"))
        assert restored == rows, f"restored {restored} rows, expected {rows}"
        gigabytes = wal_bytes / 1e9
        print(f"PostgreSQL restore replaying {wal_bytes / 1e6:.0f} MB of WAL: {seconds:.1f} s "
              f"= {seconds / gigabytes:.0f} s per GB of WAL (includes the playbook, the base backup copy and "
              "server start)")
    finally:
        pg.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree-mb", type=int, default=200)
    parser.add_argument("--wal-mb", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dr-bench-") as tmp:
        bench_restic(Path(tmp), args.tree_mb)
    bench_postgres(args.wal_mb)


if __name__ == "__main__":
    main()
