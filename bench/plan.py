"""Benchmark: load + validate + plan of generated recovery graphs of growing size.

Generates random layered DAGs (each component depends on 1-3 components of earlier ranks), writes
each as a graph file, and times `load_graph_file` + `RecoveryGraph.build` + `Plan.from_graph`, the
same path `dr plan` takes, each size in a fresh interpreter. Prints the best of several runs per
size and the ratios between sizes, all measured in this one run (absolute times vary from machine
to machine; the ratios less so).

    .venv/bin/python bench/plan.py [--sizes 1000 10000 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import itertools
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dr.cli import plan_graph_file
from dr.core.spec import LAYERS


def generate(count: int, *, seed: int = 7) -> str:
    rng = random.Random(seed)
    ranks = max(10, count // 100)  # ~100 components per rank: wide, like a real cluster's apps
    lines = ["cluster: bench", 'kubernetes: "1.30"', "components:"]
    by_rank: list[list[str]] = [[] for _ in range(ranks)]
    for i in range(count):
        rank = i * ranks // count
        name = f"c{i}"
        earlier = [n for r in range(max(0, rank - 3), rank) for n in by_rank[r]]
        deps = rng.sample(earlier, k=min(len(earlier), rng.randint(1, 3))) if earlier else []
        layer = LAYERS[min(len(LAYERS) - 1, rank * len(LAYERS) // ranks)]
        lines.append(f"  {name}: {{layer: {layer}, depends_on: [{', '.join(deps)}], "
                     f"playbook: os-prepare.yml, estimate: {rng.randint(1, 600)}s}}")
        by_rank[rank].append(name)
    return "\n".join(lines) + "\n"


def measure(path: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        plan = plan_graph_file(path, mode="prod")
        best = min(best, time.perf_counter() - start)
        assert plan.steps
        del plan  # freeing the previous plan is not part of the next measurement
    return best


def measure_in_fresh_interpreter(path: Path, repeat: int) -> float:
    """Each size gets its own interpreter, so no size inherits the heap another one left behind."""
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import plan as bench; "
            "print(bench.measure(Path(sys.argv[2]), int(sys.argv[3])))")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(path), str(repeat)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"graph-{size}.yaml"
            path.write_text(generate(size))
            results.append((size, measure_in_fresh_interpreter(path, args.repeat)))
            print(f"{size:>8} components: {results[-1][1]:8.3f} s  (load + validate + plan, best of {args.repeat})",
                  flush=True)
    print()
    for (small, t_small), (large, t_large) in itertools.pairwise(results):
        print(f"{large:>8} / {small:<8} components: time ratio {t_large / t_small:5.2f}  "
              f"(size ratio {large / small:.0f})")
    by_size = dict(results)
    if 10_000 in by_size:
        verdict = "met" if by_size[10_000] < 1.0 else "NOT met"
        print(f"target 10,000 components under 1 s: {verdict} ({by_size[10_000]:.3f} s)")
    if 10_000 in by_size and 100_000 in by_size:
        ratio = by_size[100_000] / by_size[10_000]
        print(f"target 100,000 at most 12 x 10,000: {'met' if ratio <= 12 else 'NOT met'} ({ratio:.2f} x)")


if __name__ == "__main__":
    main()
