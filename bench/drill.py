"""Benchmark: the sandbox drill's scheduling, measured in one run.

1. The rebuild's makespan (first step started to last step finished) against the critical path of
   the measured step durations (target: at most 1.15 times): how close the executor gets to the
   best any scheduler could do with these steps. Every Kubernetes-level step is a real `pulumi up`
   through the pulumi-kubernetes provider (the engine-backed drill), so this is measured under the
   real engine;
2. the same drill with `--concurrency 1`: the executor runs one step at a time (the Kubernetes layer's
   one `pulumi up` still runs independent Kubernetes-level steps side by side);
3. the executor's own overhead per step: 300 steps that do nothing, in a chain and fanned out.

    .venv/bin/python bench/drill.py [--quick]

Needs `make system` and `make toolchain`; about ten minutes here. `--quick` (what `make test` runs, so
the benchmark cannot rot) measures only the executor's overhead over 30 steps.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from dr.core.plan import plan_for
from dr.drill.executor import Journal, Task, execute
from dr.drill.run import DrillPaths, sandbox_drill
from dr.graph_file import load_graph_file

GRAPH = Path(__file__).resolve().parent.parent / "stacks" / "cluster.yaml"


def read(path: Path) -> str:
    return path.read_text()


def rebuild_timing(state_dir: Path, run_id: str) -> tuple[float, dict[str, tuple[float, float]]]:
    with sqlite3.connect(state_dir / "journal.sqlite") as db:
        rows = db.execute("SELECT name, started, finished, state FROM steps WHERE run_id = ?", (run_id,)).fetchall()
    spans = {name: (started, finished) for name, started, finished, state in rows
             if state == "succeeded" and started and finished}
    makespan = max(f for _, f in spans.values()) - min(s for s, _ in spans.values())
    return makespan, spans


def critical_path(durations: dict[str, float]) -> float:
    plan = plan_for(load_graph_file(GRAPH), mode="drill", read_text=read)
    finish: dict[str, float] = {}
    for step in plan.steps:  # plan order is topological
        finish[step.name] = durations.get(step.name, 0.0) + max((finish[d] for d in step.depends_on), default=0.0)
    return max(finish.values())


def drill(concurrency: int) -> tuple[float, dict[str, tuple[float, float]]]:
    with tempfile.TemporaryDirectory(prefix="dr-bench-drill-") as tmp:
        report, _ = sandbox_drill(load_graph_file(GRAPH), paths=DrillPaths(Path(tmp)), read_text=read,
                                  concurrency=concurrency, say=lambda line: None)
        assert report.success, [s for s in report.steps if s.state == "failed"]
        return rebuild_timing(Path(tmp), report.run_id)


def executor_overhead(count: int = 300) -> float:
    with tempfile.TemporaryDirectory(prefix="dr-bench-exec-") as tmp:
        def nothing(attempt: int) -> dict[str, int]:
            return {}

        chain = [Task(f"c{i}", (f"c{i - 1}",) if i else (), nothing) for i in range(count // 2)]
        fan = [Task(f"f{i}", ("c0",), nothing) for i in range(count - count // 2)]
        start = time.perf_counter()
        execute([*chain, *fan], journal=Journal(Path(tmp) / "j.sqlite", "bench"), concurrency=4)
        return (time.perf_counter() - start) / count


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the executor's overhead, over 30 steps")
    if parser.parse_args().quick:
        print(f"executor overhead: {executor_overhead(30) * 1000:.1f} ms per step over 30 no-op steps")
        return
    makespan, spans = drill(concurrency=4)
    durations = {name: finished - started for name, (started, finished) in spans.items()}
    path = critical_path(durations)
    print(f"sandbox rebuild, concurrency 4: makespan {makespan:.1f} s; critical path of the measured step "
          f"durations {path:.1f} s; ratio {makespan / path:.2f} (target at most 1.15)")
    sequential, _ = drill(concurrency=1)
    print(f"same drill one step at a time: makespan {sequential:.1f} s; concurrency 4 takes "
          f"{makespan / sequential:.2f} of that (sum of the concurrent run's step durations: "
          f"{sum(durations.values()):.1f} s)")
    overhead = executor_overhead()
    print(f"executor overhead: {overhead * 1000:.1f} ms per step over 300 no-op steps (target under 50 ms)")


if __name__ == "__main__":
    main()
