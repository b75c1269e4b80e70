"""A stale cluster.json (after a reboot its pids name other processes) never makes dr signal a process it
did not start, nor call it running (issue 21, item 3). The "other process" is a `sleep` this test starts:
it stands in for whatever got the recorded pid."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dr.kube.sandbox_cluster import SandboxCluster
from dr.kube.toolchain import Toolchain
from dr.process_identity import is_ours, start_ticks


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


def stale_state(state_dir: Path, pid: int, *, start: int | None = None) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    names = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
    (state_dir / "cluster.json").write_text(json.dumps({
        "etcd_client_port": 1, "etcd_peer_port": 2, "apiserver_port": 3, "etcd_data": str(state_dir / "etcd"),
        "pids": dict.fromkeys(names, pid), **({"starts": dict.fromkeys(names, start)} if start else {})}))


@pytest.mark.parametrize("recorded_start", [False, True], ids=["old-state-file", "start-recorded"])
def test_status_and_down_leave_a_process_that_reused_the_pid_alone(
        tmp_path: Path, run_cli, stranger: subprocess.Popen[bytes], recorded_start: bool) -> None:
    # With a start time recorded, the stranger's differs; without one (an older file), its command
    # line does not name the cluster's directory.
    stale_state(tmp_path / "sandbox" / "sandbox-cluster", stranger.pid, start=(start_ticks(stranger.pid) or 0) + 1 if recorded_start
                else None)
    status = run_cli("sandbox", "status", "--json", "--state-dir", str(tmp_path / "sandbox"))
    assert status.code != 0 and json.loads(status.out)["running"] is False
    assert not any(json.loads(status.out)["processes"].values())
    down = run_cli("sandbox", "down", "--state-dir", str(tmp_path / "sandbox"))
    assert down.code == 0 and "nothing was running" in down.out
    assert stranger.poll() is None, "the process that has the recorded pid was not signalled"


def test_identity_is_start_time_and_command_line(stranger: subprocess.Popen[bytes]) -> None:
    start = start_ticks(stranger.pid)
    assert start is not None
    assert is_ours(stranger.pid, marker="600", start=start)
    assert not is_ours(stranger.pid, marker="600", start=start + 1)
    assert not is_ours(stranger.pid, marker="/some/state/dir", start=start)
    assert not is_ours(999_999_999, marker="600")


@pytest.mark.integration
def test_sandbox_up_over_a_stale_state_file_starts_and_spares_the_stranger(
        tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    from dr.kube.toolchain import CONTROL_PLANE
    from tests.kube.conftest import require

    toolchain: Toolchain = require(CONTROL_PLANE)
    stale_state(tmp_path / "sandbox", stranger.pid)
    cluster = SandboxCluster(tmp_path / "sandbox", toolchain=toolchain)
    cluster.up()
    try:
        assert cluster.running() and stranger.poll() is None
    finally:
        cluster.down()
    assert stranger.poll() is None
