"""Runs one host-level step of the plan for real: a playbook, or a restore through its driver.

Used by the Pulumi dynamic resource (`dr.pulumi_dynamic`) and by local executors. Inputs are the
plain dictionaries the resource plan (`dr.resources`) gives a `playbook` or `host-restore` child,
plus the graph's hosts and the secrets. The driver chooses the backup; `dr.invocations` turns the
step into the playbook call that is run here and printed in the runbook.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dr.ansible import Inventory, ProgressCallback, run_playbook
from dr.errors import RestoreError
from dr.invocations import ChosenBackup, PlaybookInvocation, playbook_invocation, restore_invocation
from dr.restore import etcd, pgbackrest, restic
from dr.restore.selection import BackupPoint
from dr.spec import Host


def inventory_for(hosts: Mapping[str, Mapping[str, Any]]) -> Inventory:
    if not hosts:
        return Inventory.local()
    return Inventory.from_graph({name: Host(name=name, address=str(h["address"]), groups=tuple(h.get("groups", ())),
                                            vars=h.get("vars", {})) for name, h in hosts.items()})


def choose(inputs: Mapping[str, Any], secrets: Mapping[str, str]) -> tuple[ChosenBackup, BackupPoint]:
    """Ask the tool which backups exist and pick the one for the step's target time."""
    tool, target_time = inputs["tool"], str(inputs.get("target_time", "latest"))
    allow_collapsed = bool(inputs.get("allow_collapsed", False))
    variables = inputs.get("vars", {})
    if tool == "restic":
        repo = restic.ResticRepository(str(variables.get("repository", inputs["repo"])), secrets["restic_password"])
        snapshot = restic.choose_snapshot(restic.list_snapshots(repo), target_time, allow_collapsed=allow_collapsed)
        return ChosenBackup(id=snapshot.point.id, source_path=snapshot.source_path), snapshot.point
    if tool == "etcd-snapshot":
        point = etcd.choose_snapshot(Path(variables.get("snapshot_dir", inputs["repo"])), target_time,
                                     allow_collapsed=allow_collapsed)
        return ChosenBackup(id=point.id), point
    if tool == "pgbackrest":
        stanza = pgbackrest.PgBackRestStanza(
            config=str(variables.get("pgbackrest_config", "/etc/pgbackrest/pgbackrest.conf")),
            stanza=str(variables.get("pgbackrest_stanza", "main")),
            os_user=str(variables.get("pg_os_user", "postgres")))
        point = pgbackrest.choose_set(stanza, target_time, allow_collapsed=allow_collapsed)
        return ChosenBackup(id=point.id), point
    raise RestoreError(f"no host-level restore driver for tool {tool!r}")


def _secrets_for(invocation: PlaybookInvocation, secrets: Mapping[str, str], step: str) -> dict[str, str]:
    missing = [name for name in invocation.secrets if name not in secrets]
    if missing:
        raise RestoreError(f"step {step!r} needs the secret(s) {', '.join(missing)}; set them in the stack config "
                           "dr:secrets (pulumi config set --secret --path 'dr:secrets.NAME')")
    return {name: secrets[name] for name in invocation.secrets}


def new_cluster_token() -> str:
    """A fresh etcd cluster token: a restored cluster must never share the old one's."""
    return f"dr-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}"


def run_step(inputs: Mapping[str, Any], *, hosts: Mapping[str, Mapping[str, Any]], secrets: Mapping[str, str],
             progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run the step described by `inputs`; return outputs (never secrets, except a kubeconfig)."""
    started = time.monotonic()
    step = str(inputs.get("step", inputs.get("playbook", "step")))
    outputs: dict[str, Any] = {}
    if "tool" not in inputs:
        invocation = playbook_invocation(inputs)
    else:
        if inputs["tool"] == "restic" and "restic_password" not in secrets:
            raise RestoreError(f"step {step!r} needs the secret restic_password (stack config dr:secrets)")
        chosen, point = choose(inputs, secrets)
        if inputs["tool"] == "etcd-snapshot":
            etcd.snapshot_point(Path(chosen.id))  # refuse a damaged snapshot before touching data directories
        token = new_cluster_token()
        invocation = restore_invocation(inputs, hosts=hosts, chosen=chosen, cluster_token=token)
        outputs.update({"restored": point.id, "restored_time": point.time.isoformat()})
    result = run_playbook(invocation.playbook, inventory=inventory_for(hosts), extravars=invocation.extravars,
                          secrets=_secrets_for(invocation, secrets, step),
                          limit=invocation.limit if hosts else None,  # no graph hosts: this machine
                          progress=progress)
    outputs["changed"] = result.changed
    kubeconfig_path = invocation.extravars.get("k3s_kubeconfig_dest")
    if kubeconfig_path and Path(str(kubeconfig_path)).expanduser().is_file():
        outputs["kubeconfig"] = Path(str(kubeconfig_path)).expanduser().read_text(encoding="utf-8")
    outputs["duration_s"] = round(time.monotonic() - started, 3)
    return outputs
