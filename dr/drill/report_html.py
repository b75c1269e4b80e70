"""The drill report as one self-contained HTML file: where the time went, at a glance.

A timeline of every step from the disaster to the verification (matplotlib, inline SVG: no scripts, no
files beside it), the critical path starred, each step's wait on the steps it needs drawn as a thin line,
RTO and RPO against their targets, what ran for real and what did not, the checks, the scenarios, and
what to type next. The same `DrillReport` as the Markdown, JSON, JUnit and Prometheus files.
"""

from __future__ import annotations

import io
import re

from dr.core.docmodel import Block, Bullets, Heading, Para, Raw, Table, code, text, to_html
from dr.core.drill_report import DrillReport, StepResult, scenario_step
from dr.core.durations import format_duration

STATE_COLOURS = {"succeeded": ("#2ca02c", "green"), "applied": ("#1f77b4", "blue"), "failed": ("#d62728", "red"),
                 "skipped": ("#ff7f0e", "orange"), "rendered": ("#9467bd", "purple"), "not-run": ("#bbbbbb", "grey")}
STATE_MEANING = {"succeeded": "ran for real", "applied": "created on a real API server and awaited; no operator moved "
                 "data", "failed": "failed", "skipped": "skipped: a step it needs failed", "rendered": "only rendered",
                 "not-run": "not run here (needs machines or services the sandbox does not have)"}


def report_html(report: DrillReport) -> str:
    verdict = "PASSED" if report.success else "FAILED"
    return to_html(_blocks(report), title=f"Drill {report.run_id} of {report.cluster}: {verdict}")


def _blocks(report: DrillReport) -> list[Block]:
    verdict = "PASSED" if report.success else "FAILED"
    target = format_duration(report.rto_target_s) if report.rto_target_s > 0 else "none"
    # Every name, detail and text of the report is data (`text`, `code`): never markup, never a link.
    blocks: list[Block] = [
        Heading(1, f"Drill {text(report.run_id)} of {text(report.cluster)}: {verdict}"),
        Para(f"**RTO {format_duration(report.rto_s)}** against a target of {target}"
             + (": met." if report.rto_met else ": **MISSED**.")
             + f" {report.ran_for_real} of {len(report.steps)} steps ran for real ({text(report.kind)} drill)."),
        Heading(2, "Timeline", anchor="timeline"),
        Para("Seconds since the disaster. One bar per step, coloured by what happened to it; ★ marks the critical "
             "path; a thin line runs from the end of each step to the start of every step that needs it, so a "
             "restore is seen finishing before the app it gates starts. Dashed: the RTO measured, and its target."),
        Raw("", f'<div class="graph">{timeline_svg(report)}</div>'),
        Table(("colour", "state", "meaning"), tuple(
            (name, state, STATE_MEANING[state])
            for state, (_, name) in STATE_COLOURS.items() if any(s.state == state for s in report.steps))),
        Heading(2, "Data lost (RPO)"),
        Table(("backup", "data lost", "target", ""), tuple(
            (text(r.backup), "nothing restored" if r.measured_s is None else f"{r.measured_s:.1f} s",
             format_duration(r.target_s), "ok" if r.ok else "MISSED") for r in report.rpo)) if report.rpo else
        Para("No backup restored here was measured."),
        Heading(2, "Steps"),
        Table(("step", "layer", "state", "attempts", "duration", "detail"), tuple(
            (text(s.name) + (" ★" if s.on_critical_path else ""), text(s.layer), text(s.state), str(s.attempts),
             f"{s.duration_s:.1f} s", text(s.detail)) for s in report.steps)),
        Heading(2, "Checks"),
        Table(("step", "check", "result", "detail"), tuple(
            (text(c.step), text(c.kind), "ok" if c.ok else "FAILED", text(c.detail)) for c in report.checks
            if not c.step.startswith("scenario "))),
    ]
    for scenario in report.scenarios:
        checks = [c for c in report.checks if c.step == scenario_step(scenario.name)]
        blocks += [Heading(2, f"Scenario {text(scenario.name)}: "
                              f"{'recovered' if all(c.ok for c in checks) else 'FAILED'}"),
                   Bullets((f"**incident**: {text(scenario.incident)}",
                            f"**disaster, really done here**: {text(scenario.disaster)}",
                            "**dr said before it**"
                            + (f" (time to detect {scenario.detect_s:.1f} s)" if scenario.detect_s is not None else "")
                            + ": " + ("; ".join(text(d) for d in scenario.detected) or "nothing"),
                            f"**prevented**: {text(scenario.prevented)}", f"**recovered**: {text(scenario.recovered)}",
                            f"**lost**: {text(scenario.lost)}",
                            f"bytes recovered {scenario.bytes_recovered}, bytes lost {scenario.bytes_lost}")),
                   Table(("check", "result", "detail"), tuple((text(c.kind), "ok" if c.ok else "FAILED", text(c.detail))
                                                                for c in checks))]
    blocks += [Heading(2, "What next"), Bullets(_next_steps(report))]
    return blocks


def _next_steps(report: DrillReport) -> tuple[str, ...]:
    if report.success:
        return ("The recovery order to follow on the real day: `docs/recovery-order.html` (`dr docs` writes it).",
                "The trend of past drills: `dr history --png history.png`.",
                "A drill on real hosts or a test cluster (what `dr audit` counts): `dr drill --hosts` or "
                "`dr drill --stack drill`.")
    failed = [s.name for s in report.failed_steps]
    again = ("run the stack drill again (`dr drill --stack <name>`)" if report.kind == "stack" else
             f"`dr drill {'--hosts ' if report.kind == 'hosts' else ''}--resume`: finished steps are not run again")
    return ((f"Read why {', '.join(code(n) for n in failed)} failed in the steps table above, fix it, then "
             f"{again}.") if failed else
            "Every step finished; a check or a target failed: see the checks and the RPO table above.",
            "The step's section of the runbook (`docs/recovery-order.html`) says what the automation does and "
            "what to type by hand.")


def timeline_svg(report: DrillReport) -> str:
    """The steps on a time axis from the disaster, as an SVG (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = list(report.steps)
    origin = report.disaster_at
    rows = {s.name: index for index, s in enumerate(steps)}
    end = max([report.rto_s] + [s.finished_at - origin for s in steps if s.finished_at is not None])
    figure, axis = plt.subplots(figsize=(11, max(2.8, 0.32 * len(steps) + 1.4)))
    for step in steps:
        row = rows[step.name]
        start, finish = _span(step, origin)
        colour = STATE_COLOURS.get(step.state, ("#777777", ""))[0]
        if start is None or finish is None:
            axis.plot([0], [row], marker="|", color=colour, markersize=12)
        else:
            axis.barh(row, max(finish - start, end / 400), left=start, height=0.6, color=colour,
                      edgecolor="#000000" if step.on_critical_path else colour,
                      linewidth=1.6 if step.on_critical_path else 0.5)
        for dependency in step.depends_on:
            _, before = _span(steps[rows[dependency]], origin) if dependency in rows else (None, None)
            if before is not None and start is not None:
                axis.plot([before, start], [rows[dependency], row], color="#999999", linewidth=0.6, zorder=0)
    axis.set_yticks(range(len(steps)),
                    labels=[("★ " if s.on_critical_path else "") + f"{s.name} ({s.state})" for s in steps],
                    fontsize=8)
    axis.set_ylim(len(steps) - 0.5, -0.5)  # the first step on top
    above = axis.get_xaxis_transform()  # x in seconds, y in the axes' height: labels just above the plot
    axis.axvline(report.rto_s, color="#000000", linestyle="--", linewidth=1)
    axis.text(report.rto_s, 1.01, f" RTO {format_duration(report.rto_s)}", fontsize=8, va="bottom", transform=above)
    if 0 < report.rto_target_s <= 3 * end:
        axis.axvline(report.rto_target_s, color="#d62728", linestyle="--", linewidth=1)
        axis.text(report.rto_target_s, 1.01, f" target {format_duration(report.rto_target_s)}", fontsize=8,
                  va="bottom", color="#d62728", transform=above)
    axis.set_xlim(left=0)
    axis.set_xlabel("seconds since the disaster"
                    + (f" (RTO target {format_duration(report.rto_target_s)}, off this scale)"
                       if report.rto_target_s > 3 * end else ""))
    axis.grid(axis="x", color="#eeeeee")
    figure.tight_layout()
    image = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text: searchable, selectable, smaller
        figure.savefig(image, format="svg")
    plt.close(figure)
    svg = re.sub(r"<\?xml[^>]*\?>\n?|<!DOCTYPE[^>]*>\n?|<!--.*?-->\n?", "", image.getvalue(), flags=re.S)
    return svg.strip()


def _span(step: StepResult, origin: float) -> tuple[float | None, float | None]:
    if step.started_at is None or step.finished_at is None:
        return None, None
    return max(0.0, step.started_at - origin), max(0.0, step.finished_at - origin)

