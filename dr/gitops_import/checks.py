"""Every rule the graph an import wrote must pass before import calls it accepted: the ones `dr plan`
runs (graph rules, in both modes), the ones `dr docs` adds (the resource plan: every restore object can be
rendered, no production marker in a drill), and `dr preview`'s schema check of each object dr would create
(strict, against the Kubernetes schemas and the real upstream CRDs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.core.spec import GraphSpec
from dr.errors import GraphError
from dr.kube.validate import validate_object

MODES = ("prod", "drill")


def refusals(text: str, *, where: str, read_text: Callable[[Path], str]) -> tuple[list[str], int]:
    """(what plan, docs or preview would refuse, each as `mode: path:line: message`; the most warnings
    `dr plan` gives in one mode)."""
    refused: list[str] = []
    warnings = 0
    try:
        declared = GraphSpec.from_yaml(text, path=where)
    except GraphError as exc:
        return [str(d) for d in exc.diagnostics], 0
    for mode in MODES:
        try:
            plan = plan_for(declared, mode=mode, read_text=read_text)
            warnings = max(warnings, len(plan.warnings))
            spec = plan.graph.spec if plan.graph else declared
            resources = resource_plan(plan, spec, read_text=read_text)
        except GraphError as exc:
            refused += [f"{mode}: {d}" for d in exc.diagnostics]
            continue
        for component, obj in resources.objects():
            refused += [f"{mode}: component {component!r}: {obj.title}: {problem}"
                        for problem in validate_object(obj.manifest, kubernetes=spec.kubernetes,
                                                       crd_dirs=spec.crd_dirs)]
    return list(dict.fromkeys(refused)), warnings
