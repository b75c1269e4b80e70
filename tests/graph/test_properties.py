"""Property tests: the order is right on random DAGs, and no input ever ends in a traceback."""

from __future__ import annotations

import itertools
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dr.core.graph import RecoveryGraph
from dr.core.spec import ACTIONS, LAYERS, GraphSpec
from dr.core.yaml_source import decode_text
from dr.errors import GraphError


@st.composite
def random_dags(draw: st.DrawFn, max_nodes: int = 9) -> dict[str, Any]:
    """A graph document whose edges only point from lower to higher index, so it is acyclic."""
    count = draw(st.integers(min_value=1, max_value=max_nodes))
    names = [f"c{i}" for i in range(count)]
    components: dict[str, Any] = {}
    for i, name in enumerate(names):
        deps = draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=min(i, 4))) if i else []
        estimate = draw(st.integers(min_value=0, max_value=600))
        components[name] = {"layer": "os", "depends_on": deps, "estimate": f"{estimate}s"}
    # Shuffle declaration order so nothing depends on the file being in order already.
    order = draw(st.permutations(names))
    return {"cluster": "random", "components": {n: components[n] for n in order}}


def build(document: dict[str, Any]) -> RecoveryGraph:
    return RecoveryGraph.build(GraphSpec.from_yaml(yaml.safe_dump(document), path="random.yaml"))


def all_paths(deps: dict[str, list[str]]) -> list[list[str]]:
    """Every chain following dependencies, by brute force (fine for a handful of nodes)."""
    paths: list[list[str]] = []

    def extend(path: list[str]) -> None:
        paths.append(path)
        for name, needs in deps.items():
            if path[-1] in needs:
                extend([*path, name])

    for start in deps:
        extend([start])
    return paths


@settings(max_examples=200, deadline=None)
@given(random_dags())
def test_each_wave_is_one_more_than_its_latest_dependency(document: dict[str, Any]) -> None:
    graph = build(document)
    wave = graph.wave_of()
    deps = {n: c["depends_on"] for n, c in document["components"].items()}
    for name, needs in deps.items():
        assert all(wave[d] < wave[name] for d in needs)
        assert wave[name] == (1 + max(wave[d] for d in needs) if needs else 0)
    assert sorted(itertools.chain.from_iterable(graph.waves())) == sorted(deps)


@settings(max_examples=200, deadline=None)
@given(random_dags(max_nodes=8))
def test_critical_path_is_the_longest_chain(document: dict[str, Any]) -> None:
    graph = build(document)
    components = document["components"]
    estimate = {n: int(c["estimate"][:-1]) for n, c in components.items()}
    deps = {n: c["depends_on"] for n, c in components.items()}
    longest = max(sum(estimate[n] for n in path) for path in all_paths(deps))
    path, length = graph.critical_path()
    assert length == longest
    assert sum(estimate[n] for n in path) == length
    for earlier, later in itertools.pairwise(path):
        assert earlier in deps[later]


@settings(max_examples=200, deadline=None)
@given(random_dags(), st.data())
def test_only_is_exactly_the_ancestor_closure(document: dict[str, Any], data: st.DataObject) -> None:
    graph = build(document)
    deps = {n: c["depends_on"] for n, c in document["components"].items()}
    wanted = data.draw(st.lists(st.sampled_from(sorted(deps)), min_size=1, max_size=3, unique=True))
    closure: set[str] = set()
    stack = list(wanted)
    while stack:
        name = stack.pop()
        if name not in closure:
            closure.add(name)
            stack.extend(deps[name])
    assert set(graph.only(wanted).components) == closure


# -- no traceback, whatever the input ---------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12),
                    st.sampled_from([*LAYERS, *ACTIONS, "latest", "1m", "banana", "@daily", "0 * * * *", "1.30"]))
field_names = st.sampled_from(["cluster", "kubernetes", "hosts", "prod_markers", "backups", "components", "layer",
                               "depends_on", "estimate", "stateful", "prod_only", "drill_only", "drill",
                               "replace_with", "values", "verify", "backup", "tool", "protects", "repo",
                               "schedule", "retention", "rpo", "target_time", "chart", "version", "namespace",
                               "hosts", "vars", "address", "groups", *ACTIONS, "c0", "c1", "b0"])
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(field_names, st.text(max_size=6)), inner, max_size=5)),
    max_leaves=30)


def load_never_crashes(text: str) -> None:
    try:
        spec = GraphSpec.from_yaml(text, path="fuzz.yaml")
        for mode in ("prod", "drill"):
            RecoveryGraph.build(spec, mode=mode)
    except GraphError as exc:
        assert all(d.path == "fuzz.yaml" and d.line >= 0 and d.message for d in exc.diagnostics)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_yaml_documents_never_raise_anything_but_graph_errors(document: Any) -> None:
    load_never_crashes(yaml.safe_dump(document))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["os", "etcd", "k3s", "app", "db"]),
                       st.dictionaries(field_names, documents, max_size=5), max_size=5))
def test_random_component_maps_never_raise_anything_but_graph_errors(components: dict[str, Any]) -> None:
    load_never_crashes(yaml.safe_dump({"cluster": "fuzz", "components": components}))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_graph_errors(raw: bytes) -> None:
    try:
        text = decode_text(raw, path="fuzz.yaml")
    except GraphError:
        return
    load_never_crashes(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}#&*!|>'\"%@`, \t\n0123456789.?")), max_size=80))
def test_random_yaml_syntax_never_raises_anything_but_graph_errors(text: str) -> None:
    load_never_crashes(text)
