"""Every rule the graph an import wrote must pass before import calls it accepted: the ones `dr plan`
runs (graph rules, in both modes), the ones `dr docs` adds (the resource plan: every restore object can be
rendered, no production marker in a drill), and `dr preview`'s schema check of each object dr would create
(strict, against the Kubernetes schemas and the real upstream CRDs)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.core.spec import GraphSpec
from dr.errors import GraphError
from dr.kube.validate import validate_objects

MODES = ("prod", "drill")


def refusals(text: str, *, where: str, read_text: Callable[[Path], str], crd_dirs: Iterable[Path] = ()
             ) -> tuple[list[str], int, list[str]]:
    """(what plan, docs or preview would refuse, each as `mode: path:line: message`; the most warnings
    `dr plan` gives in one mode; the custom resource kinds no CRD was found for, so not validated).
    `crd_dirs`: more places to find CRDs (the repository being imported, when it holds some)."""
    refused: list[str] = []
    unchecked: list[str] = []
    warnings = 0
    try:
        declared = GraphSpec.from_yaml(text, path=where)
    except GraphError as exc:
        return [str(d) for d in exc.diagnostics], 0, []
    for mode in MODES:
        try:
            plan = plan_for(declared, mode=mode, read_text=read_text)
            warnings = max(warnings, len(plan.warnings))
            spec = plan.graph.spec if plan.graph else declared
            resources = resource_plan(plan, spec, read_text=read_text)
        except GraphError as exc:
            refused += [f"{mode}: {d}" for d in exc.diagnostics]
            continue
        checked = validate_objects(((f"component {component!r}: {obj.title}", obj.manifest)
                                    for component, obj in resources.objects()),
                                   kubernetes=spec.kubernetes, crd_dirs=(*spec.crd_dirs, *crd_dirs))
        refused += [f"{mode}: {problem}" for problem in checked.problems]
        unchecked += checked.notes()
    return list(dict.fromkeys(refused)), warnings, list(dict.fromkeys(unchecked))
