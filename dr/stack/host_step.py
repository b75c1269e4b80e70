"""Pulumi dynamic resources for the steps no Kubernetes provider can do: playbooks and host restores.

`HostStepProvider` runs a step through `dr.hosts.host_steps.run_step` (or an injected runner, in tests):
create runs it, a change of inputs runs it again (update), and delete does nothing on the hosts —
removing a stack must never wipe a restored database or volume. No provider plugin is downloaded:
dynamic providers run in the program's own Python.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from dr.core.steps import STEP_KIND

StepRunner = Callable[..., dict[str, Any]]
NOT_COMPARED = ("__provider", STEP_KIND)


def _default_runner(inputs: Mapping[str, Any], *, hosts: Mapping[str, Any], secrets: Mapping[str, str]
                    ) -> dict[str, Any]:
    from dr.hosts.host_steps import run_step

    return run_step(inputs, hosts=hosts, secrets=secrets)


def _step_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k not in ("hosts_inventory", "secrets", "__provider")}


class HostStepProvider(ResourceProvider):
    def __init__(self, runner: StepRunner | None = None) -> None:
        self.runner = runner

    def _run(self, props: Mapping[str, Any]) -> dict[str, Any]:
        runner = self.runner or _default_runner
        return runner(_step_inputs(props), hosts=props.get("hosts_inventory") or {},
                      secrets=props.get("secrets") or {})

    def create(self, props: dict[str, Any]) -> CreateResult:
        outputs = self._run(props)
        digest = hashlib.sha256(json.dumps(_step_inputs(props), sort_keys=True, default=str).encode()).hexdigest()
        return CreateResult(id_=f"{props.get('step', 'step')}-{digest[:12]}", outs={**props, **outputs})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # The step's kind says what runs it, not what it does: a stack written before steps carried it
        # must not rerun every step (a completed restore would refuse to run again).
        changed = sorted(k for k in set(olds) | set(news)
                         if k not in NOT_COMPARED and k in news and olds.get(k) != news.get(k))
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**news, **self._run(news)})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Deliberately nothing: a deleted stack must not touch restored data on the hosts.
        return None


class HostStep(pulumi.dynamic.Resource):
    """One playbook run or host-level restore; `kubeconfig` is set for the control-plane step."""

    kubeconfig: pulumi.Output[str]
    changed: pulumi.Output[int]
    restored: pulumi.Output[str]  # a restore step: the backup it restored (snapshot, set, file)

    def __init__(self, name: str, *, step: str, inputs: Mapping[str, Any], hosts_inventory: Mapping[str, Any],
                 secrets: pulumi.Input[Mapping[str, str]], opts: pulumi.ResourceOptions | None = None,
                 provider: HostStepProvider | None = None) -> None:
        props = {"step": step, **inputs, "hosts_inventory": dict(hosts_inventory), "secrets": secrets,
                 "kubeconfig": None, "changed": None, "restored": None, "restored_time": None}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["secrets", "kubeconfig", "cluster_kubeconfig"]))
        super().__init__(provider or HostStepProvider(), name, props, opts)
