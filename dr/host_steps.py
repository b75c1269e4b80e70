"""Runs one host-level step of the plan for real: a playbook, or a restore through its driver.

Used by the Pulumi dynamic resource (`dr.pulumi_dynamic`) and by local executors. Inputs are the
plain dictionaries the resource plan (`dr.resources`) gives a `playbook` or `host-restore` child,
plus the graph's hosts and the secrets; the result is a small dictionary of outputs.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dr.ansible import Inventory, ProgressCallback, run_playbook
from dr.errors import RestoreError
from dr.restore import etcd, pgbackrest, restic
from dr.spec import Host


def _inventory(hosts: Mapping[str, Mapping[str, Any]]) -> Inventory:
    if not hosts:
        return Inventory.local()
    return Inventory.from_graph({name: Host(name=name, address=str(h["address"]), groups=tuple(h.get("groups", ())),
                                            vars=h.get("vars", {})) for name, h in hosts.items()})


def _targets(hosts: Mapping[str, Mapping[str, Any]], wanted: list[str]) -> list[str]:
    if not hosts or "all" in wanted:
        return sorted(hosts) or ["localhost"]
    return sorted(n for n, h in hosts.items() if n in wanted or set(h.get("groups", ())) & set(wanted))


def run_step(inputs: Mapping[str, Any], *, hosts: Mapping[str, Mapping[str, Any]], secrets: Mapping[str, str],
             progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run the step described by `inputs`; return outputs (never secrets, except a kubeconfig)."""
    started = time.monotonic()
    variables = dict(inputs.get("vars", {}))
    inventory = _inventory(hosts)
    limit = ",".join(_targets(hosts, list(inputs.get("hosts", ["all"])))) if hosts else None
    outputs: dict[str, Any] = {}
    if "tool" not in inputs:
        result = run_playbook(str(inputs["playbook"]), inventory=inventory, extravars=variables, secrets=secrets,
                              limit=limit, progress=progress)
        outputs["changed"] = result.changed
        kubeconfig_path = variables.get("k3s_kubeconfig_dest")
        if kubeconfig_path and Path(kubeconfig_path).is_file():
            outputs["kubeconfig"] = Path(kubeconfig_path).read_text(encoding="utf-8")
    else:
        outputs.update(_restore(inputs, variables, hosts=hosts, inventory=inventory, secrets=secrets,
                                progress=progress))
    outputs["duration_s"] = round(time.monotonic() - started, 3)
    return outputs


def _restore(inputs: Mapping[str, Any], variables: dict[str, Any], *, hosts: Mapping[str, Mapping[str, Any]],
             inventory: Inventory, secrets: Mapping[str, str], progress: ProgressCallback | None) -> dict[str, Any]:
    tool, target_time = inputs["tool"], str(inputs.get("target_time", "latest"))
    allow_collapsed = bool(inputs.get("allow_collapsed", False))
    force = bool(variables.get("force", False))
    if tool == "restic":
        if "restic_password" not in secrets:
            raise RestoreError(f"backup {inputs['backup']!r}: the secret restic_password is not set "
                               "(stack config dr:secrets)")
        repo = restic.ResticRepository(str(variables.get("repository", inputs["repo"])), secrets["restic_password"])
        snapshot = restic.choose_snapshot(restic.list_snapshots(repo), target_time, allow_collapsed=allow_collapsed)
        restore_path = Path(variables["restore_path"])
        restic.restore(repo, snapshot, restore_path=restore_path, inventory=inventory, force=force, progress=progress)
        if not hosts:  # the files are on this machine: check them
            restic.verify(snapshot, restore_path)
        return {"restored": snapshot.point.id, "restored_time": snapshot.point.time.isoformat()}
    if tool == "etcd-snapshot":
        directory = Path(variables.get("snapshot_dir", inputs["repo"]))
        point = etcd.choose_snapshot(directory, target_time, allow_collapsed=allow_collapsed)
        members = variables.get("etcd_members") or [
            {"name": name, "host": name, "address": str(hosts[name]["address"]),
             "peer_port": int(variables.get("etcd_peer_port", 2380)),
             "client_port": int(variables.get("etcd_client_port", 2379)),
             "data_dir": str(variables.get("etcd_data_dir", "/var/lib/etcd"))}
            for name in _targets(hosts, list(inputs.get("hosts", ["all"])))]
        token = str(variables.get("cluster_token") or f"dr-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}")
        etcd.restore(Path(point.id), [etcd.EtcdMember(**m) for m in members], cluster_token=token,
                     inventory=inventory, min_keys=int(variables.get("min_keys", 1)), force=force, progress=progress)
        return {"restored": point.id, "restored_time": point.time.isoformat()}
    if tool == "pgbackrest":
        stanza = pgbackrest.PgBackRestStanza(config=str(variables.get("pgbackrest_config",
                                                                      "/etc/pgbackrest/pgbackrest.conf")),
                                             stanza=str(variables.get("pgbackrest_stanza", "main")),
                                             os_user=str(variables.get("pg_os_user", "postgres")))
        chosen = pgbackrest.choose_set(stanza, target_time, allow_collapsed=allow_collapsed)
        pgbackrest.restore(stanza, chosen, target_time=target_time, pg_data=Path(variables["pg_data"]),
                           pg_port=int(variables.get("pg_port", 5432)),
                           pg_socket_dir=Path(variables.get("pg_socket_dir", "/var/run/postgresql")),
                           inventory=inventory, pg_bin=str(variables.get("pg_bin", "/usr/lib/postgresql/15/bin")),
                           force=force, progress=progress)
        return {"restored": chosen.id, "restored_time": chosen.time.isoformat()}
    raise RestoreError(f"no host-level restore driver for tool {tool!r}")
