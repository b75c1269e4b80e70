"""A real container-less Kubernetes control plane on loopback: `dr sandbox up|down|status`.

etcd, kube-apiserver (generated certificates and service-account keys), kube-controller-manager (the
garbage collector, namespace, PV and deployment controllers run for real), kube-scheduler and kwok with
fake nodes, so Deployments become Available without a kubelet. Nothing runs inside the pods.

All state lives in one directory: `pki/`, `etcd/` (or an existing data directory, such as one a drill
has just restored from a snapshot), `logs/`, `kubeconfig` and `cluster.json` (ports and process ids).
`down` stops every process recorded there and is safe to repeat.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dr import process_identity
from dr.errors import DrError
from dr.kube import pki as pki_module
from dr.kube.toolchain import CONTROL_PLANE, Toolchain

SERVICE_RANGE = "10.96.0.0/16"  # a setting of the API server only: nothing is routed to it
POD_RANGE = "10.244.0.0/24"     # kwok's fake pod IPs: never contacted
FAKE_NODES = ("kwok-node-0", "kwok-node-1")


class SandboxError(DrError):
    """The sandbox cluster could not start, or is not running when it should be."""


@dataclass
class ClusterState:
    etcd_client_port: int = 0
    etcd_peer_port: int = 0
    apiserver_port: int = 0
    etcd_data: str = ""
    etcd_servers: str = ""  # an etcd this cluster did not start (a drill's restored members), else empty
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0
    starts: dict[str, int] = field(default_factory=dict)  # each process's start tick (dr.process_identity)


def why_it_exited(log_text: str) -> str:
    """The cause a crashed Go program's log gives: the message and error of its last panic, fatal or error
    line (etcd's JSON lines, klog's `F…`/`E…` lines), else its last lines without the goroutine dump."""
    import re

    for line in reversed(log_text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("panic", "fatal", "error"):
                message = str(entry.get("msg", "")).strip()
                error = str(entry.get("error", "")).strip()
                return f"{message}: {error}" if message and error else message or error
        elif re.fullmatch(r"[FE]\d{4} [\d:.]+\s+\d+ \S+\] .+", line):
            return line.split("] ", 1)[1].strip()
    kept = [line for line in log_text.splitlines()
            if line.strip() and not line.startswith(("\t", "goroutine ")) and ".go:" not in line
            and not re.fullmatch(r"\S+\(.*\)", line.strip())]
    tail = "; ".join(line.strip() for line in kept[-3:])
    return tail[:600] or "no reason in its log"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STOP_GRACE_S = 10.0  # per process, after SIGTERM


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


class SandboxCluster:
    """One sandbox cluster in `state_dir`; methods start, stop and inspect its processes."""

    def __init__(self, state_dir: Path, *, toolchain: Toolchain | None = None) -> None:
        self.dir = state_dir.resolve()
        self.toolchain = toolchain or Toolchain.find()

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def _state_file(self) -> Path:
        return self.dir / "cluster.json"

    def load_state(self) -> ClusterState | None:
        try:
            return ClusterState(**json.loads(self._state_file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise SandboxError(f"{self._state_file} is damaged ({exc}); remove it, stop leftover processes and "
                               "start again") from None

    def _save(self, state: ClusterState) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2), encoding="utf-8")
        tmp.replace(self._state_file)

    # -- lifecycle -------------------------------------------------------------------------------

    def up(self, *, etcd_data: Path | None = None, etcd_servers: tuple[str, ...] = (),
           progress: Callable[[str], None] = lambda _: None, timeout: float = 90,
           hostpath_deleter: bool = False) -> ClusterState:
        """Start the control plane; on an existing etcd data directory when `etcd_data` is given, or on a
        running etcd cluster this sandbox does not own (`etcd_servers`, client URLs: a drill's restored
        members, which keep running after `down`). `hostpath_deleter`: the controller-manager deletes the
        directory of a released hostPath volume whose reclaim policy is Delete (only under /tmp, its own
        rule), as a storage driver deletes a volume: a sandbox production's cascade then really loses data."""
        if etcd_data is not None and etcd_servers:
            raise SandboxError("give an etcd data directory or running etcd servers, not both")
        missing = self.toolchain.missing(CONTROL_PLANE)
        if missing:
            raise SandboxError(f"missing {', '.join(missing)}; run `make toolchain` first")
        existing = self.load_state()
        if existing is not None and self.running(existing):
            raise SandboxError(f"a sandbox cluster already runs in {self.dir}; `dr sandbox down --state-dir "
                               f"{self.dir}` first")
        if existing is not None:
            self.down()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        started = time.monotonic()
        state = ClusterState(etcd_client_port=free_port(), etcd_peer_port=free_port(), apiserver_port=free_port(),
                             etcd_data="" if etcd_servers else str((etcd_data or self.dir / "etcd").resolve()),
                             etcd_servers=",".join(etcd_servers), started_at=time.time())
        try:
            progress("certificates")
            keys = pki_module.generate(self.dir / "pki")
            self._write_kubeconfig(keys, state.apiserver_port)
            if not etcd_servers:
                progress("etcd")
                self._start(state, "etcd", self._etcd_args(state, restored=etcd_data is not None))
            self._wait(lambda: self._etcd_healthy(state), "etcd", timeout)
            progress("kube-apiserver")
            self._start(state, "kube-apiserver", self._apiserver_args(state, keys))
            self._wait(lambda: self._api_ready(), "kube-apiserver", timeout)
            if etcd_data is not None or etcd_servers:
                # Restored data holds the old cluster's node leases, held by a kwok that is gone: the new
                # kwok would wait for them to expire (40 s) before it marks any pod ready.
                self.kubectl("delete", "leases", "-n", "kube-node-lease", *FAKE_NODES, "--ignore-not-found")
            progress("kube-controller-manager, kube-scheduler, kwok")
            self._start(state, "kube-controller-manager", self._controller_manager_args(keys) + (
                ["--enable-hostpath-provisioner"] if hostpath_deleter else []))
            self._start(state, "kube-scheduler", self._scheduler_args())
            self._start(state, "kwok", self._kwok_args())
            progress("fake nodes")
            self._create_nodes()
            self._wait(self._nodes_ready, "kwok nodes", timeout)
            self._wait(self._default_service_account, "kube-controller-manager", timeout)
        except BaseException:
            self.down()
            raise
        progress(f"ready in {time.monotonic() - started:.1f} s")
        return state

    def down(self, progress: Callable[[str], None] = lambda _: None) -> list[str]:
        """Stop every process this cluster started, one at a time in the reverse order of their start (the
        API server before etcd: stopped together, the API server hangs on its way out waiting for etcd);
        returns the names of those that were running."""
        state = self.load_state()
        if state is None:
            return []
        ours = self._ours(state)
        for name, pid in reversed(list(ours.items())):
            progress(f"stopping {name}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
            if _alive(pid):
                progress(f"{name} did not stop within {STOP_GRACE_S:.0f} s: killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, ProcessLookupError):
                os.waitpid(pid, 0)
        self._state_file.unlink(missing_ok=True)
        return list(reversed(list(ours)))

    def running(self, state: ClusterState | None = None) -> bool:
        state = state or self.load_state()
        return state is not None and bool(state.pids) and len(self._ours(state)) == len(state.pids)

    def status(self) -> dict[str, Any]:
        state = self.load_state()
        if state is None:
            return {"running": False, "state_dir": str(self.dir), "processes": {}}
        ours = self._ours(state)
        processes = {name: name in ours for name in state.pids}
        healthy = all(processes.values()) and self._api_ready()
        return {"running": healthy, "state_dir": str(self.dir), "processes": processes,
                "api_server": f"https://127.0.0.1:{state.apiserver_port}", "kubeconfig": str(self.kubeconfig),
                "etcd_data": state.etcd_data}

    # -- processes -------------------------------------------------------------------------------

    def _start(self, state: ClusterState, name: str, args: list[str]) -> None:
        log = open(self.dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            process = subprocess.Popen([self.toolchain.path(name), *args], stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.dir)
        finally:
            log.close()
        state.pids[name] = process.pid
        state.starts[name] = process_identity.start_ticks(process.pid) or 0
        self._save(state)

    def _ours(self, state: ClusterState) -> dict[str, int]:
        """The recorded processes that are still the ones this cluster started (a stale cluster.json after
        a reboot names other processes: never signal them, never call them running)."""
        return {name: pid for name, pid in state.pids.items()
                if _alive(pid) and process_identity.is_ours(
                    pid, marker=state.etcd_data if name == "etcd" else str(self.dir),
                    start=state.starts.get(name) or None)}

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = self.load_state()
        while time.monotonic() < deadline:
            if ready():
                return
            if state is not None:
                dead = [n for n, p in state.pids.items() if not _alive(p)]
                if dead:
                    raise SandboxError(self._exited(dead[0], state))
            time.sleep(0.2)
        raise SandboxError(f"{what} was not ready after {timeout:.0f} s; logs in {self.dir / 'logs'}")

    def _exited(self, name: str, state: ClusterState) -> str:
        """Why a process exited while starting, in words: the cause its log names (a full disk first, with
        what is free where it writes), not the Go stack trace it ends with."""
        log = self.dir / "logs" / f"{name}.log"
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        reason = why_it_exited(text)
        if "no space left on device" in reason:
            where = Path(state.etcd_data) if name == "etcd" and state.etcd_data else self.dir
            with contextlib.suppress(OSError):
                free = shutil.disk_usage(where).free
                reason += f" (the disk of {where} has {free / 2**20:.1f} MiB free: make room, or move the state dir)"
        return f"{name} exited while starting: {reason}; its log: {log}"

    def _etcd_args(self, state: ClusterState, *, restored: bool) -> list[str]:
        client = f"http://127.0.0.1:{state.etcd_client_port}"
        peer = f"http://127.0.0.1:{state.etcd_peer_port}"
        args = ["--name", "sandbox", "--data-dir", state.etcd_data, "--listen-client-urls", client,
                "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"sandbox={peer}", "--listen-metrics-urls", "", "--log-level", "warn",
                "--quota-backend-bytes", str(2 * 1024**3)]
        if restored:
            # A data directory restored from another cluster's snapshot keeps that cluster's member
            # list; make it a one-member cluster on this machine's ports.
            args.append("--force-new-cluster")
        return args

    def _apiserver_args(self, state: ClusterState, keys: pki_module.Pki) -> list[str]:
        return ["--etcd-servers", state.etcd_servers or f"http://127.0.0.1:{state.etcd_client_port}",
                "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
                "--secure-port", str(state.apiserver_port), "--cert-dir", str(self.dir / "pki"),
                "--tls-cert-file", str(keys.serving_cert), "--tls-private-key-file", str(keys.serving_key),
                "--client-ca-file", str(keys.ca_cert), "--authorization-mode", "Node,RBAC",
                "--service-account-key-file", str(keys.sa_pub),
                "--service-account-signing-key-file", str(keys.sa_key),
                "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range", SERVICE_RANGE, "--allow-privileged=true",
                "--enable-priority-and-fairness=false", "--profiling=false", "--v=1"]

    def _controller_manager_args(self, keys: pki_module.Pki) -> list[str]:
        return ["--kubeconfig", str(self.kubeconfig), "--authentication-kubeconfig", str(self.kubeconfig),
                "--authorization-kubeconfig", str(self.kubeconfig), "--leader-elect=false",
                "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
                "--service-account-private-key-file", str(keys.sa_key), "--root-ca-file", str(keys.ca_cert),
                "--cluster-signing-cert-file", str(keys.ca_cert), "--cluster-signing-key-file", str(keys.ca_key),
                "--use-service-account-credentials=false", "--controllers", "*,-nodeipam,-cloud-node-lifecycle",
                "--profiling=false", "--v=1"]

    def _scheduler_args(self) -> list[str]:
        return ["--kubeconfig", str(self.kubeconfig), "--authentication-kubeconfig", str(self.kubeconfig),
                "--authorization-kubeconfig", str(self.kubeconfig), "--leader-elect=false",
                "--bind-address", "127.0.0.1", "--secure-port", str(free_port()), "--profiling=false", "--v=1"]

    def _kwok_args(self) -> list[str]:
        return ["--kubeconfig", str(self.kubeconfig), "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
                "--manage-nodes-with-label-selector=", "--manage-single-node=", "--cidr", POD_RANGE,
                "--node-ip", "10.244.0.1", "--node-lease-duration-seconds", "40", "--server-address", "127.0.0.1:0"]

    # -- Kubernetes ------------------------------------------------------------------------------

    def _write_kubeconfig(self, keys: pki_module.Pki, port: int) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "dr-sandbox",
            "clusters": [{"name": "dr-sandbox", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                             "certificate-authority": str(keys.ca_cert)}}],
            "users": [{"name": "dr-admin", "user": {"client-certificate": str(keys.admin_cert),
                                                    "client-key": str(keys.admin_key)}}],
            "contexts": [{"name": "dr-sandbox", "context": {"cluster": "dr-sandbox", "user": "dr-admin"}}]}
        fd = os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.toolchain.path("kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
                              input=input_text, capture_output=True, text=True, check=False, timeout=timeout)
        if check and done.returncode != 0:
            raise SandboxError(f"kubectl {' '.join(args[:3])} failed: {done.stderr.strip()}")
        return done

    def _ssl_context(self) -> ssl.SSLContext:
        keys = pki_module.Pki(self.dir / "pki")
        context = ssl.create_default_context(cafile=str(keys.ca_cert))
        context.load_cert_chain(str(keys.admin_cert), str(keys.admin_key))
        return context

    def api_get(self, path: str, timeout: float = 2) -> tuple[int, bytes]:
        state = self.load_state()
        if state is None:
            raise SandboxError("the sandbox cluster is not running; `dr sandbox up` first")
        url = f"https://127.0.0.1:{state.apiserver_port}{path}"
        try:
            with urllib.request.urlopen(url, context=self._ssl_context(), timeout=timeout) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves this kind now: its discovery document of the group version lists it."""
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            status, body = self.api_get(path)
        except (OSError, SandboxError, ssl.SSLError):
            return False
        if status != 200:
            return False
        try:
            resources = json.loads(body).get("resources", [])
        except ValueError:
            return False
        return any(r.get("kind") == kind and "/" not in str(r.get("name", "")) for r in resources)

    def live_status(self, api_version: str, kind: str, namespace: str, name: str) -> str:
        """An object's status in one line: its conditions and phase, or why it cannot be read."""
        from dr.core.kube_objects import kubectl_resource

        where = ["-n", namespace] if namespace else []
        done = self.kubectl("get", kubectl_resource(api_version, kind), name, "-o", "json", *where, check=False,
                            timeout=10)
        if done.returncode != 0:
            return (done.stderr.strip().splitlines() or ["not found"])[-1][:300]
        status = json.loads(done.stdout).get("status") or {}
        if not status:
            return "no status yet"
        parts = [f"{key}={status[key]}" for key in ("phase", "state") if key in status]
        parts += [f"{c.get('type')}={c.get('status')}" + (f" ({c.get('reason')})" if c.get("reason") else "")
                  for c in status.get("conditions", []) if isinstance(c, dict)]
        return ", ".join(parts) or json.dumps(status, sort_keys=True)[:300]

    def _api_ready(self) -> bool:
        try:
            status, body = self.api_get("/readyz")
        except (OSError, SandboxError, ssl.SSLError):
            return False
        return status == 200 and body.strip() == b"ok"

    def _etcd_healthy(self, state: ClusterState) -> bool:
        endpoint = state.etcd_servers.split(",")[0] if state.etcd_servers else f"http://127.0.0.1:{state.etcd_client_port}"
        try:
            with urllib.request.urlopen(f"{endpoint}/health", timeout=1) as response:
                return bool(json.loads(response.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _create_nodes(self) -> None:
        nodes = []
        for name in FAKE_NODES:
            nodes.append({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                                           "kwok.x-k8s.io/node": "fake"},
                             "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                        "kubernetes.io/arch": "amd64", "type": "kwok"}},
                "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                           "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"}}})
        self.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(nodes))

    def _nodes_ready(self) -> bool:
        done = self.kubectl("get", "nodes", "-o", "json", check=False)
        if done.returncode != 0:
            return False
        items = json.loads(done.stdout).get("items", [])
        ready = [n for n in items if any(c.get("type") == "Ready" and c.get("status") == "True"
                                         for c in n.get("status", {}).get("conditions", []))]
        return len(ready) >= len(FAKE_NODES)

    def install_crds(self, kinds: Iterable[tuple[str, str]], *, extra_dirs: Iterable[Path] = ()) -> list[str]:
        """Install the real CRDs of these (apiVersion, kind) pairs and wait until they are served; returns the
        files they came from."""
        from dr.kube import crds

        installed: list[str] = []
        names: set[str] = set()
        for api_version, kind in sorted(set(kinds)):
            crd = crds.find(api_version, kind, extra_dirs=extra_dirs)
            if crd is None:
                raise SandboxError(f"no CustomResourceDefinition for {api_version} {kind} in "
                                   f"{', '.join(crds.searched(extra_dirs))}")
            if crd.name in names:
                continue
            names.add(crd.name)
            self.kubectl("apply", "--server-side", "-f", "-", input_text=json.dumps(crd.definition), timeout=120)
            name = f"crd/{crd.name}"
            # `kubectl wait` fails outright while the CRD has no status yet: ask until it is Established.
            def established(name: str = name) -> bool:
                return self.kubectl("wait", "--for=condition=Established", name, "--timeout=5s",
                                    check=False).returncode == 0

            self._wait(established, name, 60)
            installed.append(str(crd.path))
        return installed

    def _default_service_account(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0
