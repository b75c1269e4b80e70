"""Benchmark: `dr import flux` on generated repositories in the style of current homelabs.

Each app is a Flux Kustomization in its own namespace (a kustomization.yaml `namespace:`) whose app
directory includes one shared kustomize Component with kopiur backup objects, filled per app by
`postBuild.substitute` — the pattern that made 146 per-app backups invisible before. Each size runs
in a fresh interpreter (best of --repeat): the whole import (read the files, follow the cluster,
infer, render, and run every rule plan, docs and preview run on the result) against reading the files
alone, with the peak memory of the import. Ratios are measured in this one run.

    .venv/bin/python bench/gitops_import.py [--apps 50 150 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

COMPONENT = """\
apiVersion: kopiur.home-operations.com/v1alpha1
kind: SnapshotPolicy
metadata: {name: "${APP}"}
spec:
  repository: {kind: ClusterRepository, name: nas}
  sources: [{pvc: {name: "${APP}"}}]
  retention: {keepDaily: 7}
---
apiVersion: kopiur.home-operations.com/v1alpha1
kind: SnapshotSchedule
metadata: {name: "${APP}"}
spec: {policyRef: {name: "${APP}"}, schedule: {cron: "0 */6 * * *"}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: "${APP}"}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 5Gi}}
  dataSourceRef: {apiGroup: kopiur.home-operations.com, kind: Restore, name: "${APP}"}
"""


def generate(root: Path, apps: int) -> None:
    def write(path: str, text: str) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)

    write("clusters/main/flux-system/sync.yaml",
          "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
          "metadata: {name: flux-system, namespace: flux-system}\nspec: {path: ./clusters/main}\n---\n"
          "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
          "metadata: {name: apps, namespace: flux-system}\nspec: {path: ./apps}\n")
    write("components/kopiur/kustomization.yaml",
          "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [./objects.yaml]\n")
    write("components/kopiur/objects.yaml", COMPONENT)
    write("apps/backup/kopiur/app/helmrelease.yaml",
          "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: kopiur}\n"
          "spec: {chart: {spec: {chart: kopiur, version: 0.1.0, sourceRef: {kind: HelmRepository, name: x}}}}\n")
    write("apps/backup/kopiur/ks.yaml", "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
          "metadata: {name: kopiur}\nspec: {path: ./apps/backup/kopiur/app, targetNamespace: backup}\n")
    top = ["./backup/kopiur/ks.yaml"]
    for i in range(apps):
        app = f"app{i}"
        top.append(f"./{app}/ks.yaml")
        write(f"apps/{app}/ks.yaml",
              "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
              f"metadata: {{name: {app}, namespace: ns{i}}}\n"
              f"spec: {{path: ./apps/{app}/app, targetNamespace: ns{i}, dependsOn: [{{name: kopiur, namespace: "
              f"flux-system}}], postBuild: {{substitute: {{APP: {app}}}}}}}\n")
        write(f"apps/{app}/app/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\n"
              "kind: Kustomization\nresources: [./release.yaml]\ncomponents: [../../../components/kopiur]\n")
        write(f"apps/{app}/app/release.yaml",
              f"apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {{name: {app}}}\n"
              "spec: {chart: {spec: {chart: app-template, version: 3.5.1, sourceRef: {kind: HelmRepository, "
              "name: x}}}}\n")
    write("apps/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
          f"resources: [{', '.join(top)}]\n")


CHILD = """
import resource, sys, time
from pathlib import Path
root, what = Path(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
if what == "read":
    from dr.gitops_import.repository import read_repository
    read_repository(root)
else:
    from dr.gitops_import.checks import refusals
    from dr.gitops_import.command import read_draft
    from dr.gitops_import.write import render
    from dr.graph_file import read_text
    draft = read_draft("flux", root, None)
    refused, _, _ = refusals(render(draft, source=str(root)), where=str(root / "g.yaml"), read_text=read_text)
    assert not [r for r in refused if "kopiur" in r], refused
    print(len(draft.backups), file=sys.stderr)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def timed(root: Path, what: str, repeat: int) -> tuple[float, float, str]:
    best, memory, err = float("inf"), 0.0, ""
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", CHILD, str(root), what], capture_output=True, text=True,
                              check=True)
        seconds, peak = (float(x) for x in done.stdout.split())
        best, memory, err = min(best, seconds), max(memory, peak), done.stderr.strip().splitlines()[-1:]
    return best, memory, (err[0] if err else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, nargs="+", default=[50, 150, 300])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'apps':>6} {'read files':>11} {'whole import':>13} {'ratio':>6} {'ms/app':>7} {'peak MiB':>9} "
          f"{'backups':>8}")
    for apps in args.apps:
        with tempfile.TemporaryDirectory() as directory:
            root = Path(directory)
            generate(root, apps)
            read_s, _, _ = timed(root, "read", args.repeat)
            import_s, peak, backups = timed(root, "import", args.repeat)
            print(f"{apps:>6} {read_s:>10.2f}s {import_s:>12.2f}s {import_s / read_s:>6.1f} "
                  f"{1000 * import_s / apps:>7.1f} {peak:>9.0f} {backups:>8}")


if __name__ == "__main__":
    main()
