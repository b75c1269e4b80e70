"""The sandbox drill: a small production on this machine, a real disaster, a real rebuild.

From the graph's host-level stateful parts it builds production here — an etcd with control-plane
keys written continuously, a PostgreSQL 15 with a workload writing timestamped rows while
pgBackRest archives its WAL, directories of files backed up with restic — takes real backups,
records the moment of the disaster, destroys it all, and hands the executor one task per step of
the plan: host-level restores and the sandbox-safe playbooks run for real against fresh instances
(loopback ports, directories under the sandbox); the control-plane step starts a real control plane
(kube-apiserver, controller-manager, scheduler, kwok's fake nodes) on the restored etcd; every
Kubernetes-level step is applied to it by `pulumi up` through the real pulumi-kubernetes provider, with
charts from a chart mirror (`dr.drill.kube_layer`); steps that need real machines (k3s agents, Talos,
your own commands) are reported as not run, with the reason. Production's etcd is the etcd of a real
control plane too, so the snapshot holds real Kubernetes objects. Afterwards it checks the restored
data and measures, per backup, how much was lost.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import secrets as secrets_module
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dr import process_tree
from dr.core.durations import engine_margin_s
from dr.core.plan import Plan
from dr.core.resources import ResourcePlan
from dr.core.spec import GraphSpec
from dr.core.steps import CLUSTER_CHILD_KINDS, NOT_RUN_IN_DRILLS, ON_HOSTS, step_inputs
from dr.drill.executor import StepRecord, Task
from dr.drill.kube_layer import StepGates
from dr.drill.sandbox_pg import PG_BIN, PgSandbox, as_postgres, postgres_argv
from dr.hosts.host_steps import run_step
from dr.kube.sandbox_cluster import SandboxCluster, free_port
from dr.restore import restic
from dr.shutdown import run_every

if TYPE_CHECKING:
    from dr.drill.kube_layer import KubeLayer
    from dr.drill.standin_operators import StandInOperators

SANDBOX_PLAYBOOKS = ("os-prepare.yml", "nfs-exports.yml")  # safe to run for real with sandbox paths
WORKLOAD_PREFIX = "/dr-sandbox/workload/"  # production's own writes: beside the API server's /registry/, unread by it
NOT_RUN_STAND_INS = {"k3s-agent.yml": "kwok's fake nodes stand in for the agents k3s-agent.yml would join; the "
                                      "playbook needs real hosts"}


@dataclass
class SandboxState:
    """Everything a resumed drill needs to find its sandbox again (no secrets: those are in `secrets`)."""

    root: str
    etcd_client_port: int = 0
    etcd_peer_port: int = 0  # unused since production became a SandboxCluster; kept so old state files load
    etcd_pid: int = 0        # likewise
    etcd_members: list[dict[str, Any]] = field(default_factory=list)
    pg_base: str = ""
    pg_port: int = 0
    restic: dict[str, dict[str, str]] = field(default_factory=dict)  # backup -> repo, source
    backups_taken_at: dict[str, float] = field(default_factory=dict)
    disaster_at: float = 0.0
    production_etcd: list[dict[str, Any]] = field(default_factory=list)  # members of a multi-member production

    def save(self) -> None:
        Path(self.root, "state.json").write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, root: Path) -> SandboxState:
        return cls(**json.loads((root / "state.json").read_text(encoding="utf-8")))


class Sandbox:
    def __init__(self, root: Path, plan: Plan, spec: GraphSpec, resources: ResourcePlan) -> None:
        root = root.resolve()
        self.root, self.plan, self.spec, self.resources = root, plan, spec, resources
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        secret_file = root / "secrets"
        if not secret_file.exists():
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets_module.token_hex(16))
        self.password = secret_file.read_text().strip()  # a throwaway password of throwaway repositories
        self.state = SandboxState.load(root) if (root / "state.json").exists() else SandboxState(root=str(root))
        self._stop_writers = threading.Event()
        self._writers: list[threading.Thread] = []
        self._workload: subprocess.Popen[bytes] | None = None
        self._kube: KubeLayer | None = None
        self._operators: StandInOperators | None = None
        self._served = contextlib.ExitStack()  # the chart mirror, served while the drill runs
        self._kube_lock = threading.Lock()
        self.gates = StepGates()  # what the executor finished, for the Kubernetes layer's engine run
        # Per backup, inputs a scenario sets on its restore (e.g. allow_collapsed, the answer a refusal names).
        self.input_overrides: dict[str, dict[str, Any]] = {}
        self.production_members = 1  # production's etcd members (3 for a scenario that loses quorum)
        self.say: Callable[[str], None] = lambda _: None  # progress of the phases before the rebuild
        self.resumed = False  # continuing a drill a crash interrupted (`dr drill --resume`)
        # Backups declared unusable before the rebuild (backup -> why): their restores are not run, and the
        # rebuild goes on from scratch (an etcd snapshot declared unusable: the control plane on an empty etcd).
        self.declared_unusable: dict[str, str] = {}

    # -- where things live -----------------------------------------------------------------
    def hostfs(self, path: str) -> Path:
        """Where a host path of the graph lives in the sandbox."""
        return self.root / "hostfs" / path.lstrip("/")

    def host_restores(self, tool: str) -> list[tuple[str, Mapping[str, Any]]]:
        return [(comp.name, child.inputs) for comp in self.resources.components for child in comp.children
                if child.kind == "host-restore" and child.inputs["tool"] == tool]

    @property
    def pg(self) -> PgSandbox:
        return PgSandbox(base=Path(self.state.pg_base), port=self.state.pg_port)

    # -- production ------------------------------------------------------------------------
    def build_production(self) -> None:
        if self.host_restores("etcd-snapshot"):
            self.say(f"production: a control plane on {self.production_members} etcd member(s), with a writer")
            self._start_production_cluster()
        if self.host_restores("pgbackrest"):
            self.say("production: PostgreSQL 15 with a workload writing rows, its WAL archived by pgBackRest")
            pg = PgSandbox.create()
            self.state.pg_base, self.state.pg_port = str(pg.base), pg.port
            self.state.save()  # at once: a crash from here on must still find (and stop) this server
            with (pg.data / "postgresql.conf").open("a") as conf:
                conf.write("archive_timeout = 3\n")  # archive WAL every few seconds, like a busy server
            as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(pg.data), "-w", "restart", "-l", str(pg.base / "pg.log"))
            pg.sql("CREATE TABLE workload (id bigserial PRIMARY KEY, note text, at timestamptz NOT NULL)")
            self._start_workload()
        for _, inputs in self.host_restores("restic"):
            backup = str(inputs["backup"])
            self.say(f"production: volume {backup} (files) and its restic repository")
            source = self.root / "production" / backup
            self.write_files(source, count=80, round_=0)
            repo = self.root / "backups" / f"restic-{backup}"
            restic.ResticRepository(str(repo), self.password).run("init")
            self.state.restic[backup] = {"repo": str(repo), "source": str(source)}
        self.state.save()

    def _start_production_cluster(self) -> None:
        """Production's control plane: a real one (etcd, kube-apiserver, controllers, kwok nodes), so its
        snapshots hold real Kubernetes objects; a writer adds workload keys beside them to measure RPO."""
        production = SandboxCluster(self.root / "production" / "cluster")
        servers = self._start_production_etcd() if self.production_members > 1 else ()
        state = production.up(timeout=120, hostpath_deleter=True, etcd_servers=servers)
        self.state.etcd_client_port = (self.state.production_etcd[0]["client_port"] if servers
                                       else state.etcd_client_port)
        self.state.save()  # its processes are recorded in its own cluster.json, where cleanup finds them
        client = f"http://127.0.0.1:{self.state.etcd_client_port}"
        production.kubectl("create", "namespace", "production-workload")
        for i in range(300):
            _etcd_put(client, f"{WORKLOAD_PREFIX}cm-{i:04d}", json.dumps({"written_at": time.time()}))
        writer = threading.Thread(target=self._etcd_writer, args=(client,), daemon=True)
        writer.start()
        self._writers.append(writer)

    def _start_production_etcd(self) -> tuple[str, ...]:
        """A multi-member etcd for production (real etcd 3.6, loopback ports), its members recorded first."""
        from dr.kube.toolchain import Toolchain

        etcd = Toolchain.find().path("etcd")
        members: list[dict[str, Any]] = [
            {"name": f"p{i}", "client_port": free_port(), "peer_port": free_port(),
             "data_dir": str(self.root / "production" / "etcd" / f"p{i}")} for i in range(self.production_members)]
        self.state.production_etcd = members
        self.state.save()
        initial = ",".join(f"{m['name']}=http://127.0.0.1:{m['peer_port']}" for m in members)
        for member in members:
            Path(member["data_dir"]).parent.mkdir(parents=True, exist_ok=True)
            client, peer = f"http://127.0.0.1:{member['client_port']}", f"http://127.0.0.1:{member['peer_port']}"
            with open(self.root / "production" / "etcd" / f"{member['name']}.log", "ab") as log:
                subprocess.Popen([etcd, "--name", member["name"], "--data-dir", member["data_dir"],
                                  "--listen-client-urls", client, "--advertise-client-urls", client,
                                  "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                  "--initial-cluster", initial, "--initial-cluster-state", "new",
                                  "--initial-cluster-token", f"dr-production-{os.getpid()}",
                                  "--listen-metrics-urls", "", "--log-level", "warn"],
                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return tuple(f"http://127.0.0.1:{m['client_port']}" for m in members)

    def stop_production_members(self, names: list[str]) -> None:
        """Kill production's etcd members by name (found by their data directory on the command line)."""
        for member in self.state.production_etcd:
            if member["name"] in names:
                for pid in process_tree.with_argument(str(member["data_dir"])):
                    _kill(pid)

    def _etcd_writer(self, client: str) -> None:
        i = 0
        while not self._stop_writers.is_set():
            try:
                _etcd_put(client, f"{WORKLOAD_PREFIX}ev-{i:06d}", json.dumps({"written_at": time.time()}))
            except OSError:
                return
            i += 1
            self._stop_writers.wait(0.2)

    def _start_workload(self) -> None:
        pg = self.pg
        loop = ("DO $$ BEGIN LOOP INSERT INTO workload (note, at) VALUES ('order', clock_timestamp()); COMMIT; "
                "PERFORM pg_sleep(0.2); END LOOP; END $$;")
        self._workload = subprocess.Popen(postgres_argv(str(PG_BIN / "psql"), "-h", str(pg.base), "-p", str(pg.port),
                                                        "-d", "postgres", "-c", loop), stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)

    def write_files(self, root: Path, *, count: int, round_: int) -> None:
        """Files of a production volume: `count` of them in eight directories, each a timestamp and random bytes;
        round 0 writes every file, round N rewrites every tenth (what changes between backups)."""
        for i in range(count):
            path = root / f"dir{i % 8}" / f"file-{i:04d}.dat"
            path.parent.mkdir(parents=True, exist_ok=True)
            if round_ == 0 or i % 10 == round_:
                path.write_bytes(json.dumps({"written_at": time.time(), "round": round_}).encode()
                                 + os.urandom(2048 + 97 * i))
        (root / "empty-dir").mkdir(exist_ok=True)

    def take_backups(self) -> None:
        """Real backups: etcd snapshots, a pgBackRest full backup (WAL keeps archiving), restic rounds."""
        if self.host_restores("pgbackrest"):
            self.say("backup: pgBackRest full backup (WAL keeps archiving)")
            stanza = ["pgbackrest", f"--config={self.pg.config}", "--stanza=main"]
            as_postgres(*stanza, "stanza-create")
            as_postgres(*stanza, "--type=full", "backup")
            self.state.backups_taken_at["pgbackrest"] = time.time()
        for round_ in range(1, 4):
            if self.state.restic:
                self.say(f"backup: restic round {round_} of 3 ({', '.join(self.state.restic)})")
            for backup, places in self.state.restic.items():
                if round_ > 1:
                    self.write_files(Path(places["source"]), count=80, round_=round_)
                restic.ResticRepository(places["repo"], self.password).run("backup", places["source"])
                self.state.backups_taken_at[backup] = time.time()
            time.sleep(0.3)
        if self.host_restores("etcd-snapshot"):
            self.say("backup: two etcd snapshots")
            snapshots = self.root / "backups" / "etcd-snapshots"
            snapshots.mkdir(parents=True, exist_ok=True)
            client = f"http://127.0.0.1:{self.state.etcd_client_port}"
            for n in range(2):
                subprocess.run(["etcdctl", "--endpoints", client, "snapshot", "save", str(snapshots / f"etcd-{n}.db")],
                               check=True, capture_output=True, env={**os.environ, "ETCDCTL_API": "3"})
                time.sleep(1.0)
            self.state.backups_taken_at["etcd-snapshot"] = time.time()
        self.say("production goes on for 4 s after the last backup: what the rebuild cannot bring back (the RPO)")
        time.sleep(4)  # production goes on: more rows, more WAL archived, more etcd events
        self.state.save()

    def disaster(self, at: float | None = None) -> float:
        """Record the moment (`at`: when a scenario's incident struck), then destroy production: processes
        killed, data deleted."""
        self.state.disaster_at = at if at is not None else time.time()
        self._stop_writers.set()
        self.stop_production_cluster()
        self.stop_database()
        if self.state.pg_base:
            shutil.rmtree(self.pg.data, ignore_errors=True)
        shutil.rmtree(self.root / "production", ignore_errors=True)
        self.state.save()
        return self.state.disaster_at

    def stop_database(self) -> None:
        """Production's database stops at once, its workload with it (its data stays until `disaster`)."""
        if self._workload is not None:
            self._workload.kill()
            self._workload.wait()
            self._workload = None
        if self.state.pg_base:
            self.pg.stop()

    def production_cluster(self) -> SandboxCluster:
        """Production's control plane, started if the graph did not need one (no etcd restore)."""
        production = SandboxCluster(self.root / "production" / "cluster")
        if not production.running():
            self._start_production_cluster()
        return production

    # -- the rebuild -----------------------------------------------------------------------
    def tasks(self) -> list[Task]:
        from dr.drill.kube_layer import is_kube_step

        tasks = []
        for step in self.plan.steps:
            component = next(c for c in self.resources.components if c.name == step.name)
            children = component.children
            host = [c for c in children if c.kind in ON_HOSTS]
            # The sandbox has a cluster: of the steps a local drill cannot run, only those that need the
            # operator's machine or the world outside stay not-run here.
            local = [c for c in children if c.kind in NOT_RUN_IN_DRILLS and c.kind not in CLUSTER_CHILD_KINDS]
            if component.provides_kubeconfig:
                tasks.append(Task(step.name, step.depends_on, lambda attempt: self.start_control_plane(),
                                  timeout_s=step.timeout_s, timeout_reason=step.timeout_reason))
            elif local:
                tasks.append(Task(step.name, step.depends_on, lambda attempt: {}, kind="not-run",
                                  reason=NOT_RUN_IN_DRILLS[local[0].kind]))
            elif not children:
                tasks.append(Task(step.name, step.depends_on, lambda attempt: {}, kind="run"))
            elif host:
                inputs = step_inputs(host[0])
                unusable = self.declared_unusable.get(str(inputs.get("backup", "")))
                if unusable is not None:
                    tasks.append(Task(step.name, step.depends_on, lambda attempt: {}, kind="not-run",
                                      reason=f"backup {inputs['backup']} declared unusable ({unusable}): rebuilt "
                                             "from scratch"))
                elif host[0].kind == "playbook" and inputs["playbook"] not in SANDBOX_PLAYBOOKS:
                    reason = NOT_RUN_STAND_INS.get(str(inputs["playbook"]),
                                                   f"{inputs['playbook']} needs real hosts; the sandbox cannot run it")
                    tasks.append(Task(step.name, step.depends_on, lambda attempt: {}, kind="not-run", reason=reason))
                else:
                    tasks.append(Task(step.name, step.depends_on, self._runner(step.name, inputs),
                                      timeout_s=step.timeout_s, timeout_reason=step.timeout_reason))
            elif is_kube_step(component):
                # Longer than the objects' own waits (the same timeout): the engine's report comes first.
                margin = engine_margin_s(step.timeout_s)
                tasks.append(Task(step.name, step.depends_on, self._kube_runner(step.name),
                                  timeout_s=step.timeout_s + margin,
                                  timeout_reason=f"{step.timeout_reason}, and {margin} s for the engine to report "
                                                 "its own timeout",
                                  waiting_for=functools.partial(self._waiting_for, step.name)))
            else:
                kinds = ", ".join(sorted({c.kind for c in children}))
                tasks.append(Task(step.name, step.depends_on, lambda attempt: {}, kind="not-run",
                                  reason=f"the sandbox cannot run a step of {kinds}"))
        return tasks

    # -- the Kubernetes layer --------------------------------------------------------------
    @property
    def drill_cluster(self) -> SandboxCluster:
        return SandboxCluster(self.root / "cluster")

    def start_control_plane(self) -> dict[str, Any]:
        """The control-plane step: a real control plane on the restored etcd members (or on an empty etcd
        when the graph restores none: the from-scratch recovery), standing in for k3s or Talos."""
        members = [f"http://{m['address']}:{m['client_port']}" for m in self.state.etcd_members]
        cluster = self.drill_cluster
        if cluster.running():
            cluster.down()  # a rerun after a crash: start it again on the same data
        state = cluster.up(etcd_servers=tuple(members), timeout=120)
        self._start_operators()
        return {"api_server": f"https://127.0.0.1:{state.apiserver_port}",
                "etcd": "restored members" if members else "empty (from scratch)",
                "stand_in": ["the sandbox's control plane (kube-apiserver, controller-manager, scheduler, kwok fake "
                             "nodes) stands in for the k3s servers"]}

    def _start_operators(self) -> None:
        from dr.drill.standin_operators import StandInOperators

        if self._operators is None:
            cluster = self.drill_cluster
            self._operators = StandInOperators.for_plan(self.resources, cluster.kubectl)
            self._operators.start()

    def kube_layer(self) -> KubeLayer:
        """The engine runner of the Kubernetes-level steps, with its chart mirror (made once per process)."""
        from dr.charts.sandbox import sandbox_mirror
        from dr.core.charts import chart_pins
        from dr.drill.kube_layer import KubeLayer

        with self._kube_lock:
            if self._kube is not None:
                return self._kube
            cluster = self.drill_cluster
            if not cluster.running():
                self.start_control_plane()  # a graph without a control-plane step, or a resumed drill
            self._start_operators()
            mirror = self._served.enter_context(sandbox_mirror(chart_pins(self.spec), self.root,
                                                               services=self._verified_services(),
                                                               crd_dirs=self.spec.crd_dirs))
            self._kube = KubeLayer(root=self.root, resources=self.resources,
                                   kubeconfig=lambda: cluster.kubeconfig.read_text(encoding="utf-8"),
                                   chart_mirror=mirror, secrets=self._restore_credentials(),
                                   operators=self._operators, gates=self.gates, cluster=self, say=self.say,
                                   # Objects that came back with a restored etcd, or that this drill created
                                   # before a crash (not in the engine's state): adopted, not refused.
                                   adopt=bool(self.state.etcd_members) or self.resumed)
            self._kube.check_available()
            return self._kube

    def step_finished(self, record: StepRecord) -> None:
        """The executor's event: a finished host-level step (or milestone) lets the Kubernetes-level steps
        that wait for it be created in the layer's engine run."""
        self.gates.observe(record)

    def _waiting_for(self, name: str) -> str:
        return self._kube.waiting_for(name) if self._kube is not None else "the Kubernetes layer to start"

    # What the Kubernetes layer asks of the rebuilt cluster (`dr.drill.kube_layer.LayerCluster`).
    def serves(self, api_version: str, kind: str) -> bool:
        return self.drill_cluster.serves(api_version, kind)

    def live_status(self, api_version: str, kind: str, namespace: str, name: str) -> str:
        return self.drill_cluster.live_status(api_version, kind, namespace, name)

    def crd_hint(self, api_version: str, kind: str) -> str:
        """Where its CRD would have come from here: the stand-in chart of the operator of its group, which
        carries the CRDs dr found for that group."""
        from dr.charts.sandbox import OPERATOR_CRD_GROUPS
        from dr.core.charts import chart_pins
        from dr.core.kube_objects import api_group
        from dr.kube import crds

        group = api_group(api_version)
        looked = ", ".join(crds.searched(self.spec.crd_dirs))
        charts = [f"{pin.name} {pin.version}" for pin in chart_pins(self.spec)
                  if group in OPERATOR_CRD_GROUPS.get(pin.name, ())]
        found = crds.find(api_version, kind, extra_dirs=self.spec.crd_dirs)
        if not charts:
            return (f"no chart of the graph installs the CRDs of {group} in the sandbox (no stand-in chart carries "
                    f"that group); dr looked for the CRD in {looked}")
        if found is None:
            return (f"the sandbox's stand-in chart {charts[0]} carries no CRD for it: none was found in {looked} "
                    "(`make toolchain` fetches the operators' CRDs; give your own with the graph's crds: or "
                    "DR_CRDS_DIR)")
        return f"the stand-in chart {charts[0]} carries {found.name} (from {found.path}), yet it is not served"

    def _kube_runner(self, name: str):  # type: ignore[no-untyped-def]
        def run(attempt: int) -> dict[str, Any]:
            return self.kube_layer().apply(name)
        return run

    def _restore_credentials(self) -> dict[str, Any]:
        """Throwaway values for the credential Secrets restore objects name (the stack's `dr:secrets` in a
        real rebuild): nothing reads them here, since no operator runs."""
        credentials: dict[str, Any] = {}
        for component in self.resources.components:
            for child in component.children:
                if child.kind == "restore-precheck":
                    for secret in child.inputs.get("precheck", {}).get("secrets", []):
                        credentials[f"{secret['namespace']}/{secret['name']}"] = {
                            key: f"dr-sandbox-{secrets_module.token_hex(8)}" for key in secret["keys"]}
        return credentials

    def _verified_services(self) -> dict[str, list[tuple[str, int]]]:
        """Per chart, the Services the graph's http checks name (`<service>.<namespace>.svc…`): the stand-in
        chart creates them, so a check finds a real Service with ready endpoints."""
        from urllib.parse import urlsplit

        from dr.core.spec import HelmAction

        services: dict[str, list[tuple[str, int]]] = {}
        for component in self.spec.components.values():
            if not isinstance(component.action, HelmAction):
                continue
            for check in component.verify:
                if check.kind != "http":
                    continue
                url = urlsplit(str(check.spec["http"]))
                host = (url.hostname or "").split(".")
                if len(host) >= 3 and host[2] == "svc":
                    port = url.port or (443 if url.scheme == "https" else 80)
                    services.setdefault(component.action.chart, []).append((host[0], port))
        return services

    def _runner(self, name: str, inputs: Mapping[str, Any]):  # type: ignore[no-untyped-def]
        def run(attempt: int) -> dict[str, Any]:
            local = self.sandbox_inputs(inputs, rerun=attempt > 1)
            return run_step(local, hosts={}, secrets={"restic_password": self.password})
        return run

    def sandbox_inputs(self, inputs: Mapping[str, Any], *, rerun: bool) -> dict[str, Any]:
        """The step's inputs pointed at the sandbox: loopback ports, paths under the sandbox."""
        local: dict[str, Any] = json.loads(json.dumps(dict(inputs)))
        variables: dict[str, Any] = local.setdefault("vars", {})
        local["hosts"] = ["all"]
        if rerun:
            variables["force"] = True  # a rerun after a crash moves half-restored data aside
        if local.get("playbook") == "os-prepare.yml" and "tool" not in local:
            variables.update({"os_packages": [], "os_apt_update": False, "os_apply_sysctls": False,
                              "os_disable_swap": False,
                              "os_sysctl_file": str(self.hostfs("/etc/sysctl.d/90-dr.conf")),
                              "os_modules_file": str(self.hostfs("/etc/modules-load.d/dr.conf")),
                              "os_fstab": str(self.hostfs("/etc/fstab"))})
            self.hostfs("/etc").mkdir(parents=True, exist_ok=True)
            self.hostfs("/etc/fstab").touch()
        elif local.get("playbook") == "nfs-exports.yml" and "tool" not in local:
            variables["nfs_exports"] = [str(self.hostfs(p)) for p in variables.get("nfs_exports", [])]
            variables.update({"nfs_exports_file": str(self.hostfs("/etc/exports.d/dr.exports")), "nfs_reload": False})
        local.update(self.input_overrides.get(str(local.get("backup", "")), {}))
        tool = local.get("tool")
        if tool == "restic":
            variables["repository"] = self.state.restic[str(local["backup"])]["repo"]
            variables["restore_path"] = str(self.hostfs(str(variables["restore_path"])))
        elif tool == "etcd-snapshot":
            if not self.state.etcd_members:
                self.state.etcd_members = [
                    {"name": f"m{i}", "host": "localhost", "address": "127.0.0.1", "peer_port": free_port(),
                     "client_port": free_port(), "data_dir": str(self.root / "restored" / "etcd" / f"m{i}")}
                    for i in range(3)]
                self.state.save()
            if rerun:
                self._stop_etcd_members()
            # The same etcd 3.6 that ran production (the API server needs 3.5 or newer; Debian's is 3.4).
            from dr.kube.toolchain import Toolchain

            toolchain = Toolchain.find()
            variables.update({"snapshot_dir": str(self.root / "backups" / "etcd-snapshots"),
                              "etcd_members": self.state.etcd_members, "min_keys": 300,
                              "etcd_binary": toolchain.path("etcd"), "etcdctl_binary": toolchain.path("etcdctl"),
                              "etcdutl_binary": toolchain.path("etcdutl")})
        elif tool == "pgbackrest":
            pg = self.pg
            if rerun:
                pg.stop()
            variables.update({"pgbackrest_config": str(pg.config), "pg_data": str(pg.data), "pg_port": pg.port,
                              "pg_socket_dir": str(pg.base)})
        return local

    def stop_production_cluster(self) -> None:
        production = self.root / "production" / "cluster"
        if production.is_dir():
            SandboxCluster(production).down()
        self.stop_production_members([m["name"] for m in self.state.production_etcd])

    def _stop_etcd_members(self) -> None:
        for member in self.state.etcd_members:
            # By its data directory on its command line, never by the number in its pid file: after a
            # reboot that number may be any process's.
            for pid in process_tree.with_argument(str(member["data_dir"])):
                _kill(pid)

    # -- after the rebuild -----------------------------------------------------------------
    def newest_restored(self) -> dict[str, float]:
        """Per backup, the time of the newest record that came back (epoch seconds)."""
        newest: dict[str, float] = {}
        for _component, inputs in self.host_restores("restic"):
            path = self.hostfs(str(inputs["vars"]["restore_path"]))
            times = [p.stat().st_mtime for p in path.rglob("*.dat")] if path.is_dir() else []
            if times:
                newest[str(inputs["backup"])] = max(times)
        for _component, inputs in self.host_restores("etcd-snapshot"):
            if self.state.etcd_members:
                values = _etcd_values(self.state.etcd_members, WORKLOAD_PREFIX)
                times = [json.loads(v).get("written_at", 0) for v in values]
                if times:
                    newest[str(inputs["backup"])] = max(times)
        for _component, inputs in self.host_restores("pgbackrest"):
            try:
                value = self.pg.sql("SELECT extract(epoch FROM max(at)) FROM workload")
            except subprocess.CalledProcessError:
                continue
            if value:
                newest[str(inputs["backup"])] = float(value)
        return newest

    def check(self, kind: str, spec: Mapping[str, Any]) -> tuple[bool, str]:
        """Run one of the graph's verify checks against the sandbox."""
        if kind == "etcd":
            count = len(_etcd_values(self.state.etcd_members, str(spec["etcd"]), decode=False))
            minimum = int(spec.get("min_keys", 1))
            return count >= minimum, f"{count} keys under {spec['etcd']} (at least {minimum})"
        if kind == "files":
            path = self.hostfs(str(spec["files"]))
            count = sum(1 for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
            minimum = int(spec.get("min_files", 1))
            return count >= minimum, f"{count} files in {spec['files']} (at least {minimum})"
        if kind == "sql":
            value = self.pg.sql(str(spec["sql"]))
            minimum = int(spec.get("min", 1))
            ok = value.lstrip("-").isdigit() and int(value) >= minimum
            return ok, f"{spec['sql']} returned {value} (at least {minimum})"
        if kind == "http":
            return self._service_check(str(spec["http"]))
        return False, f"{kind} checks need the real cluster"

    def _service_check(self, url: str) -> tuple[bool, str]:
        """What of an http check the sandbox can check: the Service it names exists on the rebuilt cluster
        with ready endpoints. Nothing answers HTTP here (no container runs), and the report says so."""
        from urllib.parse import urlsplit

        host = (urlsplit(url).hostname or "").split(".")
        if len(host) < 3 or host[2] != "svc":
            return False, f"{url}: not a cluster Service address; the sandbox cannot reach it"
        service, namespace = host[0], host[1]
        done = self.drill_cluster.kubectl("get", "endpointslices", "-n", namespace, "-l",
                                          f"kubernetes.io/service-name={service}", "-o", "json", check=False)
        if done.returncode != 0:
            return False, f"Service {namespace}/{service}: {done.stderr.strip()}"
        ready = sum(1 for item in json.loads(done.stdout).get("items", []) for e in item.get("endpoints") or []
                    if (e.get("conditions") or {}).get("ready"))
        return ready > 0, (f"Service {namespace}/{service} has {ready} ready endpoint(s) on the rebuilt cluster "
                           "(HTTP itself is not answered in the sandbox: no container runs)")

    def backup_fingerprint(self) -> dict[str, str]:
        """sha256 of every file of the production backups (pgBackRest repository, restic repositories,
        etcd snapshots): a drill reads them and must leave them byte-identical."""
        roots = [self.root / "backups"]
        if self.state.pg_base:
            roots.append(Path(self.state.pg_base) / "repo")
        prints = {}
        for root in roots:
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    prints[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        return prints

    def cleanup(self) -> None:
        """Stop every process the drill started; keep the reports. Each stage runs even when a stop arrives
        during an earlier one (`dr.shutdown.run_every`)."""
        self._stop_writers.set()
        kube, operators = self._kube, self._operators
        run_every((
            kube.close if kube is not None else None,  # before the chart mirror and the cluster it applies to go
            operators.stop if operators is not None else None,
            self._served.close,
            self.drill_cluster.down,
            self.stop_production_cluster,
            self._stop_workload,
            self._stop_etcd_members,
            self._remove_postgres,
            self._remove_files,
        ))

    def _stop_workload(self) -> None:
        if self._workload is not None and self._workload.poll() is None:
            self._workload.kill()
            self._workload.wait()

    def _remove_postgres(self) -> None:
        if self.state.pg_base:
            self.pg.stop()
            shutil.rmtree(self.state.pg_base, ignore_errors=True)

    def _remove_files(self) -> None:
        for sub in ("production", "hostfs", "restored", "backups", "cluster", "engine", "charts", "charts-upstream"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        (self.root / "secrets").unlink(missing_ok=True)  # the throwaway repositories it opened are gone too


def _kill(pid: int) -> None:
    if pid <= 0:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    except PermissionError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)


def _etcd_put(client: str, key: str, value: str) -> None:
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                       "value": base64.b64encode(value.encode()).decode()}).encode()
    request = urllib.request.Request(f"{client}/v3/kv/put", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


def _etcd_values(members: list[dict[str, Any]], prefix: str, *, decode: bool = True) -> list[Any]:
    """The values under `prefix` from the first member that answers: text, or raw bytes with
    decode=False (the API server's own objects under /registry/ are protobuf)."""
    key = base64.b64encode(prefix.encode()).decode()
    end = base64.b64encode((prefix[:-1] + chr(ord(prefix[-1]) + 1)).encode()).decode()
    for member in members:
        request = urllib.request.Request(f"http://{member['address']}:{member['client_port']}/v3/kv/range",
                                         data=json.dumps({"key": key, "range_end": end}).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                kvs = json.loads(response.read()).get("kvs", [])
        except OSError:
            continue
        raw = [base64.b64decode(kv["value"]) for kv in kvs]
        return [value.decode() for value in raw] if decode else raw
    return []
