"""The one place that decides how each host-level step calls its playbook.

A `PlaybookInvocation` is the playbook, its extravars, the host pattern and the names of the
secrets it needs. The automation (`dr.host_steps`, the restore drivers) runs exactly these through
ansible-runner; the runbook (`dr.runbook`) prints them as the `ansible-playbook` command a person
types when the automation itself is broken. Pure: data in, invocation out.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dr.restore.selection import parse_target_time
from dr.spec import GraphSpec

# Secret variables each playbook reads (never written into extravars).
PLAYBOOK_SECRETS: Mapping[str, tuple[str, ...]] = {
    "k3s-server.yml": ("k3s_token",), "k3s-agent.yml": ("k3s_token",),
    "volume-restore.yml": ("restic_password",), "pre-maintenance-snapshot.yml": ("restic_password",)}


@dataclass(frozen=True)
class PlaybookInvocation:
    playbook: str
    extravars: Mapping[str, Any]
    limit: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return PLAYBOOK_SECRETS.get(self.playbook, ())

    def argv(self, *, inventory: str = "inventory.yml", secrets_file: str = "secrets.yml") -> list[str]:
        """The ansible-playbook command line that does what dr's runner does."""
        argv = ["ansible-playbook", "-i", inventory, f"playbooks/{self.playbook}"]
        if self.limit:
            argv += ["--limit", self.limit]
        if self.extravars:
            argv += ["-e", json.dumps(dict(self.extravars), sort_keys=True, separators=(",", ":"))]
        if self.secrets:
            argv += ["-e", f"@{secrets_file}"]
        return argv

    def command_line(self, **kwargs: str) -> str:
        return shlex.join(self.argv(**kwargs))


@dataclass(frozen=True)
class ChosenBackup:
    """The backup a restore uses: chosen by a driver at run time, a placeholder in the runbook."""

    id: str
    source_path: str = ""  # restic: the path recorded in the snapshot


def hosts_inventory(spec: GraphSpec) -> dict[str, dict[str, Any]]:
    """The graph's hosts as the plain mapping host steps take (address, groups, vars)."""
    return {h.name: {"address": h.address, "groups": list(h.groups), "vars": dict(h.vars)}
            for h in spec.hosts.values()}


def limit_for(hosts: Sequence[str]) -> str | None:
    """Ansible host pattern for a component's `hosts` (None means every host of the inventory)."""
    return None if not hosts or "all" in hosts else ",".join(hosts)


def target_hosts(hosts: Mapping[str, Mapping[str, Any]], wanted: Sequence[str]) -> list[str]:
    """Names of the graph's hosts a component runs on."""
    if not hosts:
        return ["localhost"]
    if not wanted or "all" in wanted:
        return sorted(hosts)
    return sorted(n for n, h in hosts.items() if n in wanted or set(h.get("groups", ())) & set(wanted))


def playbook_invocation(inputs: Mapping[str, Any]) -> PlaybookInvocation:
    return PlaybookInvocation(playbook=str(inputs["playbook"]), extravars=dict(inputs.get("vars", {})),
                              limit=limit_for(list(inputs.get("hosts", ["all"]))))


def restic_extravars(*, repository: str, snapshot: str, source_path: str, restore_path: str,
                     force: bool) -> dict[str, Any]:
    return {"restic_repository": repository, "restic_snapshot": snapshot, "restic_source_path": source_path,
            "restore_path": restore_path, "restore_force": force}


def etcd_extravars(*, snapshot: str, members: Sequence[Mapping[str, Any]], cluster_token: str, min_keys: int,
                   force: bool) -> dict[str, Any]:
    return {"etcd_snapshot": snapshot, "etcd_members": [dict(m) for m in members],
            "etcd_cluster_token": cluster_token, "etcd_min_keys": min_keys, "etcd_force": force}


def pgbackrest_time(target_time: str) -> str:
    """ISO 8601 (dr's format) to the form pgBackRest's --target takes; 'latest' unchanged."""
    moment = parse_target_time(target_time)
    if moment is None:
        return "latest"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def pgbackrest_extravars(*, config: str, stanza: str, backup_set: str, target_time: str, pg_data: str,
                         pg_bin: str, pg_port: int, pg_socket_dir: str, os_user: str, force: bool) -> dict[str, Any]:
    return {"pgbackrest_config": config, "pgbackrest_stanza": stanza, "pgbackrest_set": backup_set,
            "pg_target_time": pgbackrest_time(target_time), "pg_data": pg_data, "pg_bin": pg_bin,
            "pg_port": pg_port, "pg_socket_dir": pg_socket_dir, "pg_os_user": os_user, "pg_force": force}


def etcd_members(inputs: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    variables = inputs.get("vars", {})
    if variables.get("etcd_members"):
        return [dict(m) for m in variables["etcd_members"]]
    return [{"name": name, "host": name, "address": str(hosts[name]["address"]) if name in hosts else "127.0.0.1",
             "peer_port": int(variables.get("etcd_peer_port", 2380)),
             "client_port": int(variables.get("etcd_client_port", 2379)),
             "data_dir": str(variables.get("etcd_data_dir", "/var/lib/etcd"))}
            for name in target_hosts(hosts, list(inputs.get("hosts", ["all"])))]


def restore_invocation(inputs: Mapping[str, Any], *, hosts: Mapping[str, Mapping[str, Any]], chosen: ChosenBackup,
                       cluster_token: str = "") -> PlaybookInvocation:
    """How a host-level restore step calls its playbook once its backup is chosen."""
    tool = inputs["tool"]
    variables = dict(inputs.get("vars", {}))
    force = bool(variables.get("force", False))
    limit = limit_for(list(inputs.get("hosts", ["all"])))
    if tool == "restic":
        extravars = restic_extravars(repository=str(variables.get("repository", inputs["repo"])), snapshot=chosen.id,
                                     source_path=chosen.source_path, restore_path=str(variables["restore_path"]),
                                     force=force)
        return PlaybookInvocation("volume-restore.yml", extravars, limit)
    if tool == "etcd-snapshot":
        extravars = etcd_extravars(snapshot=chosen.id, members=etcd_members(inputs, hosts),
                                   cluster_token=cluster_token or str(variables.get("cluster_token", "")),
                                   min_keys=int(variables.get("min_keys", 1)), force=force)
        return PlaybookInvocation("etcd-restore.yml", extravars, limit)
    if tool == "pgbackrest":
        extravars = pgbackrest_extravars(
            config=str(variables.get("pgbackrest_config", "/etc/pgbackrest/pgbackrest.conf")),
            stanza=str(variables.get("pgbackrest_stanza", "main")), backup_set=chosen.id,
            target_time=str(inputs.get("target_time", "latest")), pg_data=str(variables["pg_data"]),
            pg_bin=str(variables.get("pg_bin", "/usr/lib/postgresql/15/bin")),
            pg_port=int(variables.get("pg_port", 5432)),
            pg_socket_dir=str(variables.get("pg_socket_dir", "/var/run/postgresql")),
            os_user=str(variables.get("pg_os_user", "postgres")), force=force)
        return PlaybookInvocation("postgres-pitr.yml", extravars, limit)
    raise ValueError(f"no host-level restore for tool {tool!r}")
