"""Tier 1, for real: the sandbox control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from dr.cli import main
from dr.kube.sandbox_cluster import SandboxCluster, SandboxError
from dr.kube.toolchain import Toolchain
from tests.kube.conftest import restore_etcd_snapshot

pytestmark = pytest.mark.integration

DEPLOYMENT = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: example.invalid/web:1}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  storageClassName: manual
  volumeName: shop-data
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: shop-data}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: manual
  hostPath: {path: /nonexistent/dr-test}
  claimRef: {namespace: shop, name: data}
"""


def wait_for(predicate, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def get(cluster: SandboxCluster, *args: str) -> dict:  # type: ignore[type-arg]
    done = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def test_deployment_becomes_available_and_namespace_deletion_collects_it_but_a_retained_pv_survives(
        cluster: SandboxCluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.34."), "real version ldflags"
    cluster.kubectl("apply", "-f", "-", input_text=DEPLOYMENT)
    cluster.kubectl("wait", "--for=condition=Available", "deployment/web", "-n", "shop", "--timeout=60s")
    pods = get(cluster, "pods", "-n", "shop")["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods), "kwok ran the pods"
    assert {p["spec"]["nodeName"] for p in pods} <= {"kwok-node-0", "kwok-node-1"}, "the scheduler placed them"
    wait_for(lambda: get(cluster, "pvc", "data", "-n", "shop").get("status", {}).get("phase") == "Bound",
             "the PV controller binding the claim")

    cluster.kubectl("delete", "namespace", "shop", "--wait=false")
    wait_for(lambda: not get(cluster, "namespace", "shop"), "namespace deletion", timeout=90)
    assert not get(cluster, "replicasets", "-A")["items"], "the garbage collector removed the ReplicaSet"
    assert not get(cluster, "pods", "-A")["items"], "and the pods"
    pv = get(cluster, "pv", "shop-data")
    wait_for(lambda: get(cluster, "pv", "shop-data").get("status", {}).get("phase") == "Released",
             "the PV released, not deleted")
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_cli_up_status_down_leaves_no_process(toolchain: Toolchain, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("DR_TOOLCHAIN_BIN", str(Path(toolchain.path("kube-apiserver")).parent))
    assert main(["sandbox", "status", "--state-dir", str(state)]) == 1
    assert main(["sandbox", "up", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    cluster_dir = state / "sandbox-cluster"  # the state dir is dr's, as for every command
    assert out.rstrip().splitlines()[-1] == f"export KUBECONFIG={cluster_dir.resolve() / 'kubeconfig'}"
    # The kubectl it suggests is the one `make toolchain` built, by its full path (it is not on PATH).
    assert f"try: {toolchain.path('kubectl')} --kubeconfig" in out
    pids = json.loads((cluster_dir / "cluster.json").read_text())["pids"]
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    nodes = subprocess.run([toolchain.path("kubectl"), "--kubeconfig", str(cluster_dir / "kubeconfig"), "get", "nodes",
                            "-o", "name"], capture_output=True, text=True, check=True).stdout.split()
    assert nodes == ["node/kwok-node-0", "node/kwok-node-1"]
    assert main(["sandbox", "status", "--state-dir", str(state)]) == 0
    assert main(["sandbox", "up", "--state-dir", str(state)]) == 1, "a second up refuses, the first keeps running"
    assert main(["sandbox", "status", "--state-dir", str(state)]) == 0
    capsys.readouterr()
    assert main(["sandbox", "down", "--state-dir", str(state)]) == 0
    # One at a time, the API server before etcd, each within its grace period (none had to be killed).
    said = capsys.readouterr()
    assert [line.split("sandbox: ")[1] for line in said.err.splitlines()] == [
        "stopping kwok", "stopping kube-scheduler", "stopping kube-controller-manager", "stopping kube-apiserver",
        "stopping etcd"]
    assert said.out.strip() == "stopped kwok, kube-scheduler, kube-controller-manager, kube-apiserver, etcd"
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert main(["sandbox", "down", "--state-dir", str(state)]) == 0, "down is safe to repeat"
    assert "nothing was running" in capsys.readouterr().out
    assert main(["sandbox", "status", "--state-dir", str(state)]) == 1


def test_control_plane_starts_on_a_restored_etcd_data_directory(toolchain: Toolchain, tmp_path: Path) -> None:
    """What "restore the control plane from etcd" means: the objects come back from the snapshot."""
    first = SandboxCluster(tmp_path / "before", toolchain=toolchain)
    first.up()
    try:
        first.kubectl("create", "namespace", "kept")
        first.kubectl("create", "configmap", "marker", "-n", "kept", "--from-literal=value=before-disaster")
        restored = restore_etcd_snapshot(first, tmp_path)
    finally:
        first.down()
    second = SandboxCluster(tmp_path / "after", toolchain=toolchain)
    second.up(etcd_data=restored)
    try:
        data = get(second, "configmap", "marker", "-n", "kept")
        assert data["data"]["value"] == "before-disaster"
    finally:
        second.down()


def test_a_crash_is_told_by_its_cause_not_its_stack_trace() -> None:
    from dr.kube.sandbox_cluster import why_it_exited

    etcd = ('{"level":"info","msg":"starting"}\n'
            '{"level":"panic","msg":"failed to create WAL","error":"no space left on device","stacktrace":"x"}\n'
            "panic: failed to create WAL\n\ngoroutine 1 [running]:\nmain.main()\n\tmain.go:31 +0x28\n")
    assert why_it_exited(etcd) == "failed to create WAL: no space left on device"
    klog = "I1208 03:00:00.1 1 server.go:1] fine\nF1208 03:00:01.2 7 run.go:9] error: cannot listen on 127.0.0.1:1\n"
    assert why_it_exited(klog) == "error: cannot listen on 127.0.0.1:1"
    assert why_it_exited("") == "no reason in its log"


def test_etcd_on_a_full_disk_says_so(toolchain: Toolchain, tmp_path: Path) -> None:
    """A disk too full for etcd's write-ahead log: dr says "no space left" and how much is free, not a Go
    stack trace."""
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(full)], capture_output=True,
                             check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        (full / "etcd").mkdir()
        cluster = SandboxCluster(tmp_path / "cluster", toolchain=toolchain)
        with pytest.raises(SandboxError) as failed:
            cluster.up(etcd_data=full / "etcd", timeout=60)
        cluster.down()
    finally:
        subprocess.run(["umount", str(full)], check=False)
    message = str(failed.value)
    assert message.startswith("etcd exited while starting: failed to create WAL: no space left on device (the disk "
                              f"of {full / 'etcd'} has "), message
    assert "goroutine" not in message and ".go:" not in message
