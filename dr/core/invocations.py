"""The one place that decides how each host-level step calls its playbook.

A `PlaybookInvocation` is the playbook, its extravars, the host pattern and the names of the
secrets it needs. The automation (`dr.hosts.host_steps`, the restore drivers) runs exactly these through
ansible-runner; the runbook (`dr.docs.runbook`) prints them as the `ansible-playbook` command a person
types when the automation itself is broken. Pure: data in, invocation out.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dr.core.backups import parse_target_time
from dr.core.spec import GraphSpec

# Secret variables each playbook reads (never written into extravars).
PLAYBOOK_SECRETS: Mapping[str, tuple[str, ...]] = {
    "k3s-server.yml": ("k3s_token",), "k3s-agent.yml": ("k3s_token",),
    "volume-restore.yml": ("restic_password",), "pre-maintenance-snapshot.yml": ("restic_password",)}
# Secret variables a playbook reads when they are set: restic's credentials for an `s3:` repository.
S3_CREDENTIALS: tuple[str, ...] = ("aws_access_key_id", "aws_secret_access_key")
OPTIONAL_PLAYBOOK_SECRETS: Mapping[str, tuple[str, ...]] = {
    "volume-restore.yml": S3_CREDENTIALS, "pre-maintenance-snapshot.yml": S3_CREDENTIALS}


@dataclass(frozen=True)
class PlaybookInvocation:
    playbook: str
    extravars: Mapping[str, Any]
    limit: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return PLAYBOOK_SECRETS.get(self.playbook, ())

    @property
    def optional_secrets(self) -> tuple[str, ...]:
        return OPTIONAL_PLAYBOOK_SECRETS.get(self.playbook, ())

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
                         pg_bin: str, pg_port: int, pg_socket_dir: str, os_user: str, force: bool,
                         archive: bool = True) -> dict[str, Any]:
    return {"pgbackrest_config": config, "pgbackrest_stanza": stanza, "pgbackrest_set": backup_set,
            "pg_target_time": pgbackrest_time(target_time), "pg_data": pg_data, "pg_bin": pg_bin,
            "pg_port": pg_port, "pg_socket_dir": pg_socket_dir, "pg_os_user": os_user, "pg_force": force,
            "pg_archive_mode": "preserve" if archive else "off"}


def etcd_members(inputs: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    variables = inputs.get("vars", {})
    if variables.get("etcd_members"):
        return [dict(m) for m in variables["etcd_members"]]
    return [{"name": name, "host": name, "address": str(hosts[name]["address"]) if name in hosts else "127.0.0.1",
             "peer_port": int(variables.get("etcd_peer_port", 2380)),
             "client_port": int(variables.get("etcd_client_port", 2379)),
             "data_dir": str(variables.get("etcd_data_dir", "/var/lib/etcd"))}
            for name in target_hosts(hosts, list(inputs.get("hosts", ["all"])))]


# Defaults of the restore `vars` a graph may leave out: written here once, read by the drivers, the
# audit, the runbook and the invocation below.
PGBACKREST_DEFAULTS: Mapping[str, Any] = {
    "pgbackrest_config": "/etc/pgbackrest/pgbackrest.conf", "pgbackrest_stanza": "main",
    "pg_bin": "/usr/lib/postgresql/15/bin", "pg_port": 5432, "pg_socket_dir": "/var/run/postgresql",
    "pg_os_user": "postgres"}


@dataclass(frozen=True)
class PgBackRestSettings:
    config: str
    stanza: str
    pg_bin: str
    pg_port: int
    pg_socket_dir: str
    os_user: str
    pg_data: str


def pgbackrest_settings(variables: Mapping[str, Any]) -> PgBackRestSettings:
    merged = {**PGBACKREST_DEFAULTS, **dict(variables)}
    return PgBackRestSettings(config=str(merged["pgbackrest_config"]), stanza=str(merged["pgbackrest_stanza"]),
                              pg_bin=str(merged["pg_bin"]), pg_port=int(merged["pg_port"]),
                              pg_socket_dir=str(merged["pg_socket_dir"]), os_user=str(merged["pg_os_user"]),
                              pg_data=str(merged.get("pg_data", "<PG_DATA>")))


def restic_repository(inputs: Mapping[str, Any]) -> str:
    """The repository a restic restore reads: `vars.repository` (a mirror or copy) or the backup's repo."""
    return str(inputs.get("vars", {}).get("repository", inputs["repo"]))


def etcd_snapshot_dir(inputs: Mapping[str, Any]) -> str:
    """The directory of etcd snapshot files: `vars.snapshot_dir` or the backup's repo."""
    return str(inputs.get("vars", {}).get("snapshot_dir", inputs["repo"]))


def run_as(os_user: str, argv: Sequence[str], *, am_root: bool) -> list[str]:
    """`argv` run as `os_user` (PostgreSQL refuses to run as root): the one spelling of `runuser`."""
    return ["runuser", "-u", os_user, "--", *argv] if am_root else list(argv)


def restore_invocation(inputs: Mapping[str, Any], *, hosts: Mapping[str, Mapping[str, Any]], chosen: ChosenBackup,
                       cluster_token: str = "", force: bool | None = None) -> PlaybookInvocation:
    """How a host-level restore step calls its playbook once its backup is chosen."""
    tool = inputs["tool"]
    variables = dict(inputs.get("vars", {}))
    force = bool(variables.get("force", False)) if force is None else force
    limit = limit_for(list(inputs.get("hosts", ["all"])))
    if tool == "restic":
        extravars = restic_extravars(repository=restic_repository(inputs), snapshot=chosen.id,
                                     source_path=chosen.source_path, restore_path=str(variables["restore_path"]),
                                     force=force)
        return PlaybookInvocation("volume-restore.yml", extravars, limit)
    if tool == "etcd-snapshot":
        extravars = etcd_extravars(snapshot=chosen.id, members=etcd_members(inputs, hosts),
                                   cluster_token=cluster_token or str(variables.get("cluster_token", "")),
                                   min_keys=int(variables.get("min_keys", 1)), force=force)
        # The etcd binaries when not the ones on the hosts' PATH (vars etcd_binary, etcdctl_binary, and
        # etcdutl_binary, which etcd 3.6 needs for snapshots).
        extravars.update({k: str(variables[k]) for k in ("etcd_binary", "etcdctl_binary") if variables.get(k)})
        if variables.get("etcdutl_binary"):
            extravars["etcd_snapshot_tool"] = [str(variables["etcdutl_binary"])]
        return PlaybookInvocation("etcd-restore.yml", extravars, limit)
    if tool == "pgbackrest":
        pg = pgbackrest_settings(variables)
        extravars = pgbackrest_extravars(
            config=pg.config, stanza=pg.stanza, backup_set=chosen.id,
            target_time=str(inputs.get("target_time", "latest")), pg_data=str(variables["pg_data"]),
            pg_bin=pg.pg_bin, pg_port=pg.pg_port, pg_socket_dir=pg.pg_socket_dir, os_user=pg.os_user, force=force,
            archive=bool(inputs.get("write_back", True)))
        return PlaybookInvocation("postgres-pitr.yml", extravars, limit)
    raise ValueError(f"no host-level restore for tool {tool!r}")


def manual_restore_commands(invocation: PlaybookInvocation) -> list[list[str]]:
    """The commands the restore playbook runs, as argv lists a person types when Ansible is broken.

    Derived from the same extravars the playbook gets; tests render the playbook's own tasks with
    those extravars and compare, so the two cannot drift apart.
    """
    v = invocation.extravars
    if invocation.playbook == "volume-restore.yml":
        staging = f"{v['restore_path']}.dr-staging"
        return [["restic", "--no-lock", "-r", v["restic_repository"], "restore", v["restic_snapshot"],
                 "--target", staging],
                ["mv", "--", f"{staging}{v['restic_source_path']}", v["restore_path"]],
                ["rm", "-rf", staging]]
    if invocation.playbook == "etcd-restore.yml":
        members = v["etcd_members"]
        cluster = ",".join(f"{m['name']}=http://{m['address']}:{m['peer_port']}" for m in members)
        return [["etcdctl", "snapshot", "restore", v["etcd_snapshot"], "--name", m["name"], "--data-dir",
                 m["data_dir"], "--initial-cluster", cluster, "--initial-cluster-token", v["etcd_cluster_token"],
                 "--initial-advertise-peer-urls", f"http://{m['address']}:{m['peer_port']}"] for m in members]
    if invocation.playbook == "postgres-pitr.yml":
        user, target = v["pg_os_user"], v["pg_target_time"]
        target_args = [] if target == "latest" else ["--type=time", f"--target={target}", "--target-action=promote"]
        return [run_as(user, ["pgbackrest", f"--config={v['pgbackrest_config']}",
                              f"--stanza={v['pgbackrest_stanza']}", f"--set={v['pgbackrest_set']}",
                              *target_args, f"--archive-mode={v['pg_archive_mode']}", "restore"], am_root=True),
                run_as(user, [f"{v['pg_bin']}/pg_ctl", "-D", v["pg_data"], "-l", f"{v['pg_data']}.log", "-w", "-t",
                              "300", "start"], am_root=True)]
    raise ValueError(f"{invocation.playbook} is not a restore playbook")


def talos_commands(inputs: Mapping[str, Any], *, snapshot: str = "", kubeconfig: str) -> list[list[str]]:
    """The talosctl calls of a Talos control-plane step, in order (the runbook prints the same):
    apply the machine configuration to every node, bootstrap etcd on the first (from `snapshot` when
    the step recovers), then write the kubeconfig."""
    base = ["talosctl", *(["--talosconfig", str(inputs["talosconfig"])] if inputs.get("talosconfig") else [])]
    nodes = [str(n) for n in inputs["nodes"]]
    first, endpoint = nodes[0], str(inputs.get("endpoint") or nodes[0])
    calls = [[*base, "apply-config", *(["--insecure"] if inputs.get("insecure", True) else []),
              "--nodes", node, "--file", str(inputs["config"])] for node in nodes]
    bootstrap = [*base, "--nodes", first, "--endpoints", endpoint, "bootstrap"]
    if snapshot:
        # A snapshot copied from the etcd data directory has no integrity hash; `etcdctl snapshot save`
        # files do. dr's etcd-snapshot backups are the latter, so the hash check stays on.
        bootstrap += ["--recover-from", snapshot]
    calls.append(bootstrap)
    calls.append([*base, "--nodes", first, "--endpoints", endpoint, "kubeconfig", kubeconfig, "--force"])
    return calls


def command_environment(inputs: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, str]:
    """The environment a command step adds: its `env`, and each secret it names as DR_SECRET_<NAME>."""
    env = {str(k): str(v) for k, v in dict(inputs.get("env", {})).items()}
    for name in inputs.get("secrets", []):
        env[f"DR_SECRET_{str(name).upper().replace('-', '_')}"] = secrets[str(name)]
    return env
