"""Before the first step of a drill: prove that no drill host is a production host, without trusting names.

The graph's rules already refuse a drill host that shares a production host's address, hostname or
recorded SSH host key (`dr.core.modes`). Here the same question is asked of the network: each drill
host's name is resolved and compared with the resolved production addresses, and the SSH host key the
drill host actually presents (`ssh-keyscan`) is compared with the production hosts' recorded keys. Only
drill hosts are contacted; production hosts never are.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dr.core.spec import GraphSpec, Host
from dr.errors import UsageError

Resolver = Callable[[str], set[str]]
KeyScanner = Callable[[str, int], set[str]]


class DrillRefused(UsageError):
    """A drill would touch production; nothing has run."""


def resolve(name: str) -> set[str]:
    """Every IP address a name or address resolves to (empty when it does not resolve)."""
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except (socket.gaierror, UnicodeError):
        return set()


def scan_host_keys(address: str, port: int) -> set[str]:
    """'type base64' of every host key the SSH server at address:port presents (empty when unreachable)."""
    try:
        done = subprocess.run(["ssh-keyscan", "-T", "5", "-p", str(port), address], capture_output=True, text=True,
                              check=False, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return set()
    keys = set()
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            keys.add(f"{parts[1]} {parts[2]}")
    return keys


def _port(host: Host) -> int:
    vars_: Mapping[str, Any] = host.vars
    return int(vars_.get("ansible_port", vars_.get("ansible_ssh_port", 22)))


def check_drill_hosts(drill_spec: GraphSpec, *, hosts_used: Iterable[str] | None = None,
                      resolver: Resolver = resolve, scanner: KeyScanner = scan_host_keys) -> None:
    """Raise DrillRefused naming every drill host that resolves to, or presents the key of, a production host."""
    production = drill_spec.production_hosts
    prod_addresses: dict[str, str] = {}
    for prod in production.values():
        for name in filter(None, (prod.address, prod.hostname)):
            for address in resolver(name) | {name}:
                prod_addresses.setdefault(address, prod.name)
    prod_keys = {p.host_key: p.name for p in production.values() if p.host_key}
    wanted = set(hosts_used) if hosts_used is not None else set(drill_spec.hosts)
    problems = []
    for drill in (h for h in drill_spec.hosts.values() if h.name in wanted):
        problems += _address_clashes(drill, prod_addresses, resolver)
        if prod_keys:
            problems += [f"drill host {drill.name!r} ({drill.address}) presents the SSH host key of production "
                         f"host {prod_keys[key]!r} ({key.split()[0]}): it is that machine"
                         for key in sorted(scanner(drill.address, _port(drill)) & set(prod_keys))]
    if problems:
        raise DrillRefused("refusing to drill, nothing was run: " + "; ".join(problems))


def _address_clashes(drill: Host, prod_addresses: Mapping[str, str], resolver: Resolver) -> list[str]:
    problems = []
    for name in filter(None, (drill.address, drill.hostname)):
        clash = sorted(a for a in resolver(name) | {name} if a in prod_addresses)
        if clash:
            problems.append(f"drill host {drill.name!r} ({name}) resolves to {clash[0]}, the address of "
                            f"production host {prod_addresses[clash[0]]!r}")
    return problems
