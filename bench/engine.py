"""Benchmark: the Kubernetes layer through the real Pulumi engine and pulumi-kubernetes provider.

Synthetic recovery graphs of growing size (each component one manifest object, a ConfigMap, depending on
one component of the previous rank) go through `pulumi up` (dr's program registration, Automation API,
file backend) into one sandbox cluster: how wall time grows with the component count, and with the graph's
width at a fixed count. Printed as seconds and ratios measured in this one run.

    .venv/bin/python bench/engine.py [--sizes 25 50 100 200] [--widths 5 50]

Needs `make toolchain` (engine, provider, control plane); about five minutes at the default sizes.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--widths", type=int, nargs="+", default=[5, 50])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dr-bench-engine-") as tmp:
        root = Path(tmp)
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
                    print(f"width {width:>3}, {count:>4} components ({count // width} ranks): pulumi up "
                          f"{seconds:6.1f} s  ({seconds / count * 1000:.0f} ms per component)", flush=True)
                for (small, t_small), (large, t_large) in itertools.pairwise(results):
                    print(f"  {large}/{small} components at width {width}: time ratio {t_large / t_small:.2f} "
                          f"(size ratio {large / small:.1f})")
        finally:
            cluster.down()


if __name__ == "__main__":
    main()
