"""`dr docs`: write the runbook files of a graph, or check that the committed ones are current.

For each mode it renders `recovery-order[.drill].md` (Markdown with a Mermaid graph),
`recovery-order[.drill].svg` (Graphviz) and `recovery-order[.drill].html` (single file, SVG inline,
printable). Files are generated in memory first, so `--check` compares without writing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dr.core.docmodel import to_html, to_markdown
from dr.core.mode_diff import diff_modes
from dr.core.modes import ReadText
from dr.core.plan import Plan, plan_for
from dr.core.resources import ResourcePlan, resource_plan
from dr.core.spec import GraphSpec
from dr.docs.drawing import mermaid, render_svg
from dr.docs.runbook import build_runbook


@dataclass(frozen=True)
class GeneratedFile:
    name: str
    content: str


def _resources(spec: GraphSpec, mode: str, read_text: ReadText) -> tuple[Plan, ResourcePlan]:
    plan = plan_for(spec, mode=mode, read_text=read_text)
    assert plan.graph is not None
    return plan, resource_plan(plan, plan.graph.spec, read_text=read_text)


def generate(spec: GraphSpec, *, modes: Sequence[str], read_text: ReadText, graph_path: str,
             secret_names: Sequence[str] = ()) -> list[GeneratedFile]:
    planned = {mode: _resources(spec, mode, read_text) for mode in ("prod", "drill")}
    difference = diff_modes(planned["prod"][1], planned["drill"][1])
    files = []
    for mode in modes:
        plan, resources = planned[mode]
        suffix = "" if mode == "prod" else f".{mode}"
        svg = render_svg(plan)
        blocks = build_runbook(plan, spec, resources, graph_path=graph_path, mode_diff=difference,
                               mermaid=mermaid(plan), svg=svg, secret_names=secret_names,
                               svg_file=f"recovery-order{suffix}.svg")
        title = f"Recovery order of {plan.cluster} ({mode})"
        files += [GeneratedFile(f"recovery-order{suffix}.md", to_markdown(blocks)),
                  GeneratedFile(f"recovery-order{suffix}.svg", svg),
                  GeneratedFile(f"recovery-order{suffix}.html", to_html(blocks, title=title))]
    return files


def write(files: Sequence[GeneratedFile], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for generated in files:
        path = out / generated.name
        path.write_text(generated.content, encoding="utf-8")
        written.append(path)
    return written


def stale(files: Sequence[GeneratedFile], out: Path) -> list[str]:
    """Names of the files under `out` that are missing or differ from what would be generated."""
    differing = []
    for generated in files:
        path = out / generated.name
        if not path.is_file() or path.read_text(encoding="utf-8") != generated.content:
            differing.append(str(path))
    return differing


def secret_names_from(config: Mapping[str, str]) -> list[str]:
    """Names (never values) of the secrets a stack config declares under dr:secrets."""
    import json

    raw = config.get("dr:secrets")
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return sorted(value) if isinstance(value, dict) else []
