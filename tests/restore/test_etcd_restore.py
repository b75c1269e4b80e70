"""etcd, for real: 1,000 keys, snapshot, disaster, restore into a new three-member cluster on loopback."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from dr.errors import RestoreError
from dr.hosts.ansible import PlaybookError
from dr.hosts.host_steps import run_step
from dr.restore import etcd

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed (make system)")]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_healthy(endpoint: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{endpoint}/health", timeout=1) as response:
                if json.loads(response.read()).get("health") == "true":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"etcd at {endpoint} did not become healthy")


def put(endpoint: str, key: str, value: str) -> None:
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                       "value": base64.b64encode(value.encode()).decode()}).encode()
    request = urllib.request.Request(f"{endpoint}/v3/kv/put", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


@pytest.fixture
def cleanup_pids(tmp_path: Path) -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pidfile in tmp_path.rglob("*.pid"):
        pids.append(int(pidfile.read_text().strip()))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def snapshot(tmp_path: Path, cleanup_pids: list[int]) -> Path:
    """A source etcd with 1,000 keys, snapshotted, then killed and its data deleted."""
    client, peer = free_ports(2)
    data = tmp_path / "source"
    endpoint = f"http://127.0.0.1:{client}"
    source = subprocess.Popen(
        ["etcd", "--name", "source", "--data-dir", str(data), "--listen-client-urls", endpoint,
         "--advertise-client-urls", endpoint, "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"source=http://127.0.0.1:{peer}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cleanup_pids.append(source.pid)
    wait_healthy(endpoint)
    for i in range(1000):
        put(endpoint, f"/registry/keys/{i:04d}", f"value-{i}")
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    path = snapshots / "etcd-1.db"
    subprocess.run(["etcdctl", "--endpoints", endpoint, "snapshot", "save", str(path)], check=True,
                   capture_output=True, env={"ETCDCTL_API": "3", "PATH": os.environ["PATH"]})
    source.kill()
    source.wait()
    shutil.rmtree(data)  # the disaster
    return path


def members(tmp_path: Path) -> list[etcd.EtcdMember]:
    ports = free_ports(6)
    return [etcd.EtcdMember(name=f"m{i}", host="localhost", address="127.0.0.1", peer_port=ports[2 * i],
                            client_port=ports[2 * i + 1], data_dir=str(tmp_path / f"member-{i}"))
            for i in range(3)]


def restore_step(snapshots: Path, cluster: list[etcd.EtcdMember], *, token: str = "t",
                 min_keys: int = 1) -> dict[str, object]:
    """The restore as the product runs it: a host-restore step of the resource plan."""
    inputs = {"step": "etcd", "step_kind": "host-restore", "tool": "etcd-snapshot", "repo": str(snapshots), "target_time": "latest",
              "hosts": ["all"], "vars": {"etcd_members": [asdict(m) for m in cluster], "cluster_token": token,
                                         "min_keys": min_keys}}
    return run_step(inputs, hosts={}, secrets={})


def test_snapshot_restores_into_a_three_member_cluster(snapshot: Path, tmp_path: Path) -> None:
    point = etcd.choose_snapshot(snapshot.parent, "latest")
    assert point.file_count >= 1000  # totalKey also counts a few keys of etcd's own
    cluster = members(tmp_path)
    result = restore_step(snapshot.parent, cluster, token="restored-1", min_keys=1000)
    assert result["restored"] == point.id
    assert etcd.key_count(cluster, "/registry/keys/") == 1000
    for member in cluster:  # every member answers on its own: quorum of three
        assert etcd.key_count([member], "/registry/keys/") == 1000
    again = restore_step(snapshot.parent, cluster, token="restored-1", min_keys=1000)
    assert again["changed"] == 0, "a second run finds the cluster restored and running"


def test_corrupt_snapshot_is_refused_and_the_target_untouched(snapshot: Path, tmp_path: Path) -> None:
    corrupt = snapshot.parent / "etcd-2.db"
    raw = bytearray(snapshot.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 4096] = os.urandom(4096)
    corrupt.write_bytes(bytes(raw[: len(raw) - 100]))
    cluster = members(tmp_path)
    with pytest.raises(RestoreError, match="damaged or not an etcd snapshot"):
        restore_step(snapshot.parent, cluster)
    assert not any(Path(m.data_dir).exists() for m in cluster)


def test_existing_member_data_is_refused(snapshot: Path, tmp_path: Path) -> None:
    cluster = members(tmp_path)
    (Path(cluster[0].data_dir) / "member").mkdir(parents=True)
    with pytest.raises(PlaybookError, match="already holds an etcd member"):
        restore_step(snapshot.parent, cluster)
    assert list(Path(cluster[0].data_dir).iterdir()) == [Path(cluster[0].data_dir) / "member"]


def test_missing_snapshot_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RestoreError, match="does not exist"):
        etcd.choose_snapshot(tmp_path / "nowhere", "latest")
