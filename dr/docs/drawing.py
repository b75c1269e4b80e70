"""The recovery graph as pictures: a Mermaid flowchart (pure text) and an SVG drawn by Graphviz.

Both group components by layer and draw one edge per dependency. `render_svg` is the only I/O:
it runs Graphviz's `dot` (Debian package graphviz).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

from dr.core.plan import Plan, Step
from dr.core.spec import LAYERS
from dr.errors import DrError


def _node_id(name: str) -> str:
    return "c_" + name.replace("-", "_")


def _layers(plan: Plan) -> Iterator[tuple[int, str, list[Step]]]:
    """(index, layer, steps) of every layer that has steps, in layer order."""
    for index, layer in enumerate(LAYERS):
        steps = [s for s in plan.steps if s.layer == layer]
        if steps:
            yield index, layer, steps


def mermaid(plan: Plan) -> str:
    """A `flowchart` with one subgraph per layer, one node per step and one edge per dependency."""
    lines = ["flowchart TD"]
    for index, layer, steps in _layers(plan):
        lines.append(f'  subgraph layer_{index}["{layer}"]')
        for step in steps:
            mark = " ★" if step.on_critical_path else ""
            lines.append(f'    {_node_id(step.name)}["{step.name}{mark}"]')
        lines.append("  end")
    for step in plan.steps:
        for dep in step.depends_on:
            lines.append(f"  {_node_id(dep)} --> {_node_id(step.name)}")
    return "\n".join(lines) + "\n"


def dot_source(plan: Plan) -> str:
    # Left to right: the waves read as columns, and the drawing fits a laptop's width (top to bottom it was
    # twice as wide as high, shrunk to unreadable in the runbook).
    lines = ["digraph recovery {", '  graph [rankdir=LR, fontname="Helvetica", nodesep=0.25, ranksep=0.5];',
             '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", fontsize=11];',
             '  edge [color="#555555"];']
    for index, layer, steps in _layers(plan):
        lines.append(f'  subgraph cluster_{index} {{ label="{layer}"; style="rounded,dashed"; color="#999999";')
        for step in steps:
            fill = ', fillcolor="#ffe9a8"' if step.on_critical_path else ""
            star = "★ " if step.on_critical_path else ""
            # Each box links to its step in the runbook (the HTML inlines this SVG).
            lines.append(f'    "{step.name}" [label="{star}{step.name}\\n{step.action}"{fill}, '
                         f'URL="#step-{step.name}", target="_top", tooltip="{step.name}: go to the step"];')
        lines.append("  }")
    for step in plan.steps:
        for dep in step.depends_on:
            lines.append(f'  "{dep}" -> "{step.name}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(plan: Plan) -> str:
    """SVG of the graph; DrError when Graphviz is missing."""
    try:
        done = subprocess.run(["dot", "-Tsvg"], input=dot_source(plan), capture_output=True, text=True,
                              check=False, timeout=120)
    except FileNotFoundError:
        raise DrError("Graphviz's dot is not installed; run `make system` (Debian package graphviz)") from None
    if done.returncode != 0:
        raise DrError(f"Graphviz failed: {done.stderr.strip()}")
    # Drop the generator comment and XML prolog so the SVG inlines into HTML and does not name a version.
    svg = re.sub(r"<!--.*?-->\n?", "", done.stdout, flags=re.S)
    svg = re.sub(r"<\?xml[^>]*\?>\n?|<!DOCTYPE[^>]*>\n?", "", svg)
    return svg.strip() + "\n"
