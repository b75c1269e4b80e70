"""The Kubernetes layer of a sandbox drill, through the real Pulumi engine and pulumi-kubernetes provider.

The whole layer is one `pulumi up` of one stack (Helm releases from the chart mirror, manifest objects,
restore objects with their prechecks, GitOps gates), registered by the same code as the real program
(`dr.stack.program.register`), against the sandbox cluster whose control plane started on the restored
etcd. The engine orders the Kubernetes-level steps among themselves by the graph's edges and runs
independent ones side by side, as a bare `pulumi up` would. A step that depends on a host-level step (run
by dr's executor: a host restore, a playbook, a milestone) is registered only once the executor says that
step finished (`StepGates`): its component's `depends_on` holds an awaitable the engine's program waits
on, inside this process. The executor still has one task per Kubernetes-level step, which waits for its
component in the shared run, so the journal, retries (a new up: finished components are unchanged),
`--resume` and the report keep one record per step. Each record carries the engine's own event times
(first resource of the component started, last one done), so the report can show a restore finishing
before the app that owns its data starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from dr.core.resources import ComponentResources, ResourcePlan
from dr.core.steps import CLUSTER_CHILD_KINDS
from dr.drill.executor import FINAL, FINISHED_OK, StepRecord
from dr.drill.standin_operators import StandInOperators
from dr.errors import DrError
from dr.kube.toolchain import KUBERNETES_PROVIDER, Toolchain

PROJECT = "dr-sandbox"
STACK = "kubernetes-layer"
COMPONENT_URN = "dr:recovery:Component::"


class KubeLayerError(DrError):
    """A Kubernetes-level step failed under the engine."""


def is_kube_step(component: ComponentResources) -> bool:
    return bool(component.children) and all(c.kind in CLUSTER_CHILD_KINDS for c in component.children)


def _short_error(text: str) -> str:
    """The engine's last `error:` line without its prefix, else the last line: at most 600 characters."""
    lines = [line.strip() for line in text.splitlines() if "error:" in line]
    if lines:
        return lines[-1].split("error:", 1)[-1].strip()[:600]
    rest = text.strip().splitlines()
    return rest[-1].strip()[:600] if rest else ""


def component_of(parent_urn: str) -> str | None:
    """The recovery-graph component a resource belongs to, from its parent's URN."""
    head, _, name = parent_urn.rpartition("::")
    return name if (head + "::").endswith(COMPONENT_URN) else None


class LayerCluster(Protocol):
    """What the layer asks of the cluster it applies to, besides what the engine does."""

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves this kind now (its discovery lists it)."""

    def crd_hint(self, api_version: str, kind: str) -> str:
        """Where dr looked for the CRD of this kind, and what would install it."""

    def live_status(self, api_version: str, kind: str, namespace: str, name: str) -> str:
        """The object's last status in the cluster, in a line."""


class StepGates:
    """What dr's executor has finished, told to the engine's run of the Kubernetes layer.

    `finished(name, ok)` comes from the executor's events (and, on `--resume`, from its journal);
    `wait(component, names)` is the awaitable a Kubernetes-level component's registration waits on: it
    returns once every named step finished well, and raises when one failed or the drill stops (the
    engine then creates nothing of that component)."""

    def __init__(self, poll_s: float = 0.05) -> None:
        self._finished: dict[str, bool] = {}
        self._stopped = False
        self._lock = threading.Lock()
        self.poll_s = poll_s

    def finished(self, name: str, ok: bool) -> None:
        with self._lock:
            self._finished[name] = ok

    def observe(self, record: StepRecord) -> None:
        """The executor's event: a step that finished well opens its gates, one that failed or was skipped
        closes them for good."""
        if record.state in FINAL:
            self.finished(record.name, record.state in FINISHED_OK)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True

    def reopen(self) -> None:
        with self._lock:
            self._stopped = False

    def stopped(self) -> bool:
        with self._lock:
            return self._stopped

    def done(self) -> set[str]:
        with self._lock:
            return {name for name, ok in self._finished.items() if ok}

    def failed(self) -> set[str]:
        with self._lock:
            return {name for name, ok in self._finished.items() if not ok}

    def _state(self, names: Sequence[str]) -> tuple[list[str], bool, bool]:
        with self._lock:
            failed = [n for n in names if self._finished.get(n) is False]
            return failed, all(self._finished.get(n) for n in names), self._stopped

    async def wait(self, component: str, names: Sequence[str], settled: Callable[[], bool] = lambda: True) -> None:
        """Returns once every step of `names` finished well. When one failed, raises, but only once the
        run has `settled` (every component that can still be created is done): the exception fails the
        program, and the engine would otherwise stop the independent steps still in flight."""
        while True:
            failed, ready, stopped = self._state(names)
            if failed and (stopped or settled()):
                raise KubeLayerError(f"{component} is not created: {', '.join(failed)} did not finish")
            if ready:
                return None
            if stopped:
                raise KubeLayerError(f"{component} is not created: the drill stopped first")
            await asyncio.sleep(self.poll_s)


@dataclasses.dataclass
class _Component:
    """What one engine run did for one component (from its events and its resources' URNs)."""

    resources: int = 0
    first_start: float | None = None
    last_done: float | None = None
    done_at: float | None = None
    changes: dict[str, int] = dataclasses.field(default_factory=dict)
    failures: list[str] = dataclasses.field(default_factory=list)
    pending: dict[str, tuple[str, Mapping[str, Any]]] = dataclasses.field(default_factory=dict)  # urn: (type, inputs)


class _Run:
    """One `pulumi up` of the layer, in a thread of its own."""

    def __init__(self) -> None:
        self.components: dict[str, _Component] = {}
        self.owners: dict[str, str] = {}  # resource URN -> component
        self.ended = threading.Event()
        self.error = ""
        self.failures: list[str] = []
        self.began = time.monotonic()
        self.lock = threading.Condition()

    def component(self, name: str) -> _Component:
        return self.components.setdefault(name, _Component())

    def done(self, name: str) -> None:
        with self.lock:
            entry = self.component(name)
            entry.done_at = entry.done_at or time.time()
            self.lock.notify_all()

    def end(self, error: str = "") -> None:
        with self.lock:
            self.error = error
            self.ended.set()
            self.lock.notify_all()

    def wait(self, name: str) -> _Component | None:
        """The component once the engine finished it, or None when the run ended without it."""
        with self.lock:
            while True:
                entry = self.components.get(name)
                if entry is not None and entry.done_at is not None:
                    return entry
                if self.ended.is_set():
                    return None
                self.lock.wait(timeout=1.0)

    def on_event(self, event: Any) -> None:
        now = time.time()
        pre, done, failed = event.resource_pre_event, event.res_outputs_event, event.res_op_failed_event
        diagnostic = event.diagnostic_event
        with self.lock:
            for step, is_start in ((pre, True), (done, False)):
                if step is None:
                    continue
                state = step.metadata.new or step.metadata.old
                name = component_of(state.parent) if state is not None else None
                if name is None:
                    continue
                entry = self.component(name)
                self.owners[step.metadata.urn] = name
                if is_start:
                    entry.first_start = min(entry.first_start or now, now)
                    entry.pending[step.metadata.urn] = (str(state.type), dict(state.inputs or {}))
                else:
                    entry.pending.pop(step.metadata.urn, None)
                    entry.last_done = max(entry.last_done or now, now)
                    op = str(getattr(step.metadata.op, "value", step.metadata.op))
                    entry.changes[op] = entry.changes.get(op, 0) + 1
            if failed is not None:
                self.failures.append(str(failed.metadata.urn))
            if diagnostic is not None and diagnostic.severity == "error" and diagnostic.message.strip():
                message = diagnostic.message.strip()
                self.failures.append(message)
                owner = self.owners.get(diagnostic.urn or "")  # a URN names types, not its component
                if owner is not None:
                    self.component(owner).failures.append(message)


class KubeLayer:
    """Applies the Kubernetes-level steps to a running cluster: one engine run for all of them.

    With a `cluster` (`LayerCluster`), a component whose objects need a custom resource kind is created only
    once its own dependencies in the layer are done and the API server serves that kind: when it does not
    within `crd_grace_s`, the step fails at once, naming the kind and where dr looked for its CRD, instead
    of the engine waiting on an object that cannot come."""

    def __init__(self, *, root: Path, resources: ResourcePlan, kubeconfig: Callable[[], str], chart_mirror: str,
                 secrets: Mapping[str, Any], operators: StandInOperators | None = None,
                 toolchain: Toolchain | None = None, adopt: bool = False, gates: StepGates | None = None,
                 cluster: LayerCluster | None = None, crd_grace_s: float = 20.0,
                 say: Callable[[str], None] = lambda _: None) -> None:
        self.root, self.resources, self.kubeconfig = root, resources, kubeconfig
        self.adopt = adopt  # the control plane came back from an etcd snapshot (dr:recovery etcd-snapshot)
        self.chart_mirror, self.secrets, self.operators = chart_mirror, dict(secrets), operators
        self.toolchain = toolchain or Toolchain.find()
        self.gates = gates or StepGates()
        self.cluster, self.crd_grace_s, self.say = cluster, crd_grace_s, say
        self._by_name = {c.name: c for c in resources.components}
        self._layer = layer_plan(resources)
        self._kube = {c.name for c in self._layer.components}
        self._layer_deps = {c.name: c.depends_on for c in self._layer.components}
        self._refused: dict[str, str] = {}  # component: why it is not created (a kind the server does not serve)
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._thread: threading.Thread | None = None
        self._engine: Any = None
        self.runs = 0  # engine runs so far (one, unless a step failed and was retried)

    def check_available(self) -> None:
        from dr.kube.toolchain import ENGINE

        missing = self.toolchain.missing((*ENGINE, *KUBERNETES_PROVIDER))
        if missing:
            raise KubeLayerError(f"the Kubernetes layer needs {', '.join(missing)}; run `make toolchain`")

    @property
    def work_dir(self) -> Path:
        return self.root / "engine" / "workspaces" / STACK

    def waits_of(self, name: str) -> tuple[str, ...]:
        """The steps outside the layer (host-level steps, milestones) this component waits for."""
        return tuple(d for d in self._by_name[name].depends_on if d not in self._kube)

    def apply(self, name: str) -> dict[str, Any]:
        """Waits for this step's component in the layer's engine run (starting the run if none is going on,
        or a new one when the last ended without this component); returns the engine's figures."""
        if name not in self._kube:
            raise KubeLayerError(f"{name} is not a Kubernetes-level step")
        with self._lock:
            run = self._run
            if run is None or (run.ended.is_set() and run.components.get(name, _Component()).done_at is None):
                self._refused.pop(name, None)  # a retry asks the API server again
                run = self._start()
        entry = run.wait(name)
        if entry is None:
            if name in self._refused:
                raise KubeLayerError(self._refused[name])
            with run.lock:
                detail = next((f for f in run.components.get(name, _Component()).failures), "") or next(
                    (f for f in run.failures if "urn:" not in f), "") or run.error
            raise KubeLayerError(f"pulumi up failed: {_short_error(detail) if detail else 'no detail'}")
        outputs: dict[str, Any] = {
            "engine": "pulumi up (pulumi-kubernetes)", "resources": entry.resources, "changes": dict(entry.changes),
            "first_start": entry.first_start, "last_done": entry.last_done or entry.done_at,
            "engine_s": round((entry.last_done or entry.done_at or 0.0) - (entry.first_start or entry.done_at or 0.0),
                              3)}
        if self.operators is not None:
            outputs["stand_in"] = self.operators.notes_for(self._by_name[name])
        return outputs

    def waiting_for(self, name: str) -> str:
        """What this step waits for now, for a timeout's message: the objects the engine started and has not
        finished (each with its awaited condition and its last status in the cluster), or what holds the
        component back before the engine starts it."""
        run = self._run
        if run is None:
            return "the Kubernetes layer's engine run to start"
        with run.lock:
            entry = run.components.get(name, _Component())
            pending = list(entry.pending.values())
        if not pending:
            held = [d for d in self.waits_of(name) if d not in self.gates.done()]
            held += [d for d in self._layer_deps.get(name, ()) if run.components.get(d, _Component()).done_at is None]
            return (f"{', '.join(held)} to finish (the engine has not started creating it)" if held else
                    "the engine to start creating it")
        return "; ".join(self._describe(type_, inputs) for type_, inputs in pending)

    def _describe(self, type_: str, inputs: Mapping[str, Any]) -> str:
        meta = inputs.get("metadata") or {}
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
        kind = type_.rsplit(":", 1)[-1]
        title = f"{kind} {namespace + '/' if namespace else ''}{name}".strip()
        annotations = meta.get("annotations") or {}
        condition = annotations.get("pulumi.com/waitFor")
        text = title + (f" until {condition}" if condition else " to become ready")
        api_version = str(inputs.get("apiVersion", ""))
        if self.cluster is not None and api_version and name:
            text += f" (last status: {self.cluster.live_status(api_version, kind, namespace, name)})"
        return text

    def _start(self) -> _Run:
        import pulumi
        from pulumi import automation

        from dr.stack.engine import Engine
        from dr.stack.program import register

        run = _Run()
        layer, kubeconfig = self._layer, self.kubeconfig()
        secrets, mirror, adopt = self.secrets, self.chart_mirror, self.adopt

        def wait_for(name: str) -> Any:
            names = self.waits_of(name)
            kinds = self._by_name[name].custom_kinds() if self.cluster is not None else ()
            return self._before_create(run, name, names, kinds) if names or kinds else None

        def on_component(name: str, resources: Sequence[pulumi.Resource]) -> None:
            run.component(name).resources = len(resources)
            if pulumi.runtime.is_dry_run():
                return
            pulumi.Output.all(*[r.urn for r in resources]).apply(lambda _: run.done(name))

        def program() -> None:
            register(layer, hosts={}, secrets=pulumi.Output.secret(secrets),
                     kubeconfig=pulumi.Output.secret(kubeconfig), chart_mirror=mirror, adopt=adopt,
                     wait_for=wait_for, on_component=on_component)

        engine = self._engine = Engine.at(self.root / "engine", self.toolchain)
        if self.runs == 0:  # what a run killed before this process started left: its processes, its lock
            left_behind = engine.stop_leftovers()
            locks_cleared = engine.clear_dead_locks(PROJECT, STACK)
            if left_behind:
                self.say(f"stopped what an interrupted engine run left running: {', '.join(left_behind)}")
            if locks_cleared:
                self.say(f"removed {len(locks_cleared)} lock(s) on the Kubernetes layer's stack whose engine is "
                         "dead")
        stack = engine.stack(project=PROJECT, stack=STACK, program=program, work_dir=self.work_dir)

        def up() -> None:
            try:
                stack.up(on_event=run.on_event, color="never", parallel=16)
                run.end()
            except automation.errors.CommandError as exc:
                run.end(_short_error(str(exc)))
            except Exception as exc:  # whatever ends the run ends every step waiting on it
                run.end(f"{type(exc).__name__}: {exc}")

        self.gates.reopen()
        self._run, self.runs = run, self.runs + 1
        self._thread = threading.Thread(target=up, name="dr-kubernetes-layer", daemon=True)
        self._thread.start()
        return run

    async def _before_create(self, run: _Run, name: str, waits: Sequence[str],
                             kinds: Sequence[tuple[str, str]]) -> None:
        """Holds a component's registration until the host-level steps it waits for finished and, when it
        needs custom resource kinds, until its dependencies in the layer are done and the API server serves
        those kinds. Raises (once the run has settled) when it will not be created."""
        if waits:
            await self.gates.wait(name, waits, settled=lambda: self._settled(run))
        if not kinds:
            return None
        assert self.cluster is not None
        deps = self._layer_deps.get(name, ())
        while True:
            pending = [d for d in deps if run.components.get(d, _Component()).done_at is None]
            if not pending:
                break
            if run.ended.is_set() or self.gates.stopped() or (set(pending) & self.blocked() and self._settled(run)):
                raise KubeLayerError(f"{name} is not created: {', '.join(pending)} did not finish")
            await asyncio.sleep(self.gates.poll_s)
        cluster, deadline = self.cluster, time.monotonic() + self.crd_grace_s
        while True:
            missing = [k for k in kinds if not await asyncio.to_thread(cluster.serves, *k)]
            if not missing or time.monotonic() >= deadline:
                break
            await asyncio.sleep(1.0)  # a chart that just installed a CRD: discovery catches up in a moment
        if not missing:
            return None
        after = f" after {', '.join(deps)} finished" if deps else ""
        reason = "; ".join(
            f"{name} needs {api_version} {kind}, which the API server does not serve: no CRD for it is installed "
            f"(asked for {self.crd_grace_s:g} s{after}); {cluster.crd_hint(api_version, kind)}"
            for api_version, kind in missing)
        self._refused[name] = reason
        with run.lock:
            run.component(name).failures.append(reason)
        while not (self._settled(run) or run.ended.is_set() or self.gates.stopped()):
            await asyncio.sleep(self.gates.poll_s)  # the steps independent of this one still finish
        raise KubeLayerError(reason)

    def blocked(self) -> set[str]:
        """The components that cannot be created: a step outside the layer they wait for failed, a kind they
        need is not served, or they depend on such a component."""
        failed = self.gates.failed()
        blocked: set[str] = set()
        for component in self._layer.components:  # in recovery order: dependencies first
            if (component.name in self._refused or set(self.waits_of(component.name)) & failed
                    or set(component.depends_on) & blocked):
                blocked.add(component.name)
        return blocked

    def _settled(self, run: _Run) -> bool:
        blocked = self.blocked()
        with run.lock:
            return all(run.components.get(name, _Component()).done_at is not None
                       for name in self._kube - blocked)

    def close(self, timeout_s: float = 20.0) -> None:
        """Stop: components still held back are not created, the engine's update is cancelled (its `pulumi`
        process and the provider plugins it started are stopped), and every step waiting on the run ends."""
        self.gates.stop()
        thread, run = self._thread, self._run
        if thread is not None and thread.is_alive():
            if self._engine is not None:
                self._engine.stop_commands(self.work_dir)
            if run is not None and not run.ended.is_set():
                run.end("the drill stopped before the Kubernetes layer finished")
            thread.join(timeout=timeout_s)
        if self._engine is not None:
            self._engine.remove_tmp()  # the provider's kubeconfig files: credentials of the rebuilt cluster


def layer_plan(resources: ResourcePlan) -> ResourcePlan:
    """The Kubernetes-level components, with their edges to each other (edges to host-level steps and
    milestones become gates)."""
    kube = [c for c in resources.components if is_kube_step(c)]
    names = {c.name for c in kube}
    return dataclasses.replace(resources, kubeconfig_from=None, components=tuple(
        dataclasses.replace(c, provides_kubeconfig=False, depends_on=tuple(d for d in c.depends_on if d in names))
        for c in kube))

