"""The run-time identity guard with the network replaced: names are resolved, only drill hosts are asked
for their SSH host key, and a clash with production refuses the drill naming the host."""

from __future__ import annotations

import pytest

from dr.core.plan import plan_for
from dr.core.spec import GraphSpec
from dr.hosts.identity import DrillRefused, check_drill_hosts

GRAPH = """\
cluster: lab
hosts:
  prod-a: {address: prod-a.lab.example, groups: [db], host_key: "ssh-ed25519 AAAAprodA"}
drill_hosts:
  drill-a: {address: drill-a.lab.example, groups: [db], vars: {ansible_port: 2222}}
  spare: {address: spare.lab.example, groups: [db]}
components:
  db: {layer: os, playbook: db.yml, hosts: [db], estimate: 1m}
"""


def drill_spec() -> GraphSpec:
    plan = plan_for(GraphSpec.from_yaml(GRAPH, path="g.yaml"), mode="drill")
    assert plan.graph is not None
    return plan.graph.spec


def test_a_drill_host_name_that_resolves_to_a_production_address_is_refused() -> None:
    dns = {"prod-a.lab.example": {"192.0.2.10"}, "drill-a.lab.example": {"192.0.2.10"},
           "spare.lab.example": {"198.51.100.7"}}
    with pytest.raises(DrillRefused, match="drill host 'drill-a' \\(drill-a.lab.example\\) resolves to 192.0.2.10, "
                                           "the address of production host 'prod-a'"):
        check_drill_hosts(drill_spec(), resolver=lambda n: dns.get(n, set()), scanner=lambda a, p: set())


def test_only_drill_hosts_are_scanned_and_a_production_key_is_refused() -> None:
    scanned: list[tuple[str, int]] = []

    def scanner(address: str, port: int) -> set[str]:
        scanned.append((address, port))
        return {"ssh-ed25519 AAAAprodA"} if address == "drill-a.lab.example" else {"ssh-ed25519 AAAAother"}

    with pytest.raises(DrillRefused, match="presents the SSH host key of production host 'prod-a'"):
        check_drill_hosts(drill_spec(), resolver=lambda n: set(), scanner=scanner)
    assert sorted(scanned) == [("drill-a.lab.example", 2222), ("spare.lab.example", 22)]


def test_hosts_the_drill_does_not_use_are_not_contacted_and_a_clean_drill_passes() -> None:
    scanned: list[str] = []
    check_drill_hosts(drill_spec(), hosts_used={"spare"}, resolver=lambda n: set(),
                      scanner=lambda a, p: scanned.append(a) or {"ssh-ed25519 AAAAspare"})
    assert scanned == ["spare.lab.example"]
