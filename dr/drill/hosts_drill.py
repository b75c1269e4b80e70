"""A drill of the host-level steps on the graph's drill hosts: `dr drill --hosts`.

Every playbook and host-level restore of the drill-mode plan runs, over SSH, on the drill inventory
(`drill_hosts`), in dependency order through the journaled executor, so `--resume` continues after a
crash or a lost host without rerunning finished steps. Before the first step the identity guard
(`dr.hosts.identity`) refuses the drill, exit 2, if any drill host it would use is a production host.
Kubernetes-level steps are "not-run" here (they need the drill cluster: `dr drill --stack`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dr import reaper
from dr.core.drill_report import DrillReport
from dr.core.invocations import hosts_inventory, target_hosts
from dr.core.spec import GraphSpec
from dr.core.steps import NOT_RUN_IN_DRILLS, ON_HOSTS, step_inputs
from dr.drill.clock import Moment, elapsed
from dr.drill.executor import Journal, StepState, Task, execute
from dr.drill.run import DrillPaths, ProgressSink, new_run_id, planned, publish, step_results
from dr.hosts.ansible import stop_all_workers
from dr.hosts.host_steps import run_step
from dr.hosts.identity import check_drill_hosts
from dr.owned_paths import read_run_id, write_owned

StepRunner = Callable[..., dict[str, Any]]


def host_drill(spec: GraphSpec, *, paths: DrillPaths, read_text: Callable[[Path], str],
               secrets: Mapping[str, str], resume: bool = False, concurrency: int = 4,
               progress: ProgressSink | None = None, say: Callable[[str], None] = print,
               guard: Callable[..., None] = check_drill_hosts,
               runner: StepRunner = run_step) -> tuple[DrillReport, dict[str, Path]]:
    plan, resources = planned(spec, read_text)
    assert plan.graph is not None
    drill_spec = plan.graph.spec
    hosts = hosts_inventory(drill_spec)
    host_children = {c.name: next((ch for ch in c.children if ch.kind in ON_HOSTS), None)
                     for c in resources.components}
    used = {h for child in host_children.values() if child is not None
            for h in target_hosts(hosts, list(child.inputs.get("hosts", ["all"])))}
    guard(drill_spec, hosts_used=used)

    current = paths.state_dir / "current-host-drill"
    run_id = (read_run_id(current) or "") if resume else ""
    if resume and not run_id:
        say("nothing to resume: no host drill was interrupted; starting a new one")
    if not run_id:
        run_id = new_run_id()
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        write_owned(current, run_id)
    else:
        say(f"resuming host drill {run_id}")
    journal = Journal(paths.journal, run_id)
    interrupted = {name for name, record in journal.load().items() if record.state == StepState.RUNNING}

    steps = {s.name: s for s in plan.steps}

    def task_for(name: str, depends_on: tuple[str, ...]) -> Task:
        child = host_children.get(name)
        component = next(c for c in resources.components if c.name == name)
        if child is None:
            if not component.children:
                return Task(name, depends_on, lambda attempt: {})
            local = next((c.kind for c in component.children if c.kind in NOT_RUN_IN_DRILLS), None)
            return Task(name, depends_on, lambda attempt: {}, kind="not-run",
                        reason=NOT_RUN_IN_DRILLS[local] if local else
                        "a Kubernetes-level step: it needs the drill cluster (dr drill --stack)")

        def run(attempt: int) -> Mapping[str, Any]:
            # A rerun after a failed or interrupted attempt moves what that attempt left aside.
            force = True if attempt > 1 or name in interrupted else None
            return runner(step_inputs(child), hosts=hosts, secrets=secrets, force=force)
        return Task(name, depends_on, run, timeout_s=steps[name].timeout_s,
                    timeout_reason=steps[name].timeout_reason)

    start = Moment.now()
    try:
        records = execute([task_for(s.name, s.depends_on) for s in plan.steps], journal=journal,
                          concurrency=concurrency, retries=1, backoff_s=1.0, on_event=progress)
        done = Moment.now()
        report = DrillReport(run_id=run_id, cluster=spec.cluster, kind="hosts", started_at=start.wall,
                             disaster_at=start.wall, verified_at=done.wall,
                             rto_target_s=spec.rto_s or plan.predicted_rto_s,
                             steps=step_results(plan, records, journal), checks=(), rpo=(),
                             rto_measured_s=round(elapsed(start, done), 3))
        files = publish(report, paths, say)
        if report.success or not any(r.state in (StepState.FAILED, StepState.SKIPPED) for r in records.values()):
            current.unlink(missing_ok=True)
        return report, files
    finally:
        stop_all_workers()
        token = reaper.current_token()
        if token:  # what escaped its process group (ansible's setsid workers, daemons): nothing outlives the drill
            reaper.sweep(token)
        journal.close()
