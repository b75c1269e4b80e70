"""The sandbox drill end to end, for real: production, backups, disaster, rebuild, checks, reports."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.conftest import EXAMPLE_GRAPH, REPO

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(any(shutil.which(p) is None for p in ("etcd", "restic", "pgbackrest")),
                                 reason="etcd, restic and pgBackRest are needed (make system)")]

HOST_STEPS = ["etcd", "nfs-volumes-restore", "registry-images-restore", "postgres-host", "nfs-exports"]


def dr_command() -> list[str]:
    binary = REPO / ".venv" / "bin" / "dr"
    return [str(binary)] if binary.exists() else ["dr"]


def sandbox_processes(state_dir: Path) -> list[str]:
    """Processes whose command line mentions this drill's directories (etcd members, PostgreSQL): the
    state dir, or a PostgreSQL directory one of its drills recorded (other drills' are not ours)."""
    pg_bases = set()
    for state_file in state_dir.glob("drills/*/state.json"):
        with contextlib.suppress(OSError, ValueError):
            base = json.loads(state_file.read_text()).get("pg_base")
            if base:
                pg_bases.add(str(base))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if "State:\tZ" in status:
            continue
        if str(state_dir) in cmdline or any(base in cmdline for base in pg_bases):
            found.append(cmdline.strip())
    return found


def marked_processes(case: str) -> list[int]:
    """Processes that carry a drill's marker (dr.reaper) and descend from this test's dr (`DR_TEST_CASE`,
    which every descendant inherits too): whatever the drill started, setsid or not."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                environ = (entry / "environ").read_bytes().split(b"\0")
                if f"DR_TEST_CASE={case}".encode() in environ and any(v.startswith(b"DR_RUN=") for v in environ):
                    found.append(int(entry.name))
    return found


def run_drill(state_dir: Path, *extra: str, graph: Path = EXAMPLE_GRAPH) -> subprocess.CompletedProcess[str]:
    # Relative --state-dir, as `make demo` passes it: run from its parent directory.
    return subprocess.run([*dr_command(), "drill", "--sandbox", "--graph", str(graph), "--state-dir", state_dir.name,
                           *extra], capture_output=True, text=True, timeout=900, cwd=state_dir.parent, check=False)


def only_report(state_dir: Path) -> Path:
    (report_dir,) = list((state_dir / "reports").iterdir())
    return report_dir


def test_sandbox_drill_passes_with_measured_rto_and_rpo(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    process = subprocess.Popen([*dr_command(), "drill", "--sandbox", "--graph", str(EXAMPLE_GRAPH), "--state-dir",
                                state_dir.name], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    canary = ""
    while process.poll() is None and not canary:  # the throwaway password exists only while the drill runs
        for secrets_file in state_dir.glob("drills/*/secrets"):
            canary = secrets_file.read_text().strip()
        time.sleep(0.05)
    out, err = process.communicate(timeout=900)
    done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED" in done.stdout and "report: " in done.stdout
    report_dir = only_report(state_dir)
    report = json.loads((report_dir / "report.json").read_text())
    assert report["success"] is True
    assert 0 < report["rto_s"] < report["rto_target_s"]
    rpo = {r["backup"]: r for r in report["rpo"]}
    assert set(rpo) == {"etcd-snapshots", "host-postgres", "nfs-volumes", "registry-images"}
    assert all(r["measured_s"] is not None and 0 <= r["measured_s"] <= r["target_s"] for r in rpo.values())
    states = {s["name"]: s["state"] for s in report["steps"]}
    assert all(states[name] == "succeeded" for name in ["os-prepare", *HOST_STEPS])
    # Nothing is only rendered: the control plane started on the restored etcd, every Kubernetes-level
    # step went through pulumi up and the provider; restores there are applied (no operator moves data).
    assert "rendered" not in states.values()
    assert states["k3s-server"] == "succeeded" and states["k3s-agents"] == "not-run"
    assert states["gitea-db"] == states["grafana-restore"] == "applied" and states["gitea"] == "succeeded"
    details = {s["name"]: s["detail"] for s in report["steps"]}
    assert "by pulumi up (pulumi-kubernetes)" in details["gitea"]
    assert "the sandbox set the status of Cluster gitea/gitea-db itself" in details["gitea-db"]
    assert report["steps_ran"] == sum(1 for v in states.values() if v in ("succeeded", "applied"))
    assert all(c["ok"] for c in report["checks"]) and {c["kind"] for c in report["checks"]} == {
        "etcd", "files", "sql", "http", "read-only"}
    # Restores finish before the apps that own the data start, by the engine's own event times.
    times = {s["name"]: (s["started_at"], s["finished_at"]) for s in report["steps"]}
    for restore, app in [("gitea-db", "gitea"), ("gitea-data-restore", "gitea"), ("vm-data-restore",
                         "victoria-metrics"), ("grafana-restore", "grafana"), ("postgres-host", "grafana")]:
        assert times[restore][1] < times[app][0], f"{app} started before {restore} finished"
    # Every file of every production backup (pgBackRest repository, restic repositories, etcd
    # snapshots) is byte-identical after the rebuild: the restored PostgreSQL archives nowhere.
    (untouched,) = [c for c in report["checks"] if c["kind"] == "read-only"]
    assert untouched["ok"] and untouched["step"] == "production-backups"
    assert int(untouched["detail"].split()[0]) > 20, untouched["detail"]

    suite = ET.parse(report_dir / "junit.xml").getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "0"
    assert int(suite.get("tests", "0")) == len(suite.findall("testcase"))
    prom = (report_dir / "dr_drill.prom").read_text()
    assert 'dr_drill_success{cluster="homelab",kind="sandbox"} 1' in prom
    assert 'dr_drill_rpo_seconds{cluster="homelab",kind="sandbox",backup="host-postgres"}' in prom
    assert 'dr_drill_step_seconds{cluster="homelab",kind="sandbox",step="etcd"}' in prom

    assert len(canary) == 32
    assert not (state_dir / "drills" / report["run_id"] / "secrets").exists(), "the throwaway secrets file is removed"
    for path in report_dir.iterdir():
        assert canary not in path.read_text(), f"the sandbox's repository password leaked into {path.name}"
    assert sandbox_processes(state_dir) == [], "the drill left processes running"

    history = subprocess.run([*dr_command(), "history", "--state-dir", str(state_dir), "--png",
                              str(tmp_path / "history.png")], capture_output=True, text=True, check=True)
    assert "1 of 1 drills passed" in history.stdout
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (state_dir / "history.png").exists()


SERVICES = ("postgres", "etcd")  # daemons a step started: a crash of dr leaves them running


def descendants(pid: int) -> list[int]:
    """The work in flight under `pid`, not the services the drill's steps started: dr is a child
    subreaper (dr.reaper), so daemonised PostgreSQL and etcd members are reparented to it while it runs,
    but a real crash of dr leaves them to init, running."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            with contextlib.suppress(OSError):
                argv0 = (Path("/proc") / str(child) / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                if os.path.basename(argv0) in SERVICES:
                    continue
            found.append(child)
            stack.append(child)
    return found


def test_kill_9_during_a_step_then_resume_finishes_without_rerunning_finished_steps(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    victim = random.Random().choice(HOST_STEPS)
    process = subprocess.Popen([*dr_command(), "drill", "--sandbox", "--state-dir", str(state_dir)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = state_dir / "journal.sqlite"
    deadline = time.monotonic() + 600
    finished_before: set[str] = set()
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists():
            try:
                with sqlite3.connect(journal, timeout=5) as db:
                    rows = dict(db.execute("SELECT name, state FROM steps").fetchall())
            except sqlite3.OperationalError:
                rows = {}
            if rows.get(victim) == "running":
                # A crash: the drill and the work it has in flight die; services it already started stay up.
                in_flight = descendants(process.pid)
                process.send_signal(signal.SIGKILL)
                for pid in in_flight:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                process.wait()
                finished_before = {n for n, s in rows.items() if s in ("succeeded", "rendered", "not-run")}
                break
        time.sleep(0.2)
    assert process.returncode == -signal.SIGKILL, f"the drill ended before {victim} ran"

    resumed = run_drill(state_dir, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming drill" in resumed.stderr
    report = json.loads((only_report(state_dir) / "report.json").read_text())
    assert report["success"] is True and all(c["ok"] for c in report["checks"])
    with sqlite3.connect(journal) as db:
        attempts = db.execute("SELECT name, count(*) FROM attempts GROUP BY name").fetchall()
    runs = dict(attempts)
    for name in finished_before & set(runs):
        assert runs[name] == 1, f"{name} finished before the crash but ran again"
    assert runs[victim] >= 2, "the interrupted step ran again"
    assert sandbox_processes(state_dir) == []


def test_failing_step_is_retried_and_only_its_descendants_are_skipped(tmp_path: Path) -> None:
    graph_dir = tmp_path / "stacks"
    shutil.copytree(REPO / "stacks", graph_dir)
    graph = graph_dir / "cluster.yaml"
    # nfs-exports now exports a directory no restore creates: the playbook refuses, every attempt.
    graph.write_text(graph.read_text().replace("nfs_exports: [/srv/nfs/volumes, /srv/nfs/registry]",
                                               "nfs_exports: [/srv/nfs/volumes, /srv/nfs/missing]"))
    state_dir = tmp_path / "state"
    done = run_drill(state_dir, graph=graph)
    assert done.returncode == 1
    report = json.loads((only_report(state_dir) / "report.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["nfs-exports"]["state"] == "failed" and steps["nfs-exports"]["attempts"] == 3
    assert "does not exist; its restore must run before the export" in steps["nfs-exports"]["detail"]
    assert steps["registry"]["state"] == "skipped" and "nfs-exports" in steps["registry"]["detail"]
    assert all(steps[n]["state"] == "succeeded" for n in ["etcd", "postgres-host", "nfs-volumes-restore"])
    assert "failed: nfs-exports" in done.stdout and "skipped: registry" in done.stdout
    markdown = (only_report(state_dir) / "report.md").read_text()
    assert "- registry: skipped: nfs-exports did not finish" in markdown
    assert sandbox_processes(state_dir) == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_the_drill_like_ctrl_c_and_leave_no_process(tmp_path: Path,
                                                                             stop: signal.Signals) -> None:
    """A timed-out systemd unit sends SIGTERM; it used to act like kill -9 and leak etcd and PostgreSQL."""
    state_dir = tmp_path / "state"
    case = f"sigterm-{os.getpid()}-{time.monotonic_ns()}"
    process = subprocess.Popen([*dr_command(), "drill", "--sandbox", "--state-dir", str(state_dir)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "DR_TEST_CASE": case})
    journal = state_dir / "journal.sqlite"
    deadline = time.monotonic() + 600
    pg_dirs: set[Path] = set()
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists():
            try:
                with sqlite3.connect(journal, timeout=5) as db:
                    running = db.execute("SELECT count(*) FROM steps WHERE state = 'running'").fetchone()[0]
            except sqlite3.OperationalError:
                running = 0
            if running:
                assert sandbox_processes(state_dir), "production and restored services are up mid-drill"
                pg_dirs = {Path(json.loads(f.read_text()).get("pg_base") or "/nonexistent")
                           for f in state_dir.glob("drills/*/state.json")}
                process.send_signal(stop)
                break
        time.sleep(0.2)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert f"interrupted by {stop.name}" in err
    assert "Traceback" not in err
    assert sandbox_processes(state_dir) == [], "cleanup ran: nothing the drill started is left running"
    assert marked_processes(case) == [], "no descendant survived, setsid'd Ansible workers and daemons included"
    assert not [p for p in pg_dirs if p.exists()], "no PostgreSQL sandbox directory was left"
    if stop != signal.SIGTERM:
        return
    # What a resume needs was cleaned up with the rest: --resume says so instead of failing every restore.
    resumed = run_drill(state_dir, "--resume")
    assert "cannot be resumed; starting a new drill" in resumed.stderr
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    history = subprocess.run([*dr_command(), "history", "--state-dir", str(state_dir)], capture_output=True,
                             text=True, check=True)
    assert "FAILED" not in history.stdout, "the interrupted drill recorded no failure"


def test_a_new_drill_after_a_crashed_one_stops_what_the_crashed_one_left(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    process = subprocess.Popen([*dr_command(), "drill", "--sandbox", "--state-dir", str(state_dir)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = state_dir / "journal.sqlite"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists():
            try:
                with sqlite3.connect(journal, timeout=5) as db:
                    done = db.execute("SELECT count(*) FROM steps WHERE name = 'etcd' AND state = 'succeeded'"
                                      ).fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done:  # the restored etcd members run now: crash and leave them
                process.send_signal(signal.SIGKILL)
                process.wait()
                break
        time.sleep(0.2)
    assert process.returncode == -signal.SIGKILL
    (old_run,) = [p.name for p in (state_dir / "drills").iterdir()]
    assert any(old_run in p for p in sandbox_processes(state_dir)), "the crash left etcd members running"

    fresh = run_drill(state_dir)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert f"an interrupted drill {old_run} was found; stopping what it left running" in fresh.stderr
    assert sandbox_processes(state_dir) == []
    assert not (state_dir / "current-drill").exists()


def test_resume_with_nothing_to_resume_says_so(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    done = run_drill(state_dir, "--resume")
    assert done.returncode == 0, done.stderr
    assert "nothing to resume: no sandbox drill was interrupted; starting a new drill" in done.stderr
