"""Runs one host-level step of the plan for real: a playbook, or a restore through its driver.

Used by the Pulumi dynamic resource (`dr.stack.host_step`) and by local executors. Inputs are the
plain dictionaries the resource plan (`dr.core.resources`) gives a `playbook` or `host-restore` child,
plus the graph's hosts and the secrets. The driver chooses the backup; `dr.core.invocations` turns the
step into the playbook call that is run here and printed in the runbook.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dr.core.backups import BackupPoint
from dr.core.invocations import ChosenBackup, PlaybookInvocation, playbook_invocation, restore_invocation
from dr.core.spec import Host
from dr.core.steps import STEP_KIND
from dr.errors import RestoreError
from dr.graph_file import PLAYBOOK_DIR
from dr.hosts import commands
from dr.hosts.ansible import Inventory, ProgressCallback, run_playbook
from dr.restore import etcd, pgbackrest, restic


def inventory_for(hosts: Mapping[str, Mapping[str, Any]]) -> Inventory:
    if not hosts:
        return Inventory.local()
    return Inventory.from_graph({name: Host(name=name, address=str(h["address"]), groups=tuple(h.get("groups", ())),
                                            vars=h.get("vars", {})) for name, h in hosts.items()})


ChooseBackup = Callable[[Mapping[str, Any], Mapping[str, str]], tuple[ChosenBackup, BackupPoint]]

# The restore drivers: each knows how to ask its tool which backups exist. Everything else about a
# restore (the playbook call) comes from `dr.core.invocations`, the same source the runbook prints.
DRIVERS: Mapping[str, ChooseBackup] = {"restic": restic.choose, "etcd-snapshot": etcd.choose,
                                       "pgbackrest": pgbackrest.choose}


def choose(inputs: Mapping[str, Any], secrets: Mapping[str, str]) -> tuple[ChosenBackup, BackupPoint]:
    """Ask the tool which backups exist and pick the one for the step's target time."""
    driver = DRIVERS.get(str(inputs["tool"]))
    if driver is None:
        raise RestoreError(f"no host-level restore driver for tool {inputs['tool']!r}")
    return driver(inputs, secrets)


def _secrets_for(invocation: PlaybookInvocation, secrets: Mapping[str, str], step: str) -> dict[str, str]:
    missing = [name for name in invocation.secrets if name not in secrets]
    if missing:
        raise RestoreError(f"step {step!r} needs the secret(s) {', '.join(missing)}; set them in the stack config "
                           "dr:secrets (pulumi config set --secret --path 'dr:secrets.NAME')")
    return {name: secrets[name] for name in (*invocation.secrets, *invocation.optional_secrets) if name in secrets}


def new_cluster_token() -> str:
    """A fresh etcd cluster token: a restored cluster must never share the old one's."""
    return f"dr-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}"


def _gate_step(inputs: Mapping[str, Any], secrets: Mapping[str, str], **_: Any) -> dict[str, Any]:
    from dr.kube.gitops_gate import run_gate_step

    return run_gate_step(inputs, secrets)


def _playbook_step(inputs: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]], secrets: Mapping[str, str],
                   progress: ProgressCallback | None, **_: Any) -> dict[str, Any]:
    return _run_playbook(playbook_invocation(inputs), inputs, hosts, secrets, progress)


def _restore_step(inputs: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]], secrets: Mapping[str, str],
                  progress: ProgressCallback | None, force: bool | None) -> dict[str, Any]:
    """Choose the backup through the tool's driver, restore it through its playbook, verify."""
    chosen, point = choose(inputs, secrets)
    # A step that names its cluster token keeps it, so rerunning it finds its own restore.
    token = str(inputs.get("vars", {}).get("cluster_token") or new_cluster_token())
    invocation = restore_invocation(inputs, hosts=hosts, chosen=chosen, cluster_token=token, force=force)
    outputs = _run_playbook(invocation, inputs, hosts, secrets, progress)
    if inputs.get("tool") == "restic" and not hosts:
        # On this machine the restored tree can be measured against the snapshot.
        restic.verify(point, Path(str(invocation.extravars["restore_path"])))
    return {**outputs, "restored": point.id, "restored_time": point.time.isoformat()}


def _run_playbook(invocation: PlaybookInvocation, inputs: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]],
                  secrets: Mapping[str, str], progress: ProgressCallback | None) -> dict[str, Any]:
    step = str(inputs.get("step", inputs.get("playbook", "step")))
    own = Path(str(inputs["playbook_dir"])) if inputs.get("playbook_dir") else None
    # The user's own playbook directory first (a graph's `playbooks:`), then dr's.
    directory = own if own is not None and (own / invocation.playbook).is_file() else PLAYBOOK_DIR
    result = run_playbook(invocation.playbook, inventory=inventory_for(hosts), extravars=invocation.extravars,
                          secrets=_secrets_for(invocation, secrets, step),
                          limit=invocation.limit if hosts else None,  # no graph hosts: this machine
                          progress=progress, playbook_dir=directory)
    outputs: dict[str, Any] = {"changed": result.changed}
    kubeconfig_path = invocation.extravars.get("k3s_kubeconfig_dest")
    if kubeconfig_path and Path(str(kubeconfig_path)).expanduser().is_file():
        outputs["kubeconfig"] = Path(str(kubeconfig_path)).expanduser().read_text(encoding="utf-8")
    return outputs


StepKindRunner = Callable[..., dict[str, Any]]  # (inputs, hosts=, secrets=, progress=, force=) -> outputs

# What runs each kind of host-level step (the child kinds of `dr.core.resources`): on hosts through
# Ansible, or on this machine. The kind travels with the step (`step_kind`); nothing is guessed from keys.
RUNNERS: Mapping[str, StepKindRunner] = {
    "playbook": _playbook_step,
    "host-restore": _restore_step,
    "command": lambda inputs, secrets, **_: commands.run_command_step(inputs, secrets),
    "talos": lambda inputs, **_: commands.run_talos_step(inputs),
    "external": lambda inputs, **_: commands.run_external_step(inputs),
    "gitops-hold": _gate_step,
    "gitops-release": _gate_step,
    "restore-precheck": _gate_step,
}


def run_step(inputs: Mapping[str, Any], *, hosts: Mapping[str, Mapping[str, Any]], secrets: Mapping[str, str],
             progress: ProgressCallback | None = None, force: bool | None = None) -> dict[str, Any]:
    """Run the step described by `inputs` (`dr.core.resources.step_inputs`: they say their kind); return
    outputs (never secrets, except a kubeconfig).

    This is the one path of a host-level step, for `pulumi up`, the drill executor and the tests.
    `force` (a rerun after a crash) restores over data the interrupted attempt left; None takes
    the step's own `vars.force`.
    """
    started = time.monotonic()
    kind = str(inputs.get(STEP_KIND, ""))
    runner = RUNNERS.get(kind)
    if runner is None:
        raise ValueError(f"step {inputs.get('step', '?')!r}: no runner for a step of kind {kind!r} "
                         f"(one of {', '.join(RUNNERS)})")
    outputs = runner(inputs, hosts=hosts, secrets=secrets, progress=progress, force=force)
    return {**outputs, "duration_s": round(time.monotonic() - started, 3)}
