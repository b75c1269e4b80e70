"""The text form of `dr plan`: a table of waves with the critical path marked.

Pure: takes a `Plan`, returns a string. The JSON form is `Plan.to_json`.
"""

from __future__ import annotations

from dr.core.durations import format_duration
from dr.core.plan import Plan


def render_plan(plan: Plan, *, estimate_note: str = "") -> str:
    lines = [
        f"Recovery plan for cluster {plan.cluster!r} ({plan.mode} mode): "
        f"{len(plan.steps)} steps in {len(plan.waves)} waves",
        (f"Predicted RTO: {format_duration(plan.predicted_rto_s)} ({plan.predicted_rto_s}s), "
         "the length of the critical path (marked *)" if plan.predicted_rto_s > 0 else
         "Predicted RTO: none: no step has an estimate (set `estimate:` on the components, or run drills: "
         "measured durations replace estimates)") + (f"; {estimate_note}" if estimate_note else ""),
        "",
    ]
    name_width = max([len(s.name) for s in plan.steps] + [4]) + 2
    header = f"{'wave':>4}  {'step':<{name_width}} {'layer':<13} {'action':<9} {'estimate':>8}  depends on"
    lines += [header, "-" * len(header)]
    last_wave = -1
    for step in plan.steps:
        wave = f"{step.wave:>4}" if step.wave != last_wave else " " * 4
        if step.wave != last_wave and last_wave != -1:
            lines.append("")
        last_wave = step.wave
        mark = "*" if step.on_critical_path else " "
        deps = ", ".join(step.depends_on) or "-"
        lines.append(f"{wave}  {mark} {step.name:<{name_width - 2}} {step.layer:<13} {step.action:<9} "
                     f"{format_duration(step.estimate_s):>8}  {deps}")
    lines += ["", "Critical path: " + (" -> ".join(plan.critical_path) or "(empty)")]
    return "\n".join(lines) + "\n"
