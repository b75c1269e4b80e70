"""The plan: the ordered, mode-resolved list of steps that every front end consumes.

`Plan.from_graph` turns a validated `RecoveryGraph` into steps with waves, the critical path and the
predicted RTO; `to_json` is the `dr plan --json` contract of design.md. `plan_for` is the whole
pipeline (spec -> graph for a mode -> optional --only -> plan) that the CLI and the Pulumi program
share, so no front end derives the order on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from dr.core.durations import step_timeout_reason, step_timeout_s
from dr.core.graph import RecoveryGraph
from dr.core.modes import ReadText
from dr.core.spec import Component, GraphSpec
from dr.core.yaml_source import paused_gc
from dr.errors import Diagnostic


@dataclass(frozen=True, slots=True)
class Step:
    """One component in recovery order."""

    name: str
    layer: str
    depends_on: tuple[str, ...]
    action: str  # playbook | helm | manifests | restore | milestone
    wave: int
    estimate_s: int
    on_critical_path: bool
    component: Component

    @property
    def timeout_s(self) -> int:
        """How long it may run before a drill fails it as stuck (`dr.core.durations.step_timeout_s`)."""
        return step_timeout_s(self.estimate_s, self.component.timeout_s)

    @property
    def timeout_reason(self) -> str:
        return step_timeout_reason(self.estimate_s, self.component.timeout_s)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "layer": self.layer, "depends_on": list(self.depends_on),
                "action": self.action, "wave": self.wave, "estimate_s": self.estimate_s}


@dataclass(frozen=True)
class Plan:
    cluster: str
    mode: str
    waves: tuple[tuple[str, ...], ...]
    steps: tuple[Step, ...]
    critical_path: tuple[str, ...]
    predicted_rto_s: int
    warnings: tuple[Diagnostic, ...] = ()
    graph: RecoveryGraph | None = None

    @classmethod
    def from_graph(cls, graph: RecoveryGraph, *, estimates: Mapping[str, int] | None = None) -> Plan:
        """Steps ordered by wave, then layer, then name; `estimates` overrides the graph's (drill history)."""
        if estimates:
            graph = _with_estimates(graph, estimates)
        wave = graph.wave_of()
        path, length = graph.critical_path()
        on_path = set(path)
        components = graph.spec.components
        waves = graph.waves(wave)  # each wave sorted by name; a stable sort by layer keeps that within a layer
        steps = []
        for index, names in enumerate(waves):
            for n in sorted(names, key=lambda n: components[n].layer_index):
                c = components[n]
                steps.append(Step(name=n, layer=c.layer, depends_on=tuple(sorted(c.depends_on)),
                                  action=c.action_kind, wave=index, estimate_s=c.estimate_s,
                                  on_critical_path=n in on_path, component=c))
        return cls(cluster=graph.spec.cluster, mode=graph.mode,
                   waves=tuple(tuple(w) for w in waves), steps=tuple(steps), critical_path=tuple(path),
                   predicted_rto_s=length, warnings=graph.warnings, graph=graph)

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "mode": self.mode,
                "waves": [list(w) for w in self.waves],
                "steps": [s.to_json() for s in self.steps],
                "critical_path": list(self.critical_path),
                "predicted_rto_s": self.predicted_rto_s}


def _with_estimates(graph: RecoveryGraph, estimates: Mapping[str, int]) -> RecoveryGraph:
    components = {n: replace(c, estimate_s=estimates.get(n, c.estimate_s)) for n, c in graph.spec.components.items()}
    return replace(graph, spec=graph.spec.with_components(components))


def plan_for(spec: GraphSpec, *, mode: str = "prod", only: Iterable[str] = (),
             read_text: ReadText | None = None, estimates: Mapping[str, int] | None = None) -> Plan:
    """Validate `spec` for `mode` and plan it, optionally for `only` some components and their needs."""
    with paused_gc():
        graph = RecoveryGraph.build(spec, mode=mode, read_text=read_text)
        wanted = list(only)
        if wanted:
            graph = graph.only(wanted)
        return Plan.from_graph(graph, estimates=estimates)

