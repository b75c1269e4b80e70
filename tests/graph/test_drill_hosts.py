"""A drill runs on its own hosts: the rules that keep every host step of a drill off production."""

from __future__ import annotations

import pytest

from dr.core.graph import RecoveryGraph
from dr.core.invocations import hosts_inventory
from dr.core.plan import plan_for
from dr.core.spec import GraphSpec
from dr.errors import GraphError

GRAPH = """\
cluster: lab
hosts:
  prod-a: {address: 192.0.2.10, hostname: prod-a.lab.example, groups: [db], host_key: "ssh-ed25519 AAAAprodA"}
  prod-b: {address: 192.0.2.11, groups: [nas]}
{drill_hosts}
components:
  db: {layer: os, playbook: db.yml, hosts: [db], vars: {peer: 192.0.2.11}, drill: {values: {peer: 198.51.100.11}}, estimate: 1m}
  nas: {layer: os, playbook: nas.yml, hosts: [nas], estimate: 1m}
"""

DRILL_HOSTS = """\
drill_hosts:
  drill-a: {address: 198.51.100.10, groups: [db]}
  drill-b: {address: 198.51.100.11, groups: [nas]}
"""


def spec_with(drill_hosts: str) -> GraphSpec:
    return GraphSpec.from_yaml(GRAPH.replace("{drill_hosts}", drill_hosts), path="g.yaml")


def test_drill_mode_resolves_host_steps_only_to_drill_hosts() -> None:
    plan = plan_for(spec_with(DRILL_HOSTS), mode="drill")
    assert plan.graph is not None
    assert sorted(hosts_inventory(plan.graph.spec)) == ["drill-a", "drill-b"]
    assert sorted(plan.graph.spec.production_hosts) == ["prod-a", "prod-b"]
    prod = plan_for(spec_with(DRILL_HOSTS), mode="prod")
    assert prod.graph is not None and sorted(hosts_inventory(prod.graph.spec)) == ["prod-a", "prod-b"]


def test_no_drill_inventory_stops_naming_the_step_and_what_to_add() -> None:
    with pytest.raises(GraphError) as caught:
        RecoveryGraph.build(spec_with(""), mode="drill")
    text = str(caught.value)
    assert "component 'db' runs on hosts (db), and the graph declares no drill_hosts" in text
    assert "component 'nas'" in text and "Add a drill_hosts: inventory" in text
    RecoveryGraph.build(spec_with(""), mode="prod")


def test_a_group_missing_from_the_drill_inventory_is_named() -> None:
    only_db = "drill_hosts:\n  drill-a: {address: 198.51.100.10, groups: [db]}\n"
    with pytest.raises(GraphError, match="component 'nas' runs on nas in drill mode, but no host of drill_hosts"):
        RecoveryGraph.build(spec_with(only_db), mode="drill")


@pytest.mark.parametrize(("drill_host", "why"), [
    ("{address: 192.0.2.10, groups: [db]}", "same address 192.0.2.10"),
    ("{address: prod-a.lab.example, groups: [db]}", "same address prod-a.lab.example"),
    ("{address: 198.51.100.9, hostname: PROD-A.lab.example, groups: [db]}", "same hostname PROD-A.lab.example"),
    ("{address: 198.51.100.9, groups: [db], host_key: 'ssh-ed25519 AAAAprodA drill-a'}", "same SSH host key"),
])
def test_a_drill_host_that_is_a_production_host_is_refused(drill_host: str, why: str) -> None:
    graph = DRILL_HOSTS.replace("{address: 198.51.100.10, groups: [db]}", drill_host)
    with pytest.raises(GraphError) as caught:
        RecoveryGraph.build(spec_with(graph), mode="drill")
    assert f"drill host 'drill-a' is the production host 'prod-a' ({why})" in str(caught.value)


def test_production_addresses_are_markers_in_drill_mode() -> None:
    leaky = GRAPH.replace("drill: {values: {peer: 198.51.100.11}}, ", "").replace("{drill_hosts}", DRILL_HOSTS)
    with pytest.raises(GraphError, match="vars.peer contains the production marker '192.0.2.11'"):
        RecoveryGraph.build(GraphSpec.from_yaml(leaky, path="g.yaml"), mode="drill")
    RecoveryGraph.build(GraphSpec.from_yaml(leaky, path="g.yaml"), mode="prod")


def test_a_host_key_must_look_like_a_public_key_line() -> None:
    with pytest.raises(GraphError, match="'host_key' must be a public key line"):
        GraphSpec.from_yaml(GRAPH.replace('host_key: "ssh-ed25519 AAAAprodA"', 'host_key: "AAAAprodA"')
                            .replace("{drill_hosts}", DRILL_HOSTS), path="g.yaml")
