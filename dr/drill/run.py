"""DR drills: the sandbox drill on this machine, and drills on a real test cluster.

`sandbox_drill` builds production here, takes backups, destroys it, rebuilds through the local
executor (journaled, so `--resume` continues after a crash), verifies, and reports RTO and RPO.
`stack_drill` runs `up` on the drill stack through the Pulumi Automation API, verifies, and
destroys it unless asked to keep it; the stack and the checks are injected, so the boundary is
tested without a cluster. Both write their reports and add to the history.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dr import reaper
from dr.core.drill_report import (
    CheckResult,
    DrillReport,
    RpoResult,
    StepResult,
    to_json_text,
    to_junit,
    to_markdown,
    to_prometheus,
)
from dr.core.plan import Plan, plan_for
from dr.core.resources import ResourcePlan, resource_plan
from dr.core.spec import GraphSpec
from dr.drill.clock import Moment, elapsed
from dr.drill.executor import Journal, StepRecord, StepState, execute
from dr.drill.history import record_drill
from dr.errors import DrError
from dr.hosts.ansible import stop_all_workers
from dr.owned_paths import check_run_id, owned_path, read_run_id, remove_owned_tree, write_owned
from dr.shutdown import run_every

if TYPE_CHECKING:
    from dr.drill.scenarios import Scenario

ProgressSink = Callable[[StepRecord], None]


@dataclass(frozen=True)
class DrillPaths:
    state_dir: Path

    @property
    def journal(self) -> Path:
        return self.state_dir / "journal.sqlite"

    @property
    def history(self) -> Path:
        return self.state_dir / "history.sqlite"

    @property
    def current(self) -> Path:
        return self.state_dir / "current-drill"

    def sandbox(self, run_id: str) -> Path:
        return owned_path(self.state_dir, "drills", check_run_id(run_id))

    def reports(self, run_id: str) -> Path:
        return owned_path(self.state_dir, "reports", check_run_id(run_id))


def planned(spec: GraphSpec, read_text: Callable[[Path], str]) -> tuple[Plan, ResourcePlan]:
    plan = plan_for(spec, mode="drill", read_text=read_text)
    assert plan.graph is not None
    return plan, resource_plan(plan, plan.graph.spec, read_text=read_text)


def new_run_id() -> str:
    """A drill's id: when it started, in UTC (also its directory's name)."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def publish(report: DrillReport, paths: DrillPaths, say: Callable[[str], None]) -> dict[str, Path]:
    """Every drill ends the same way: its reports written beside the others, then added to the history."""
    files = write_reports(report, paths.reports(report.run_id))
    record_drill(paths.history, report, say)
    return files


def write_reports(report: DrillReport, directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    from dr.drill.report_html import report_html

    files = {"markdown": directory / "report.md", "json": directory / "report.json",
             "junit": directory / "junit.xml", "prometheus": directory / "dr_drill.prom",
             "html": directory / "report.html"}
    write_owned(files["markdown"], to_markdown(report))
    write_owned(files["html"], report_html(report))
    write_owned(files["json"], to_json_text(report))
    write_owned(files["junit"], to_junit(report))
    write_owned(files["prometheus"], to_prometheus(report))
    return files


def step_results(plan: Plan, records: Mapping[str, StepRecord], journal: Journal | None = None
                  ) -> tuple[StepResult, ...]:
    results = []
    for s in plan.steps:
        record = records[s.name]
        detail = record.error
        earlier = journal.attempt_errors(s.name) if journal is not None else []
        if record.state == StepState.SUCCEEDED and earlier:
            detail = f"succeeded after {len(earlier)} failed attempt(s); first: {earlier[0]}"
        state = record.state.value
        started, finished = record.started, record.finished
        outputs = record.outputs or {}
        if record.state == StepState.SUCCEEDED and outputs.get("engine"):
            # Run by the Pulumi engine on a real API server. A restore object there is applied (created,
            # accepted, awaited) but no operator moved data: never "restored".
            if s.action == "restore":
                state = "applied"
            notes = [f"{outputs.get('resources', 0)} resources by {outputs['engine']} in "
                     f"{outputs.get('engine_s', 0)} s", *outputs.get("stand_in", [])]
            detail = "; ".join(n for n in (detail, *notes) if n)
            started = outputs.get("first_start") or started
            finished = outputs.get("last_done") or finished
        elif record.state == StepState.SUCCEEDED and outputs.get("stand_in"):
            detail = "; ".join(n for n in (detail, *outputs["stand_in"]) if n)
        results.append(StepResult(name=s.name, layer=s.layer, state=state, attempts=record.attempts,
                                  duration_s=round(record.duration_s, 3), detail=detail, started_at=started,
                                  finished_at=finished, on_critical_path=s.on_critical_path,
                                  depends_on=s.depends_on))
    return tuple(results)


def _run_to_continue(pointed: str | None, *, resume: bool, paths: DrillPaths, say: Callable[[str], None],
                     abandon: Callable[[str], None]) -> str:
    """The run id a `--resume` continues, or "" for a new drill; an interrupted drill that is not continued
    has what it left running stopped (`abandon`) first."""
    if pointed is None:
        if resume:
            say("nothing to resume: no sandbox drill was interrupted; starting a new drill")
        return ""
    if not resume:
        # A drill that crashed earlier may have left etcd members and PostgreSQL running: stop them
        # before this one starts beside them.
        say(f"an interrupted drill {pointed} was found; stopping what it left running and starting a new drill "
            "(use --resume to continue it instead)")
        abandon(pointed)
        paths.current.unlink(missing_ok=True)
        return ""
    with Journal(paths.journal, pointed) as journal:
        cleaned, disaster = journal.phase("cleaned"), journal.phase("disaster")
    if cleaned is not None:
        say(f"drill {pointed} was stopped and cleaned up after itself (its backups and sandbox are gone), so it "
            "cannot be resumed; starting a new drill")
        paths.current.unlink(missing_ok=True)
        return ""
    if not disaster:
        say(f"drill {pointed} stopped before its disaster; starting a new drill")
        abandon(pointed)
        return ""
    say(f"resuming drill {pointed}")
    return pointed


def sandbox_drill(spec: GraphSpec, *, paths: DrillPaths, read_text: Callable[[Path], str], resume: bool = False,
                  concurrency: int = 4, progress: ProgressSink | None = None,
                  say: Callable[[str], None] = print, scenario: Scenario | None = None
                  ) -> tuple[DrillReport, dict[str, Path]]:
    """Run (or resume) the sandbox drill; returns the report and where it was written. With a scenario
    (`dr.drill.scenarios`), its incident is the disaster and its checks join the report."""
    from dr.drill.sandbox import Sandbox

    plan, resources = planned(spec, read_text)
    from dr.kube.toolchain import CONTROL_PLANE, ENGINE, KUBERNETES_PROVIDER, Toolchain

    pointed = read_run_id(paths.current)  # checked: it names a directory this run may delete
    missing = Toolchain.find().missing((*CONTROL_PLANE, *ENGINE, *KUBERNETES_PROVIDER))
    if missing:  # before production is built: not after minutes of host restores
        raise DrError(f"the sandbox drill needs {', '.join(missing)} (the control plane, the Pulumi engine and "
                      "the Kubernetes provider): run `make toolchain`, which `make demo` does")
    run_id = _run_to_continue(pointed, resume=resume, paths=paths, say=say,
                              abandon=lambda run: _abandon(spec, plan, resources, paths, run))
    if not run_id:
        run_id = new_run_id()
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        write_owned(paths.current, run_id)
    journal = Journal(paths.journal, run_id)
    sandbox = Sandbox(paths.sandbox(run_id), plan, spec, resources)
    sandbox.say = say
    sandbox.resumed = bool(journal.phase("disaster"))
    started = time.time()
    finished = interrupted = False
    try:
        if not journal.phase("disaster"):
            _production_and_disaster(sandbox, journal, scenario, say)
        else:
            started = float((journal.phase("disaster") or {}).get("at", started))
        for record in journal.load().values():  # a resumed run: what finished before the crash
            sandbox.step_finished(record)

        def on_event(record: StepRecord) -> None:
            sandbox.step_finished(record)
            if progress is not None:
                progress(record)

        # Each step's own timeout, from its estimate (`dr.core.durations.step_timeout_s`).
        records = execute(sandbox.tasks(), journal=journal, concurrency=concurrency, retries=2, backoff_s=1.0,
                          on_event=on_event)
        fingerprint_at_disaster = (journal.phase("disaster") or {}).get("backups", {})
        outcome = scenario.after_rebuild(sandbox, records) if scenario is not None else None
        checks = (*_sandbox_checks(plan, records, sandbox),
                  _backups_untouched(fingerprint_at_disaster, sandbox.backup_fingerprint()),
                  *(scenario.checks if scenario is not None else ()))
        newest = sandbox.newest_restored()
        verified = Moment.now()
        verified_at = verified.wall
        rto_measured = elapsed(Moment.from_json(journal.phase("disaster") or {}), verified)
        rpo = tuple(RpoResult(backup=name, measured_s=(None if name not in newest else
                                                       round(max(0.0, sandbox.state.disaster_at - newest[name]), 3)),
                              target_s=spec.backups[name].rpo_s)
                    for name in sorted({str(inputs["backup"]) for tool in ("etcd-snapshot", "restic", "pgbackrest")
                                        for _, inputs in sandbox.host_restores(tool)} - set(sandbox.declared_unusable)))
        report = DrillReport(run_id=run_id, cluster=spec.cluster, kind="sandbox", started_at=started,
                             disaster_at=sandbox.state.disaster_at, verified_at=verified_at,
                             rto_target_s=spec.rto_s or plan.predicted_rto_s,
                             steps=step_results(plan, records, journal),
                             checks=checks, rpo=rpo, rto_measured_s=round(rto_measured, 3),
                             scenarios=(outcome,) if outcome is not None else ())
        files = publish(report, paths, say)
        journal.phase_done("report", {"success": report.success})
        finished = True
        return report, files
    except BaseException:
        interrupted = True
        raise
    finally:
        _stop_everything(sandbox, scenario, interrupted=interrupted)
        if not finished:
            journal.phase_done("cleaned", {"at": time.time()})  # what a resume needs is gone: say so
        journal.close()
        if finished:
            # Only after the cleanup: a crash during it leaves the pointer, so the next run finds and
            # stops what is left instead of leaking it.
            paths.current.unlink(missing_ok=True)


def _stop_everything(sandbox: Any, scenario: Scenario | None, *, interrupted: bool) -> None:
    """Every stage runs, whatever stops one of them (`dr.shutdown.run_every`)."""
    token = reaper.current_token()
    run_every((
        stop_all_workers,  # an interrupted step must not go on starting services behind the cleanup
        scenario.cleanup if scenario is not None else None,
        # and not what escaped its process group (setsid, daemons)
        (lambda: reaper.sweep(token)) if token and interrupted else None,
        sandbox.cleanup,
        (lambda: reaper.sweep(token)) if token else None,  # whatever the cleanup did not stop
    ))


def _production_and_disaster(sandbox: Any, journal: Journal, scenario: Scenario | None,
                             say: Callable[[str], None]) -> None:
    """Build production, back it up, (replay the scenario's incident,) destroy it; journalled."""
    from dr.kube.toolchain import Toolchain
    from dr.stack.engine import describe

    if scenario is not None:
        scenario.prepare(sandbox)
    say("building a small production on this machine: etcd, PostgreSQL with a workload, restic volumes")
    sandbox.build_production()
    say("taking real backups")
    sandbox.take_backups()
    if scenario is not None:
        say(f"scenario {scenario.name}: {scenario.incident}")
        scenario.before_disaster(sandbox)
        say(f"scenario {scenario.name}: the incident, on the sandbox's production")
        scenario.disaster(sandbox)
    disaster_at = sandbox.disaster(at=scenario.struck_at if scenario is not None else None)
    journal.phase_done("disaster", {**Moment.now().to_json(), "at": disaster_at,
                                    "backups": sandbox.backup_fingerprint()})
    say("disaster: production destroyed; rebuilding from the graph (host steps through Ansible, the "
        f"Kubernetes layer through pulumi up: {describe(Toolchain.find())})")


def _abandon(spec: GraphSpec, plan: Plan, resources: ResourcePlan, paths: DrillPaths, run_id: str) -> None:
    from dr.drill.sandbox import Sandbox

    root = paths.sandbox(run_id)
    if root.exists():
        Sandbox(root, plan, spec, resources).cleanup()
        remove_owned_tree(paths.state_dir, "drills", run_id)


def _backups_untouched(before: Mapping[str, str], after: Mapping[str, str]) -> CheckResult:
    """The production backups after the drill are byte-identical to the ones the disaster left."""
    if not before and not after:
        return CheckResult("production-backups", "read-only", True,
                           "no host-level backup in the graph: no production backup on this machine to keep read-only")
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    detail = (f"{len(before)} files byte-identical" if not changed else
              f"{len(changed)} file(s) written by the drill: " + ", ".join(Path(p).name for p in changed[:5]))
    return CheckResult("production-backups", "read-only", not changed and bool(before), detail)


def _sandbox_checks(plan: Plan, records: Mapping[str, StepRecord], sandbox: Any) -> tuple[CheckResult, ...]:
    results = []
    for step in plan.steps:
        for check in step.component.verify:
            state = records[step.name].state
            if state != StepState.SUCCEEDED:
                if state in (StepState.RENDERED, StepState.NOT_RUN):
                    continue  # nothing was restored here to check; the report lists the step as such
                results.append(CheckResult(step.name, check.kind, False, f"not checked: the step {state.value}"))
                continue
            try:
                ok, detail = sandbox.check(check.kind, dict(check.spec))
            except Exception as exc:  # a check that cannot run is a failed check, with the reason
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            results.append(CheckResult(step.name, check.kind, ok, detail))
    return tuple(results)


# -- drills on a real test cluster -----------------------------------------------------------------

class DrillStack(Protocol):
    """The part of a Pulumi Automation API stack a drill uses."""

    def up(self, on_output: Callable[[str], None]) -> Mapping[str, Any]: ...

    def destroy(self, on_output: Callable[[str], None]) -> None: ...


Verifier = Callable[[Plan, Mapping[str, Any]], list[CheckResult]]


def stack_drill(spec: GraphSpec, *, stack: DrillStack, verify: Verifier, paths: DrillPaths,
                read_text: Callable[[Path], str], keep: bool = False,
                say: Callable[[str], None] = print) -> tuple[DrillReport, dict[str, Path]]:
    """`up` the drill stack, verify, then `destroy` unless `keep`; report like the sandbox drill."""
    plan, _ = planned(spec, read_text)
    run_id = new_run_id()
    start = Moment.now()
    started = start.wall
    step_results: tuple[StepResult, ...] = ()
    checks: list[CheckResult] = []
    try:
        try:
            outputs = stack.up(on_output=lambda line: say(line.rstrip()))
            up_done = Moment.now()
            step_results = tuple(StepResult(s.name, s.layer, "succeeded", 1, 0.0, "applied by pulumi up")
                                 for s in plan.steps)
            checks = verify(plan, outputs)
        except Exception as exc:
            up_done = Moment.now()
            step_results = tuple(StepResult(s.name, s.layer, "failed", 1, 0.0, f"pulumi up failed: {exc}")
                                 for s in plan.steps[:1])
        verified = Moment.now()
    finally:
        if not keep:  # always, even when up or the checks fail or dr is interrupted
            stack.destroy(on_output=lambda line: say(line.rstrip()))
    report = DrillReport(run_id=run_id, cluster=spec.cluster, kind="stack", started_at=started,
                         disaster_at=started, verified_at=(verified if checks else up_done).wall,
                         rto_target_s=spec.rto_s or plan.predicted_rto_s, steps=step_results, checks=tuple(checks),
                         rpo=(), rto_measured_s=round(elapsed(start, verified if checks else up_done), 3))
    return report, publish(report, paths, say)
