"""Benchmark: the Kubernetes layer through the real Pulumi engine and pulumi-kubernetes provider.

1. dr's overhead: the example graph's Kubernetes layer applied the way the sandbox drill does it (dr's
   executor runs every step, the host-level ones here as no-ops, and the Kubernetes-level ones wait for
   their component in the layer's one `pulumi up`, whose components wait on gates for the host-level
   steps) against one bare `pulumi up` of the same resources, each into a fresh sandbox cluster
   (target: dr at most 10% slower).
2. Synthetic recovery graphs of growing size (each component one manifest object, a ConfigMap, depending on
one component of the previous rank) go through `pulumi up` (dr's program registration, Automation API,
file backend) into one sandbox cluster: how wall time grows with the component count, and with the graph's
width at a fixed count. Printed as seconds and ratios measured in this one run.

    .venv/bin/python bench/engine.py [--sizes 25 50 100 200] [--widths 5 50] [--skip-example]

Needs `make toolchain` (engine, provider, control plane); about five minutes at the default sizes.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pulumi

from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.core.spec import GraphSpec
from dr.kube.sandbox_cluster import SandboxCluster
from dr.stack.engine import Engine
from dr.stack.program import register


def graph(count: int, width: int, directory: Path, tag: str) -> GraphSpec:
    lines = [f"cluster: bench{tag}", 'kubernetes: "1.30"', "components:"]
    for i in range(count):
        rank, previous = i // width, (i // width - 1) * width + i % width
        (directory / f"cm{i}.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: default}}\ndata: {{i: '{i}'}}\n")
        deps = f"[c{previous}]" if rank else "[]"
        lines.append(f"  c{i}: {{layer: addon, depends_on: {deps}, manifests: cm{i}.yaml, estimate: 1s}}")
    path = directory / "graph.yaml"
    path.write_text("\n".join(lines) + "\n")
    return GraphSpec.from_yaml(path.read_text(), path=str(path))


def up_seconds(engine: Engine, cluster: SandboxCluster, spec: GraphSpec, stack: str) -> float:
    def read(p: Path) -> str:
        return Path(p).read_text()

    plan = plan_for(spec, read_text=read)
    resources = resource_plan(plan, spec, read_text=read)
    kubeconfig = cluster.kubeconfig.read_text()

    def program() -> None:
        register(resources, hosts={}, secrets={}, kubeconfig=pulumi.Output.secret(kubeconfig))

    handle = engine.stack(project="bench", stack=stack, program=program)
    start = time.perf_counter()
    result = handle.up(on_output=lambda line: None, color="never", parallel=16)
    elapsed = time.perf_counter() - start
    assert result.summary.result == "succeeded"
    handle.destroy(on_output=lambda line: None, color="never", parallel=16)
    return elapsed


def example_layer(root: Path, rounds: int = 4) -> tuple[float, float]:
    """(dr's executor and Kubernetes layer, one bare up) for the example's Kubernetes layer, in seconds: the
    median of `rounds` alternating runs of each. Single runs of either vary by up to 2x here (a stall of
    about 15 s, in the stand-in operators and the provider's waits, hits some runs of both), so one run
    of each says nothing."""
    from dr.charts.sandbox import sandbox_mirror
    from dr.core.charts import chart_pins
    from dr.drill.executor import Journal, Task, execute
    from dr.drill.kube_layer import KubeLayer, is_kube_step, layer_plan
    from dr.drill.standin_operators import StandInOperators
    from dr.graph_file import load_graph_file
    from dr.stack.program import load_resources

    example = Path(__file__).resolve().parent.parent / "stacks" / "cluster.yaml"
    _, resources = load_resources(graph_path=str(example), mode="drill")
    layer = layer_plan(resources)
    credentials: dict[str, Any] = {"gitea/gitea-db-s3": {"ACCESS_KEY_ID": "k", "ACCESS_SECRET_KEY": "s"}}
    timings: dict[str, list[float]] = {"dr": [], "bare": []}
    with sandbox_mirror(chart_pins(load_graph_file(example)), root) as mirror:
        for index, way in enumerate(("bare", "dr") * rounds):
            cluster = SandboxCluster(root / f"cluster-{way}-{index}")
            cluster.up()
            operators = StandInOperators.for_plan(layer, cluster.kubectl)
            operators.start()
            try:
                kubeconfig = cluster.kubeconfig.read_text()
                start = time.perf_counter()
                if way == "dr":
                    runner = KubeLayer(root=root / f"{way}-{index}", resources=resources,
                                       kubeconfig=lambda k=kubeconfig: k,
                                       chart_mirror=mirror, secrets=credentials, operators=operators)

                    tasks = [Task(c.name, c.depends_on,
                                  (lambda attempt, n=c.name, r=runner: r.apply(n)) if is_kube_step(c) else
                                  (lambda attempt: {})) for c in resources.components]
                    try:
                        records = execute(tasks, journal=Journal(root / f"journal-{index}.sqlite", "bench"),
                                          concurrency=4,
                                          on_event=runner.gates.observe)
                    finally:
                        runner.close()
                    assert all(r.state.value == "succeeded" for r in records.values()), records
                    assert runner.runs == 1, runner.runs
                else:
                    def program(kubeconfig: str = kubeconfig) -> None:
                        register(layer, hosts={}, secrets=pulumi.Output.secret(credentials),
                                 kubeconfig=pulumi.Output.secret(kubeconfig), chart_mirror=mirror)

                    stack = Engine.at(root / f"{way}-{index}").stack(project="bare", stack="layer", program=program)
                    assert stack.up(on_output=lambda line: None, color="never",
                                    parallel=16).summary.result == "succeeded"
                timings[way].append(time.perf_counter() - start)
            finally:
                operators.stop()
                cluster.down()
    for way, values in timings.items():
        print(f"  {way}: " + ", ".join(f"{v:.1f} s" for v in values), flush=True)
    return statistics.median(timings["dr"]), statistics.median(timings["bare"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--widths", type=int, nargs="+", default=[5, 50])
    parser.add_argument("--skip-example", action="store_true", help="skip the example's dr-against-bare comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dr-bench-engine-") as tmp:
        root = Path(tmp)
        if not args.skip_example:
            ours, bare = example_layer(root / "example")
            print(f"example Kubernetes layer, median: dr (executor and the layer's one up) {ours:.1f} s; "
                  f"one bare pulumi up {bare:.1f} s; dr's overhead {ours / bare - 1:+.0%} (target at most +10%)",
                  flush=True)
        cluster = SandboxCluster(root / "cluster")
        cluster.up()
        try:
            engine = Engine.at(root / "engine")
            print(engine.describe(), flush=True)
            for width in args.widths:
                results = []
                for count in args.sizes:
                    work = root / f"g{count}w{width}"
                    work.mkdir()
                    seconds = up_seconds(engine, cluster, graph(count, width, work, f"{count}w{width}"),
                                         f"n{count}-w{width}")
                    results.append((count, seconds))
                    print(f"width {width:>3}, {count:>4} components ({-(-count // width)} ranks): pulumi up "
                          f"{seconds:6.1f} s  ({seconds / count * 1000:.0f} ms per component)", flush=True)
                for (small, t_small), (large, t_large) in itertools.pairwise(results):
                    print(f"  {large}/{small} components at width {width}: time ratio {t_large / t_small:.2f} "
                          f"(size ratio {large / small:.1f})")
        finally:
            cluster.down()


if __name__ == "__main__":
    main()
