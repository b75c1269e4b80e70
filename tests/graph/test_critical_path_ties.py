"""The critical path's documented tie-breaks: between equally long chains the alphabetically first wins,
whatever order `depends_on` lists them in."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from dr.core.graph import RecoveryGraph
from dr.core.spec import GraphSpec


def graph(components: str) -> RecoveryGraph:
    return RecoveryGraph.build(GraphSpec.from_yaml(f"cluster: lab\ncomponents:\n{components}", path="g.yaml"))


@pytest.mark.parametrize("order", ["[a, b]", "[b, a]"])
def test_equal_predecessors_tie_to_the_first_name(order: str) -> None:
    g = graph(f"""\
  a: {{layer: os, estimate: 5m}}
  b: {{layer: os, estimate: 5m}}
  end: {{layer: app, depends_on: {order}, estimate: 1m}}
""")
    assert g.critical_path() == (["a", "end"], 360)


def test_the_longer_predecessor_wins_over_the_first_name() -> None:
    g = graph("""\
  a: {layer: os, estimate: 5m}
  b: {layer: os, estimate: 6m}
  end: {layer: app, depends_on: [a, b], estimate: 1m}
""")
    assert g.critical_path() == (["b", "end"], 420)


def test_equal_chain_ends_tie_to_the_first_name() -> None:
    g = graph("""\
  zeta: {layer: os, estimate: 3m}
  alpha: {layer: os, estimate: 3m}
""")
    assert g.critical_path() == (["alpha"], 180)


def test_an_empty_graph_has_an_empty_critical_path_of_length_zero() -> None:
    spec = GraphSpec.from_yaml("cluster: lab\ncomponents:\n  a: {layer: os}\n", path="g.yaml")
    empty = RecoveryGraph.build(spec.with_components(MappingProxyType({})))
    assert empty.critical_path() == ([], 0)
