"""A drill's report: what ran, what was checked, RTO and RPO against the targets — in four formats.

Markdown for people, JSON for tools, JUnit XML so CI systems show a drill as tests, and a
Prometheus textfile for alerting on failed or slow drills. Pure: a `DrillReport` in, text out.
Secrets are never part of a report: it holds step names, states, durations, checks and times only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from typing import Any
from xml.etree import ElementTree as ET

from dr.core.docmodel import text
from dr.core.durations import format_duration


@dataclass(frozen=True)
class StepResult:
    name: str
    layer: str
    state: str  # succeeded | applied | failed | skipped | rendered | not-run
    attempts: int
    duration_s: float
    detail: str = ""
    # Wall-clock times of the work itself: for a step run by the Pulumi engine, the arrival of the engine's
    # first resource event and of its last resource outputs event; else the executor's start and end.
    started_at: float | None = None
    finished_at: float | None = None
    on_critical_path: bool = False
    depends_on: tuple[str, ...] = ()

    @property
    def ran(self) -> bool:
        """The step did its work for real (applied counts: accepted by a real API server)."""
        return self.state in ("succeeded", "applied")


@dataclass(frozen=True)
class CheckResult:
    step: str
    kind: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class RpoResult:
    backup: str
    measured_s: float | None  # None: nothing came back to measure
    target_s: int

    @property
    def ok(self) -> bool:
        return self.measured_s is not None and self.measured_s <= self.target_s


@dataclass(frozen=True)
class ScenarioResult:
    """One real incident replayed on the sandbox (`dr drill --scenario`): what happened, what dr said
    before it, and what came back. Its checks are in the report's checks, under `scenario <name>`."""

    name: str
    incident: str    # the real incident it replays
    disaster: str    # what was really done to the sandbox's production
    detected: tuple[str, ...]  # what dr's audit said before the disaster
    detect_s: float | None     # how long the audit took to say it (None: nothing to detect)
    prevented: str
    recovered: str
    lost: str
    bytes_recovered: int = 0
    bytes_lost: int = 0


@dataclass(frozen=True)
class DrillReport:
    run_id: str
    cluster: str
    kind: str  # sandbox | stack
    started_at: float
    disaster_at: float
    verified_at: float
    rto_target_s: int
    steps: tuple[StepResult, ...]
    checks: tuple[CheckResult, ...]
    rpo: tuple[RpoResult, ...]
    rto_measured_s: float | None = None  # disaster to verified on the monotonic clock (dr.drill.clock)
    scenarios: tuple[ScenarioResult, ...] = ()

    @property
    def rto_s(self) -> float:
        """The measured duration; the timestamps' difference only for a report that has none (never < 0)."""
        if self.rto_measured_s is not None:
            return self.rto_measured_s
        return max(0.0, self.verified_at - self.disaster_at)

    @property
    def ran_for_real(self) -> int:
        return sum(1 for s in self.steps if s.ran)

    @property
    def failed_steps(self) -> list[StepResult]:
        return [s for s in self.steps if s.state in ("failed", "skipped")]

    @property
    def success(self) -> bool:
        return (not self.failed_steps and all(c.ok for c in self.checks) and all(r.ok for r in self.rpo)
                and self.rto_met)

    @property
    def rto_met(self) -> bool:
        """A graph with no `rto` and no estimates has no target (0): nothing to miss."""
        return self.rto_target_s <= 0 or self.rto_s <= self.rto_target_s

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document.update({"success": self.success, "rto_s": round(self.rto_s, 3), "steps_ran": self.ran_for_real,
                         "rpo": [{**asdict(r), "ok": r.ok} for r in self.rpo]})
        return document


def _time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def to_markdown(report: DrillReport) -> str:
    verdict = "PASSED" if report.success else "FAILED"
    # Names, details and texts are data: escaped (`text`), never Markdown of their own.
    lines = [f"# Drill {text(report.run_id)} of {text(report.cluster)}: {verdict}", "",
             f"- kind: {text(report.kind)}", f"- disaster at {_time(report.disaster_at)}, verified at "
             f"{_time(report.verified_at)}",
             f"- **RTO {format_duration(report.rto_s)}** ({report.rto_s:.1f} s) against a target of "
             f"{format_duration(report.rto_target_s) if report.rto_target_s > 0 else 'none (set rto: in the graph)'}: "
             f"{'met' if report.rto_met else 'MISSED'}",
             f"- {report.ran_for_real} of {len(report.steps)} steps ran for real "
             f"({sum(1 for s in report.steps if s.state == 'applied')} applied to a real API server), "
             f"{sum(1 for s in report.steps if s.state == 'not-run')} not run",
             "", "## RPO per backup", "", "| backup | data lost | target | |", "|---|---|---|---|"]
    for r in report.rpo:
        measured = "nothing restored" if r.measured_s is None else f"{r.measured_s:.1f} s"
        lines.append(f"| {text(r.backup)} | {measured} | {format_duration(r.target_s)} | "
                     f"{'ok' if r.ok else 'MISSED'} |")
    lines += ["", "## Steps", "", "| step | layer | state | attempts | duration | detail |",
              "|---|---|---|---|---|---|"]
    for s in report.steps:
        lines.append(f"| {text(s.name)} | {text(s.layer)} | {text(s.state)} | {s.attempts} | {s.duration_s:.1f} s | "
                     f"{text(s.detail)} |")
    lines += ["", "Applied steps were created through `pulumi up` on a real API server and awaited, but no operator "
              "ran to move data (no kubelet in the sandbox); not-run steps need machines the sandbox does not have; "
              "rendered steps were only rendered and schema-checked.", "", "## Checks", "",
              "| step | check | result | detail |", "|---|---|---|---|"]
    in_scenarios = {scenario_step(s.name) for s in report.scenarios}  # listed under their scenario below
    for c in report.checks:
        if c.step not in in_scenarios:
            lines.append(f"| {text(c.step)} | {text(c.kind)} | {'ok' if c.ok else 'FAILED'} | {text(c.detail)} |")
    for scenario in report.scenarios:
        lines += _scenario_lines(report, scenario)
    if report.failed_steps:
        lines += ["", "## Failed or skipped", ""]
        lines += [f"- {text(s.name)}: {text(s.state)}: {text(s.detail)}" for s in report.failed_steps]
    return "\n".join(lines) + "\n"


def scenario_step(name: str) -> str:
    """The step name a scenario's checks carry in the report."""
    return f"scenario {name}"


def _scenario_lines(report: DrillReport, scenario: ScenarioResult) -> list[str]:
    checks = [c for c in report.checks if c.step == scenario_step(scenario.name)]
    ok = all(c.ok for c in checks)
    detect = (f" (time to detect: {scenario.detect_s:.1f} s)" if scenario.detect_s is not None else "")
    lines = ["", f"## Scenario {text(scenario.name)}: {'recovered' if ok else 'FAILED'}", "",
             f"- **incident**: {text(scenario.incident)}",
             f"- **disaster, really done here**: {text(scenario.disaster)}",
             f"- **dr said before it**{detect}:"]
    lines += [f"  - {text(line)}" for line in scenario.detected] or ["  - nothing"]
    lines += [f"- **prevented**: {text(scenario.prevented)}", f"- **recovered**: {text(scenario.recovered)}",
              f"- **lost**: {text(scenario.lost)}",
              f"- bytes recovered {scenario.bytes_recovered}, bytes lost {scenario.bytes_lost}; "
              f"RTO {report.rto_s:.1f} s; RPO "
              + (", ".join(f"{text(r.backup)} {r.measured_s:.1f} s" for r in report.rpo if r.measured_s is not None)
                 or "nothing measured"),
              "", "| check | result | detail |", "|---|---|---|"]
    lines += [f"| {text(c.kind)} | {'ok' if c.ok else 'FAILED'} | {text(c.detail)} |" for c in checks]
    return lines


def to_junit(report: DrillReport) -> str:
    suite = ET.Element("testsuite", name=f"dr drill {report.cluster}", timestamp=_iso_time(report.started_at),
                       time=f"{report.rto_s:.3f}")
    failures = skipped = tests = 0
    for s in report.steps:
        tests += 1
        case = ET.SubElement(suite, "testcase", classname=f"drill.steps.{s.layer}", name=s.name,
                             time=f"{s.duration_s:.3f}")
        if s.state == "failed":
            failures += 1
            ET.SubElement(case, "failure", message=s.detail or "failed").text = s.detail
        elif s.state in ("skipped", "rendered", "not-run"):
            skipped += 1  # every <skipped> element counts, so the attribute matches the cases
            ET.SubElement(case, "skipped", message=f"{s.state}: {s.detail}".strip(": "))
    for c in report.checks:
        tests += 1
        case = ET.SubElement(suite, "testcase", classname="drill.checks", name=f"{c.step}: {c.kind}")
        if not c.ok:
            failures += 1
            ET.SubElement(case, "failure", message=c.detail).text = c.detail
    for r in report.rpo:
        tests += 1
        case = ET.SubElement(suite, "testcase", classname="drill.rpo", name=r.backup)
        if not r.ok:
            failures += 1
            ET.SubElement(case, "failure", message=f"RPO {r.measured_s} s over target {r.target_s} s")
    tests += 1
    case = ET.SubElement(suite, "testcase", classname="drill.rto", name="rto")
    if not report.rto_met:
        failures += 1
        ET.SubElement(case, "failure", message=f"RTO {report.rto_s:.0f} s over target {report.rto_target_s} s")
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _iso_time(epoch: float) -> str:
    """JUnit's timestamp: ISO 8601 without a zone (UTC)."""
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def prometheus_label(value: str) -> str:
    """A Prometheus label value, escaped as the text format wants (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")



# Drills that rebuild this cluster's own path (a test cluster through pulumi up, or the drill hosts); a
# sandbox drill rehearses dr on stand-ins on this machine and proves nothing about the cluster's rebuild.
PROVING_KINDS: tuple[str, ...] = ("stack", "hosts")


def step_counts(report: DrillReport) -> dict[str, int]:
    counts: dict[str, int] = {}
    for step in report.steps:
        counts[step.state] = counts.get(step.state, 0) + 1
    return counts


def verdict(report: DrillReport) -> str:
    """One line that says what kind of drill it was and how much of it ran for real."""
    counts = step_counts(report)
    rest = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if state not in ("succeeded", "applied"))
    line = (f"{report.kind} drill {report.run_id}: {'PASSED' if report.success else 'FAILED'}; "
            f"{report.ran_for_real} of {len(report.steps)} steps ran for real{f' ({rest})' if rest else ''}")
    if report.kind not in PROVING_KINDS:
        line += ("; a sandbox drill rehearses dr on stand-ins here, it is not a drill of this cluster's rebuild "
                 "(dr audit does not count it)")
    return line


def to_prometheus(report: DrillReport) -> str:
    # `kind` on every series: an alert on drill staleness must not be satisfied by a sandbox drill.
    cluster = f'{prometheus_label(report.cluster)}",kind="{prometheus_label(report.kind)}'
    lines = ["# HELP dr_drill_success 1 when the last drill passed every step, check and target.",
             "# TYPE dr_drill_success gauge",
             f'dr_drill_success{{cluster="{cluster}"}} {1 if report.success else 0}',
             "# HELP dr_drill_steps Steps of the last drill by what happened to them (ran for real: succeeded, "
             "applied).",
             "# TYPE dr_drill_steps gauge",
             *(f'dr_drill_steps{{cluster="{cluster}",state="{prometheus_label(state)}"}} {n}'
               for state, n in sorted(step_counts(report).items())),
             "# HELP dr_drill_rto_seconds Disaster to verified, measured by the last drill.",
             "# TYPE dr_drill_rto_seconds gauge",
             f'dr_drill_rto_seconds{{cluster="{cluster}"}} {report.rto_s:.3f}',
             "# HELP dr_drill_rpo_seconds Data lost per backup: disaster time minus the newest restored record.",
             "# TYPE dr_drill_rpo_seconds gauge"]
    for r in report.rpo:
        if r.measured_s is not None:
            backup = prometheus_label(r.backup)
            lines.append(f'dr_drill_rpo_seconds{{cluster="{cluster}",backup="{backup}"}} {r.measured_s:.3f}')
    lines += ["# HELP dr_drill_step_seconds Duration of each step in the last drill.",
              "# TYPE dr_drill_step_seconds gauge"]
    lines += [f'dr_drill_step_seconds{{cluster="{cluster}",step="{prometheus_label(s.name)}"}} {s.duration_s:.3f}'
              for s in report.steps]
    lines += ["# HELP dr_drill_last_run_timestamp_seconds When the last drill finished.",
              "# TYPE dr_drill_last_run_timestamp_seconds gauge",
              f'dr_drill_last_run_timestamp_seconds{{cluster="{cluster}"}} {report.verified_at:.0f}']
    return "\n".join(lines) + "\n"


def to_json_text(report: DrillReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"
