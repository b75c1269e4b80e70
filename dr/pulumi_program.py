"""The Pulumi program that `pulumi up` runs (through the one-line `__main__.py`).

Today it reads the stack's config (`dr:graph`, `dr:mode`), loads and validates the recovery graph
and builds the plan for that mode, failing the update with the graph's `path:line` errors before
anything is touched. It exports the recovery order as stack outputs. Turning each step into Pulumi
resources (ComponentResources with helm, manifest, restore and playbook children) is not built yet:
it is the work of the issue "`pulumi up` rebuilds the cluster from the graph"; until then this
program creates no cluster resources and says so in its output.
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from dr.errors import GraphError
from dr.plan import Plan, plan_for
from dr.spec import load_graph_file


def load_plan(*, graph_path: str, mode: str) -> Plan:
    """The plan the stack's config asks for; a GraphError carries every `path:line` problem."""
    spec = load_graph_file(graph_path)
    return plan_for(spec, mode=mode, read_text=lambda p: Path(p).read_text(encoding="utf-8"))


def run() -> None:
    config = pulumi.Config("dr")
    graph_path = config.get("graph") or "stacks/cluster.yaml"
    mode = config.get("mode") or "prod"
    if mode not in ("prod", "drill"):
        raise pulumi.RunError(f"config dr:mode must be prod or drill, not {mode!r}")
    try:
        plan = load_plan(graph_path=graph_path, mode=mode)
    except GraphError as exc:
        raise pulumi.RunError(f"the recovery graph is invalid:\n{exc}") from None
    pulumi.export("cluster", plan.cluster)
    pulumi.export("mode", plan.mode)
    pulumi.export("recovery_order", [step.name for step in plan.steps])
    pulumi.export("predicted_rto_s", plan.predicted_rto_s)
    pulumi.export("resources", "none yet: mapping the plan to resources is not built (see docs/pulumi.md)")
