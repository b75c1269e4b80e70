"""Nothing waits for what cannot come, and stop means stop, in the Kubernetes layer of a real sandbox drill.

Both were seen on a fresh machine: steps whose custom resources had no CRD in the cluster waited 15 minutes
each and failed saying only "timed out"; a SIGTERM while the layer's `pulumi up` waited on objects that
could never become ready left dr alive and every process of the rebuilt cluster running.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from dr import process_tree
from tests.drill.test_sandbox_drill import dr_command, marked_processes, sandbox_processes

pytestmark = pytest.mark.integration

# A ConfigMap the engine waits on for an hour: the condition never holds.
BLOCKED = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: never-ready
  namespace: default
  annotations: {pulumi.com/waitFor: "jsonpath={.data.ready}=yes", pulumi.com/timeoutSeconds: "3600"}
data: {ready: "no"}
"""
ISSUER = """\
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: selfsigned}
spec: {selfSigned: {}}
"""
PLAIN = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain, namespace: default}\ndata: {k: v}\n"


def system_tmp(tmp_path: Path) -> dict[str, str]:
    """The environment of a drill whose system temporary directory is the test's own, to look into after."""
    directory = tmp_path / "system-tmp"
    directory.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(directory)}


def credentials_left(tmp_path: Path) -> list[str]:
    """The provider's kubeconfig files and the GitOps gate's scratch directories left in the system's
    temporary directory (each holds a kubeconfig with the rebuilt cluster's credentials)."""
    return sorted(p.name for p in (tmp_path / "system-tmp").iterdir()
                  if p.name.startswith(("kubeconfig", "dr-gate-")))


def start_drill(graph_file: Path, state_dir: Path, tmp_path: Path, case: str) -> subprocess.Popen[str]:
    """`dr drill --sandbox` of this graph, in the background, its descendants marked with `case`."""
    return subprocess.Popen([*dr_command(), "drill", "--sandbox", "--graph", str(graph_file), "--state-dir",
                             str(state_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**system_tmp(tmp_path), "DR_TEST_CASE": case})


def ended_within(process: subprocess.Popen[str], seconds: float, failure: str) -> tuple[str, str]:
    """Its output once it ended; the test fails (and the process is killed) when it runs past `seconds`."""
    try:
        return process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"{failure}: {err[-2000:]}")


def graph(tmp_path: Path, components: str, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "graph.yaml"
    path.write_text(f"cluster: layer\nkubernetes: \"1.34\"\ncomponents:\n{components}")
    return path


def test_a_step_whose_kind_has_no_crd_fails_at_once_naming_it(tmp_path: Path) -> None:
    """No chart of the graph installs cert-manager's CRDs: the issuer step fails on the missing kind, not on a
    timeout; the independent step is created; the step after the issuer is skipped."""
    path = graph(tmp_path, """\
  plain: {layer: addon, manifests: plain.yaml, estimate: 30s}
  issuer: {layer: addon, manifests: issuer.yaml, estimate: 10m}
  after: {layer: app, depends_on: [issuer], manifests: after.yaml, estimate: 30s}
""", {"plain.yaml": PLAIN, "issuer.yaml": ISSUER, "after.yaml": PLAIN.replace("plain", "after")})
    done = subprocess.run([*dr_command(), "drill", "--sandbox", "--graph", str(path), "--state-dir",
                           str(tmp_path / "state")], capture_output=True, text=True, timeout=1200, check=False,
                          env=system_tmp(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    (report,) = (tmp_path / "state" / "reports").glob("*/report.json")
    steps = {s["name"]: s for s in json.loads(report.read_text())["steps"]}
    issuer = steps["issuer"]
    assert issuer["state"] == "failed"
    assert "needs cert-manager.io/v1 ClusterIssuer, which the API server does not serve" in issuer["detail"]
    assert "no chart of the graph installs the CRDs of cert-manager.io" in issuer["detail"]
    assert "timed out" not in issuer["detail"]
    assert steps["plain"]["state"] == "succeeded", steps["plain"]
    assert steps["after"]["state"] == "skipped"
    assert credentials_left(tmp_path) == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_while_the_layer_waits_on_an_object_ends_everything(tmp_path: Path, stop: signal.Signals) -> None:
    """The layer's engine waits on an object that never becomes ready; a stop cancels the update, ends the
    engine, its provider plugins and every process of the rebuilt cluster, and dr exits within 30 s."""
    path = graph(tmp_path, "  blocked: {layer: app, manifests: blocked.yaml, estimate: 1h}\n",
                 {"blocked.yaml": BLOCKED})
    state_dir = tmp_path / "state"
    case = f"layer-stop-{os.getpid()}-{time.monotonic_ns()}"
    process = start_drill(path, state_dir, tmp_path, case)
    started = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        started = process_tree.descendants(process.pid)
        names = {Path(process_tree_exe(pid)).name for pid, _ in started}
        if {"pulumi", "pulumi-resource-kubernetes", "kube-apiserver", "etcd"} <= names and blocked_in_cluster(
                state_dir):
            break
        time.sleep(0.5)
    assert process.poll() is None, process.communicate()
    assert step_state(state_dir, "blocked") == "running"
    process.send_signal(stop)
    _, err = ended_within(process, 30, f"dr did not exit within 30 s of {stop.name}")
    assert process.returncode == 130, err
    left = [pid for pid, ticks in started if process_tree.alive((pid, ticks))]
    assert left == [], f"still running: {[process_tree_exe(p) for p in left]}"
    assert marked_processes(case) == []
    assert sandbox_processes(state_dir) == []
    assert credentials_left(tmp_path) == []


def process_tree_exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def step_state(state_dir: Path, name: str) -> str:
    journal = state_dir / "journal.sqlite"
    if not journal.exists():
        return ""
    try:
        with sqlite3.connect(journal, timeout=5) as db:
            row = db.execute("SELECT state FROM steps WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:
        return ""
    return str(row[0]) if row else ""


def blocked_in_cluster(state_dir: Path) -> bool:
    """The engine created the object and now waits on it."""
    kubeconfigs = list(state_dir.glob("drills/*/cluster/kubeconfig"))
    if not kubeconfigs:
        return False
    from dr.kube.toolchain import Toolchain

    kubectl = Toolchain.find().which("kubectl")
    if kubectl is None:
        return False
    found = subprocess.run([kubectl, "--kubeconfig", str(kubeconfigs[0]), "get", "configmap", "never-ready", "-n",
                            "default"], capture_output=True, text=True, check=False, timeout=30)
    return found.returncode == 0


def test_a_kubernetes_step_past_its_timeout_says_what_it_waited_for_and_the_drill_ends(tmp_path: Path) -> None:
    """The step's own `timeout:` fails it; the message says where the timeout came from and what it waited
    for (the object, the condition, its last status); the engine still waiting on that object is cancelled,
    so the drill ends by itself and leaves nothing running (it used to wait on the engine at exit)."""
    path = graph(tmp_path, "  blocked: {layer: app, manifests: blocked.yaml, estimate: 1h, timeout: 10s}\n",
                 {"blocked.yaml": BLOCKED})
    state_dir = tmp_path / "state"
    case = f"layer-timeout-{os.getpid()}-{time.monotonic_ns()}"
    process = start_drill(path, state_dir, tmp_path, case)
    out, err = ended_within(process, 600, "the drill did not end after its step timed out")
    assert process.returncode == 1, out + err
    (report,) = state_dir.glob("reports/*/report.json")
    (blocked,) = [s for s in json.loads(report.read_text())["steps"] if s["name"] == "blocked"]
    assert blocked["state"] == "failed"
    detail = blocked["detail"]
    assert detail.startswith("timed out after 15s (its own timeout, and 5 s for the engine to report its own "
                             "timeout)"), detail
    assert ("it was waiting for ConfigMap default/never-ready until jsonpath={.data.ready}=yes (last status: "
            in detail), detail
    assert marked_processes(case) == []
    assert sandbox_processes(state_dir) == []
    assert credentials_left(tmp_path) == []


def test_resume_after_the_drill_and_its_engine_are_killed_in_the_kubernetes_layer(tmp_path: Path) -> None:
    """`kill -9` of dr and of its `pulumi up` while the layer waits: the lock stays in the stack's backend and
    the provider plugins keep running. `--resume` stops those plugins, removes the lock of the dead engine,
    adopts the object the dead run had created, and finishes the drill."""
    waits_on_label = BLOCKED.replace("jsonpath={.data.ready}=yes", "jsonpath={.metadata.labels.ready}=yes")
    path = graph(tmp_path, "  plain: {layer: addon, manifests: plain.yaml, estimate: 30s}\n"
                           "  blocked: {layer: app, depends_on: [plain], manifests: blocked.yaml, estimate: 1m}\n",
                 {"plain.yaml": PLAIN, "blocked.yaml": waits_on_label})
    state_dir = tmp_path / "state"
    process = subprocess.Popen([*dr_command(), "drill", "--sandbox", "--graph", str(path), "--state-dir",
                                str(state_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if step_state(state_dir, "plain") == "succeeded" and blocked_in_cluster(state_dir):
            break
        time.sleep(0.5)
    assert process.poll() is None and step_state(state_dir, "blocked") == "running"
    started = process_tree.descendants(process.pid)
    engine = [(pid, ticks) for pid, ticks in started if Path(process_tree_exe(pid)).name == "pulumi"]
    plugins = [(pid, ticks) for pid, ticks in started
               if Path(process_tree_exe(pid)).name == "pulumi-resource-kubernetes"]
    assert engine and plugins
    for pid, _ in [(process.pid, None), *engine]:
        os.kill(pid, signal.SIGKILL)
    process.wait()
    time.sleep(1)
    assert any(process_tree.alive(p) for p in plugins), "the provider outlives its killed engine"
    locks = list(state_dir.glob("drills/*/engine/pulumi-state/.pulumi/locks/**/*.json"))
    assert locks, "the killed engine left its lock"

    kubeconfig = next(state_dir.glob("drills/*/cluster/kubeconfig"))
    from dr.kube.toolchain import Toolchain
    kubectl = Toolchain.find().path("kubectl")
    subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "label", "configmap", "never-ready", "-n", "default",
                    "ready=yes"], check=True, capture_output=True, timeout=60)
    resumed = subprocess.run([*dr_command(), "drill", "--sandbox", "--graph", str(path), "--state-dir",
                              str(state_dir), "--resume"], capture_output=True, text=True, timeout=900, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "stopped what an interrupted engine run left running" in resumed.stderr + resumed.stdout
    assert not any(process_tree.alive(p) for p in plugins)
    assert not any(lock.exists() for lock in locks)
    (report,) = state_dir.glob("reports/*/report.json")
    steps = {s["name"]: s["state"] for s in json.loads(report.read_text())["steps"]}
    assert steps == {"plain": "succeeded", "blocked": "succeeded"}, steps
    assert sandbox_processes(state_dir) == []
