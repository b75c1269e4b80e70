"""The Kubernetes layer of a sandbox drill, through the real Pulumi engine and pulumi-kubernetes provider.

Each Kubernetes-level step (Helm releases from the chart mirror, manifest objects, restore objects with
their prechecks, GitOps gates) is one `pulumi up` of its own stack, registered by the same code as the
real program (`dr.stack.program.register`), against the sandbox cluster whose control plane started on
the restored etcd. The executor orders the steps exactly as the graph does, runs independent ones side
by side, retries and journals them; the engine does the work. Each up reports the engine's own event
times (first resource started, last resource done), so the report can show a restore finishing before
the app that owns its data starts.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dr.core.resources import ComponentResources, ResourcePlan
from dr.drill.standin_operators import StandInOperators
from dr.errors import DrError
from dr.kube.toolchain import KUBERNETES_PROVIDER, Toolchain

KUBE_CHILD_KINDS = frozenset({"helm-release", "config-group", "kube-object", "restore-precheck", "gitops-hold",
                              "gitops-release"})
PROJECT = "dr-sandbox"


class KubeLayerError(DrError):
    """A Kubernetes-level step failed under the engine."""


def is_kube_step(component: ComponentResources) -> bool:
    return bool(component.children) and all(c.kind in KUBE_CHILD_KINDS for c in component.children)


def stack_name(component: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", component)


def _short_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if "error:" in line]
    return (lines[-1].split("error:", 1)[-1].strip() if lines else text.strip().splitlines()[-1:] or [""])[0][:600]


class KubeLayer:
    """Applies Kubernetes-level steps to a running cluster, one engine run per step."""

    def __init__(self, *, root: Path, resources: ResourcePlan, kubeconfig: Callable[[], str], chart_mirror: str,
                 secrets: Mapping[str, Any], operators: StandInOperators | None = None,
                 toolchain: Toolchain | None = None, adopt: bool = False) -> None:
        self.root, self.resources, self.kubeconfig = root, resources, kubeconfig
        self.adopt = adopt  # the control plane came back from an etcd snapshot (dr:recovery etcd-snapshot)
        self.chart_mirror, self.secrets, self.operators = chart_mirror, dict(secrets), operators
        self.toolchain = toolchain or Toolchain.find()
        self._by_name = {c.name: c for c in resources.components}
        self._init_lock = threading.Lock()

    def check_available(self) -> None:
        from dr.kube.toolchain import ENGINE

        missing = self.toolchain.missing((*ENGINE, *KUBERNETES_PROVIDER))
        if missing:
            raise KubeLayerError(f"the Kubernetes layer needs {', '.join(missing)}; run `make toolchain`")

    def _single(self, name: str) -> ResourcePlan:
        component = dataclasses.replace(self._by_name[name], depends_on=(), provides_kubeconfig=False)
        return dataclasses.replace(self.resources, components=(component,), kubeconfig_from=None)

    def apply(self, name: str) -> dict[str, Any]:
        """`pulumi up` of this step's stack; returns the engine's figures for the report and journal."""
        import pulumi
        from pulumi import automation

        from dr.stack.engine import Engine
        from dr.stack.program import register

        single = self._single(name)
        kubeconfig = self.kubeconfig()
        secrets, mirror, adopt = self.secrets, self.chart_mirror, self.adopt

        def program() -> None:
            register(single, hosts={}, secrets=pulumi.Output.secret(secrets),
                     kubeconfig=pulumi.Output.secret(kubeconfig), chart_mirror=mirror, adopt=adopt)

        with self._init_lock:  # creating stacks writes the shared backend's metadata: one at a time
            engine = Engine.at(self.root / "engine", self.toolchain)
            stack = engine.stack(project=PROJECT, stack=stack_name(name), program=program,
                                 work_dir=self.root / "engine" / "workspaces" / stack_name(name))
        starts: list[float] = []
        ends: list[float] = []
        failures: list[str] = []

        def on_event(event: Any) -> None:
            now = time.time()
            pre, done, failed = event.resource_pre_event, event.res_outputs_event, event.res_op_failed_event
            diagnostic = event.diagnostic_event
            if pre is not None and not pre.metadata.type.startswith(("pulumi:", "dr:recovery")):
                starts.append(now)
            if done is not None and not done.metadata.type.startswith(("pulumi:", "dr:recovery")):
                ends.append(now)
            if failed is not None:
                failures.append(str(failed.metadata.urn))
            if diagnostic is not None and diagnostic.severity == "error" and diagnostic.message.strip():
                failures.append(diagnostic.message.strip())

        began = time.monotonic()
        try:
            result = stack.up(on_event=on_event, color="never", parallel=16)
        except automation.errors.CommandError as exc:
            detail = next((f for f in failures if "urn:" not in f), "") or _short_error(str(exc))
            raise KubeLayerError(f"pulumi up failed: {detail}") from None
        changes = dict(result.summary.resource_changes or {})
        outputs: dict[str, Any] = {
            "engine": "pulumi up (pulumi-kubernetes)", "engine_s": round(time.monotonic() - began, 3),
            "resources": sum(changes.values()), "changes": changes,
            "first_start": min(starts) if starts else None, "last_done": max(ends) if ends else None}
        if self.operators is not None:
            outputs["stand_in"] = self.operators.notes_for(self._by_name[name])
        return outputs
