"""The `dr` command line: a thin facade over the plan and its front ends.

Exit codes for every command: 0 done, 1 the operation found a problem, 2 bad input or usage.
Graph errors go to stderr as `path:line: message`, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dr import __version__
from dr.core.modes import MODES
from dr.core.plan import Plan, plan_for
from dr.core.plan_view import render_plan
from dr.core.spec import GraphSpec
from dr.core.yaml_source import paused_gc
from dr.errors import DrError, GraphError, NoAnswer, UnknownComponents, UsageError
from dr.graph_file import load_graph_file, read_text
from dr.user_files import read_user_text, write_atomic

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
DEFAULT_GRAPH = "stacks/cluster.yaml"


def plan_graph_file(path: str | Path, *, mode: str = "prod", only: Sequence[str] = (),
                    estimates: Mapping[str, int] | None = None, spec: GraphSpec | None = None) -> Plan:
    """Load the graph file (unless `spec` is it, already read) and plan it in one pass, without
    garbage-collection pauses between the steps."""
    with paused_gc():
        try:
            return plan_for(spec or load_graph_file(path), mode=mode, only=only, read_text=read_text,
                            estimates=estimates)
        except UnknownComponents as exc:
            raise UsageError(f"--only names {exc}") from None


def _graph_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--graph", default=DEFAULT_GRAPH, metavar="PATH",
                        help=f"the recovery graph YAML (default: {DEFAULT_GRAPH})")
    return parent


def _graph_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, parents=[_graph_option()])
    common.add_argument("--mode", choices=MODES, default="prod",
                        help="prod rebuilds production; drill drops prod_only components, swaps in their "
                             "drill replacements and refuses any production marker (default: prod)")
    return common


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _stop_like_ctrl_c(signum: int, _frame: object) -> None:
    """SIGTERM (a timed-out systemd unit, `kill`) and SIGHUP (a closed terminal) stop dr the way
    Ctrl-C does: the drill's cleanup runs and the journal stays truthful for --resume."""
    import signal

    signal.signal(signum, signal.SIG_IGN)  # a second signal during cleanup must not cut it short
    raise KeyboardInterrupt(signal.Signals(signum).name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dr",
        description="Rebuild a Kubernetes cluster from its recovery graph, in the right order.",
        epilog="Exit codes: 0 done, 1 the operation found a problem, 2 bad input or usage. "
               "See docs/graph-format.md for the graph format.",
    )
    parser.add_argument("--version", action="version", version=f"dr {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _graph_options()

    plan = commands.add_parser(
        "plan", parents=[common], help="validate the graph and print the recovery order",
        description="Validate the recovery graph and print the recovery order: waves (what can run in "
                    "parallel), steps, the critical path and the predicted RTO.")
    plan.add_argument("--only", nargs="+", metavar="NAME", default=[],
                      help="plan only these components and everything they depend on")
    plan.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    plan.add_argument("--state-dir", default=".dr", metavar="DIR",
                      help="drill history to take measured step durations from (default .dr)")
    plan.set_defaults(handler=_cmd_plan, subparser=plan)

    preview = commands.add_parser(
        "preview", help="run the Pulumi program offline and list what it would create",
        description="Run the Pulumi program of a stack offline, under mocks, with the stack file's own config: "
                    "list the resources in dependency order, write every Kubernetes object dr renders as YAML "
                    "and validate it (core kinds against the graph's Kubernetes version, custom resources "
                    "against the real upstream CRDs `make toolchain` fetched from the operators' Go modules, "
                    "DR_CRDS_DIR, the graph's crds:, --crds DIR and, with --kubeconfig, the cluster's own). A custom "
                    "resource whose CRD is in none of them is listed as not validated, per kind. Exit 1 when an "
                    "object does not validate.")
    preview.add_argument("--stack", choices=("prod", "drill"), default="prod",
                         help="the stack file stacks/Pulumi.<stack>.yaml (default: prod)")
    preview.add_argument("--out", metavar="DIR", help="write the Kubernetes objects as YAML under DIR")
    preview.add_argument("--crds", action="append", default=[], metavar="DIR",
                         help="a directory of your own CustomResourceDefinitions to validate objects against "
                              "(repeatable; the graph's `crds:` directories are used too)")
    preview.add_argument("--kubeconfig", metavar="FILE",
                         help="also validate against the CRDs of this cluster (read once with kubectl; for operators "
                              "no registry publishes, such as kopiur)")
    preview.add_argument("--json", action="store_true", help="print resources and objects as JSON")
    preview.add_argument("--diff", nargs=2, metavar=("A", "B"),
                         help="instead, print what changes from stack A to stack B, object by object")
    preview.set_defaults(handler=_cmd_preview, subparser=preview)

    docs = commands.add_parser(
        "docs", parents=[_graph_option()], help="write the runbook: the recovery order as Markdown, SVG and HTML",
        description="Write the runbook of the graph: recovery-order.md (with a Mermaid graph), recovery-order.svg "
                    "and recovery-order.html for prod, and the same with .drill for drill mode. With --mode, only "
                    "that mode. --check writes nothing and exits 1 when the files in --out are out of date.")
    docs.add_argument("--mode", choices=MODES, help="only this mode (default: both)")
    docs.add_argument("--out", default="docs", metavar="DIR", help="where the files go (default: docs)")
    docs.add_argument("--check", action="store_true", help="exit 1 and name the files that are out of date")
    docs.add_argument("--stack-config", metavar="FILE",
                      help="a Pulumi stack file whose dr:secrets names (never values) the runbook lists")
    docs.set_defaults(handler=_cmd_docs, subparser=docs)

    audit = commands.add_parser(
        "audit", parents=[_graph_option()],
        help="find backup mistakes before the disaster: coverage, freshness, retention, collapse, drills",
        description="Audit the graph's backups against what they really hold: coverage (graph rules, PVCs and "
                    "database clusters in the cluster, host paths), freshness against each RPO (WAL archiving "
                    "that stopped included), retention against a detection delay, collapsed newest backups, and "
                    "drill recency. Exit 1 on findings.")
    audit.add_argument("--json", action="store_true", help="print the findings as JSON")
    audit.add_argument("--ignore", nargs="+", default=[], metavar="CHECK",
                       help="skip these checks: coverage, freshness, retention, collapse, drill-recency, cascade")
    audit.add_argument("--k8s-status", metavar="FILE",
                       help="JSON with lists pvcs, cnpg, longhorn, velero, kopiur, pvs, crds, kustomizations "
                            "(default: read them with kubectl)")
    audit.add_argument("--kubeconfig", metavar="FILE",
                       help="the live cluster to read (default: kubectl's current context)")
    audit.add_argument("--host-path", action="append", default=[], metavar="PATH",
                       help="a volume path on the hosts that some backup must cover (repeatable)")
    audit.add_argument("--secrets", metavar="FILE", help="YAML file of secrets (restic_password); or RESTIC_PASSWORD")
    audit.add_argument("--detection-delay", default="48h", help="how late a problem may be noticed (default 48h)")
    audit.add_argument("--drill-max-age", default="14d", help="longest time without a passing drill (default 14d)")
    audit.add_argument("--state-dir", default=".dr", metavar="DIR", help="drill history (default .dr)")
    audit.add_argument("--textfile", metavar="FILE", help="also write the findings as a Prometheus textfile")
    audit.add_argument("--timeout", default="2m", metavar="DURATION",
                       help="how long each call to a server (restic, pgBackRest, kubectl) may wait for its answer; "
                            "past it the backup or the cluster is reported as not checked (default 2m)")
    audit.set_defaults(handler=_cmd_audit, subparser=audit)

    drill = commands.add_parser(
        "drill", parents=[_graph_option()], help="rehearse the rebuild: restore, verify, measure RTO and RPO",
        description="Run a DR drill of the graph in drill mode. --sandbox (the default) builds a small production "
                    "on this machine (a Kubernetes control plane, PostgreSQL with pgBackRest, restic volumes), takes "
                    "real backups, destroys it, rebuilds it with the local executor (host steps through Ansible, a "
                    "control plane started on the restored etcd, every Kubernetes-level step through `pulumi up` "
                    "and the pulumi-kubernetes provider; needs `make toolchain`), verifies and reports RTO and RPO. "
                    "No operator runs in the sandbox: Kubernetes-level restores are reported as applied. --stack "
                    "drill runs `pulumi up` on the project's drill stack (its Pulumi.yaml, stack file and backend) "
                    "through dr's engine, verifies, then destroys it. Exit 1 when a step, a check or a target fails.")
    target = drill.add_mutually_exclusive_group()
    target.add_argument("--sandbox", action="store_true", help="drill on this machine (default)")
    target.add_argument("--stack", metavar="NAME", help="drill on a real test cluster: the Pulumi stack NAME")
    target.add_argument("--hosts", action="store_true",
                        help="run the host-level steps (playbooks, host restores) over SSH on the graph's drill_hosts; "
                             "refused, exit 2, if a drill host is a production host")
    drill.add_argument("--secrets", metavar="FILE",
                       help="with --hosts: YAML file of the secrets host steps need (restic_password, k3s_token)")
    drill.add_argument("--resume", action="store_true",
                       help="continue the last drill after a crash, with --sandbox (the default) or --hosts: "
                            "finished steps are not run again")
    drill.add_argument("--scenario", metavar="NAME",
                       help="with --sandbox: replay a real incident as the disaster, then check what dr prevented and "
                            "recovered: storage-wipe, blank-volume, cascade-delete, quorum-loss, "
                            "quorum-loss-from-scratch, namespace-delete, or all (one sandbox drill each; "
                            "docs/incidents.md)")
    drill.add_argument("--keep", action="store_true", help="with --stack: do not destroy the stack afterwards")
    drill.add_argument("--concurrency", type=_positive_int, default=4, metavar="N",
                       help="steps run at once, 1 or more (default 4)")
    drill.add_argument("--state-dir", default=".dr", metavar="DIR",
                       help="journal, history, sandboxes and reports (default .dr)")
    drill.set_defaults(handler=_cmd_drill, subparser=drill)

    history = commands.add_parser("history", help="the trend of past drills, and a chart of RTO and RPO",
                                  description="Print past drills; with --png, also draw RTO per drill kind against "
                                              "its target, and RPO per backup, over time. Reads the state directory, "
                                              "never writes into it.")
    history.add_argument("--state-dir", default=".dr", metavar="DIR", help="where drills keep history (default .dr)")
    history.add_argument("--png", default=None, metavar="FILE", help="draw the chart into FILE (a PNG)")
    history.set_defaults(handler=_cmd_history, subparser=history)

    schedule = commands.add_parser(
        "schedule", parents=[_graph_option()],
        help="write a systemd timer that runs drills (and, with --image, a Kubernetes CronJob)",
        description="Write dr-drill-cronjob.yaml (a Kubernetes CronJob running `dr drill --stack drill`) and "
                    "dr-drill.service + dr-drill.timer (systemd, running the drill on this machine) for a cron "
                    "schedule. Both drill the graph given with --graph (checked now, so a scheduled drill "
                    "does not fail on it at 3 a.m.).")
    schedule.add_argument("--cron", required=True, help='five-field cron schedule, like "0 3 * * 0"')
    schedule.add_argument("--out", default="schedule", metavar="DIR", help="where the files go (default schedule)")
    schedule.add_argument("--image", metavar="IMAGE",
                          help="your container image with dr and this repository: writes the CronJob with its "
                               "namespace, ServiceAccount and state claim (dr publishes no image; without --image "
                               "only the systemd units are written)")
    schedule.add_argument("--workdir", default=str(Path.cwd()), help="checkout of this repository, for systemd")
    schedule.set_defaults(handler=_cmd_schedule, subparser=schedule)

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of the recovery graph, for editors",
        description="Print (or write with --out) the JSON Schema (draft-07) of the recovery graph. Editors that "
                    "use yaml-language-server (VS Code's YAML extension, Neovim, Helix) check a graph against it "
                    "as you type when its first line is `# yaml-language-server: $schema=<path or URL>`. The "
                    "schema checks one file's shape (fields, types, layers, tools, durations); `dr plan` checks "
                    "the rest (references, cycles, cron fields, repository syntax).")
    schema.add_argument("--out", metavar="FILE", help="write it to FILE instead of printing it")
    schema.set_defaults(handler=_cmd_schema, subparser=schema)

    importer = commands.add_parser(
        "import", help="write a starting recovery graph from a Flux or Argo CD repository",
        description="Read a GitOps repository (a checkout) and write a starting recovery graph: a component per "
                    "Flux Kustomization or Argo CD Application (reconciled_by it, ordered by dependsOn or sync "
                    "wave), the CNI as a bootstrap Helm step, backups and restore steps from VolSync, "
                    "CloudNativePG, Velero and Longhorn objects. Every guess is marked `# REVIEW:`; the graph is "
                    "checked by dr's rules and what they still refuse is printed. Nothing is installed.")
    importer.add_argument("tool", choices=("flux", "argo"), help="the GitOps controller the repository is for")
    importer.add_argument("path", metavar="PATH", help="the root of the repository checkout")
    importer.add_argument("--cluster", metavar="NAME",
                          help="Flux: the cluster to import when the repository holds several (clusters/NAME); "
                               "also the graph's cluster name (default: the cluster's directory, or the "
                               "repository's)")
    importer.add_argument("--out", metavar="FILE", help="write the graph to FILE (default: print it)")
    importer.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    importer.set_defaults(handler=_cmd_import, subparser=importer)

    sandbox = commands.add_parser(
        "sandbox", help="a real container-less Kubernetes cluster on this machine, to rehearse the Kubernetes layer",
        description="Start, stop or inspect a sandbox cluster: etcd, kube-apiserver, kube-controller-manager, "
                    "kube-scheduler and kwok (fake nodes) on loopback, from `make toolchain`. No kubelet runs: "
                    "pods become Running and Deployments Available, but no container runs in them. `up` prints "
                    "the kubeconfig and ends with an `export KUBECONFIG=...` line; `status` exits 0 while the "
                    "cluster runs and 1 when it does not; `down` stops everything it started and is safe to repeat.")
    sandbox.add_argument("action", choices=("up", "down", "status"))
    sandbox.add_argument("--state-dir", default=".dr", metavar="DIR",
                         help="dr's state directory, as for every command (default .dr); the cluster's certificates, "
                              "etcd data, logs and kubeconfig go in its sandbox-cluster/")
    sandbox.add_argument("--etcd-data", metavar="DIR",
                         help="with up: start the control plane on this existing etcd data directory (one a "
                              "drill restored from a snapshot) instead of an empty one")
    sandbox.add_argument("--json", action="store_true", help="with status: print the status as JSON")
    sandbox.set_defaults(handler=_cmd_sandbox, subparser=sandbox)

    mirror = commands.add_parser(
        "mirror", parents=[_graph_option()],
        help="copy the charts the graph pins into a directory and serve it as a Helm repository",
        description="A rebuild must not depend on chart repositories being reachable on the day. `fill` reads "
                    "each chart the graph pins (both modes) from its repository, checks it against the index's "
                    "sha256 digest and writes it with an index.yaml into DIR; charts already there are kept; a "
                    "chart whose index entry has no sha256 digest is refused (see --allow-unverified). "
                    "`serve` serves the regular files in DIR read-only on 127.0.0.1 as a Helm HTTP repository "
                    "until interrupted (never a link, never a listing); point the stack at it with "
                    "`pulumi config set dr:chart_mirror http://127.0.0.1:PORT`.")
    mirror.add_argument("action", choices=("fill", "serve"))
    mirror.add_argument("--dir", default=".dr/charts", metavar="DIR", help="the mirror directory (default .dr/charts)")
    mirror.add_argument("--port", type=_positive_int, default=8879, help="with serve: the port (default 8879)")
    mirror.add_argument("--upstream", action="append", default=[], metavar="REPO=URL",
                        help="with fill: fetch the charts of repository REPO from URL instead (a nearer copy); "
                             "repeatable")
    mirror.add_argument("--allow-unverified", action="store_true",
                        help="with fill: mirror a chart whose repository index gives no sha256 digest anyway; it is "
                             "marked unverified in DIR/index.yaml and in what fill reports")
    mirror.set_defaults(handler=_cmd_mirror, subparser=mirror)
    return parser


def _cmd_schema(args: argparse.Namespace) -> int:
    from dr.core.graph_schema import schema_text

    if args.out:
        Path(args.out).write_text(schema_text(), encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(schema_text())
    return EXIT_OK


def _cmd_mirror(args: argparse.Namespace) -> int:
    from dr.charts.mirror import Server, fill
    from dr.core.charts import chart_pins, pin_problem

    directory = Path(args.dir)
    if args.action == "serve":
        if not (directory / "index.yaml").is_file():
            raise UsageError(f"{directory} has no index.yaml; `dr mirror fill --dir {directory}` first")
        server = Server(directory.resolve(), args.port)
        print(f"serving {directory} at {server.url} (Ctrl-C stops); pulumi config set dr:chart_mirror {server.url}",
              flush=True)
        try:
            server.serve_forever()
        finally:
            server.close()
        return EXIT_OK
    upstream = {}
    for item in args.upstream:
        repo, sep, url = item.partition("=")
        if not sep or not repo or not url:
            raise UsageError(f"--upstream takes REPO=URL, not {item!r}")
        upstream[repo] = url
    spec = load_graph_file(args.graph)
    plan_for(spec, read_text=read_text)  # every command validates the graph the same way first (exit 2)
    pins = chart_pins(spec)
    for pin in pins:
        problem = pin_problem(pin)
        if problem is not None:  # a name is never made a path before it is a chart name
            raise UsageError(f"{args.graph}: {problem}; nothing was mirrored")
    done = fill(directory, pins, upstream=upstream, allow_unverified=args.allow_unverified,
                say=lambda line: print(line, file=sys.stderr))
    fetched = sum(1 for m in done if m.fetched)
    unverified = [f"{m.pin.name} {m.pin.version}" for m in done if not m.verified]
    marked = f"; {len(unverified)} unverified: {', '.join(unverified)}" if unverified else ""
    print(f"{len(done)} charts in {directory} ({fetched} fetched, {len(done) - fetched} already there{marked})")
    return EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    from dr.gitops_import.command import run_import

    accepted = run_import(args.tool, args.path, cluster=args.cluster, out=Path(args.out) if args.out else None,
                          force=args.force)
    return EXIT_OK if accepted else EXIT_PROBLEM


SANDBOX_CLUSTER_DIR = "sandbox-cluster"  # under --state-dir


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from dr.kube.sandbox_cluster import SandboxCluster

    cluster = SandboxCluster(Path(args.state_dir) / SANDBOX_CLUSTER_DIR)
    if args.action in ("up", "down"):
        from dr.state_lock import state_dir_lock

        with state_dir_lock(Path(args.state_dir), f"dr sandbox {args.action}"):
            return _sandbox_up_down(args, cluster)
    status = cluster.status()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(f"sandbox cluster in {status['state_dir']}: {'running' if status['running'] else 'not running'}")
        for name, alive in status["processes"].items():
            print(f"  {name}: {'running' if alive else 'stopped'}")
    return EXIT_OK if status["running"] else EXIT_PROBLEM


def _sandbox_up_down(args: argparse.Namespace, cluster: Any) -> int:
    if args.action == "up":
        etcd_data = Path(args.etcd_data) if args.etcd_data else None
        if etcd_data is not None and not (etcd_data / "member").is_dir():
            raise UsageError(f"--etcd-data {etcd_data}: not an etcd data directory (no member/ inside)")
        cluster.up(etcd_data=etcd_data, progress=lambda line: print(f"sandbox: {line}", file=sys.stderr))
        print(f"kubeconfig: {cluster.kubeconfig}")
        print(f"try: {cluster.toolchain.path('kubectl')} --kubeconfig {cluster.kubeconfig} get nodes")
        print(f"stop it with: dr sandbox down --state-dir {args.state_dir}")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        return EXIT_OK
    if args.action == "down":
        stopped = cluster.down(progress=lambda line: print(f"sandbox: {line}", file=sys.stderr))
        print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace) -> int:
    history_file = Path(args.state_dir) / "history.sqlite"
    spec = load_graph_file(args.graph) if history_file.is_file() else None  # its cluster names the history
    estimates, note = _measured_estimates(history_file, spec.cluster) if spec is not None else ({}, "")
    plan = plan_graph_file(args.graph, mode=args.mode, only=args.only, estimates=estimates, spec=spec)
    for warning in plan.warnings:
        print(warning, file=sys.stderr)
    if note and args.json:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(plan.to_json(), indent=2))
    else:
        sys.stdout.write(render_plan(plan, estimate_note=note))
    return EXIT_OK


def _measured_estimates(history_file: Path, cluster: str) -> tuple[dict[str, int], str]:
    """Median step durations of recent successful drills of this cluster, when there are any."""
    from dr.drill.history import History, HistoryDamaged, medians_of

    if not history_file.is_file():
        return {}, ""
    try:
        # Read-only: planning never writes the state dir (nor migrates or indexes its history).
        with History(history_file, read_only=True) as history:
            recent = history.recent_steps(cluster)  # the recent rows only, however long the history is
    except HistoryDamaged as exc:
        print(f"warning: {exc}; the graph's estimates are used", file=sys.stderr)
        return {}, ""
    medians = medians_of(recent)
    if not medians:
        return {}, ""
    return medians, (f"estimates of {len(medians)} steps are the median of the last {len(recent)} successful drill(s) "
                     f"on real hosts or clusters in {history_file} (sandbox drills never count); the graph's "
                     "estimates are used for the others")


def _cmd_preview(args: argparse.Namespace) -> int:
    import tempfile

    from dr.core.mode_diff import diff_modes
    from dr.kube.crds import crds_from_cluster
    from dr.stack.preview import render_preview, run_preview, validation, write_objects
    from dr.stack_config import load_stack_config

    if args.diff:
        first, second = (run_preview(stack) for stack in args.diff)
        sys.stdout.write(diff_modes(first.plan, second.plan))
        return EXIT_OK
    crd_dirs = [Path(d) for d in args.crds]
    for directory in crd_dirs:
        if not directory.is_dir():
            raise UsageError(f"--crds {directory}: not a directory")
    if args.kubeconfig and not Path(args.kubeconfig).is_file():
        raise UsageError(f"--kubeconfig {args.kubeconfig}: no such file")
    print(f"preview: running dr's Pulumi program for stack {args.stack} offline (no cluster, no state)",
          file=sys.stderr)
    preview = run_preview(args.stack)
    graph_path = load_stack_config(args.stack).get("dr:graph")
    if graph_path:
        crd_dirs += load_graph_file(graph_path).crd_dirs
    with tempfile.TemporaryDirectory(prefix="dr-cluster-crds-") as from_cluster:
        if args.kubeconfig:
            count = crds_from_cluster(Path(args.kubeconfig), Path(from_cluster))
            print(f"preview: {count} CustomResourceDefinitions read from the cluster of {args.kubeconfig}",
                  file=sys.stderr)
            crd_dirs.append(Path(from_cluster))
        checked = validation(preview, crd_dirs=crd_dirs)
    problems = list(checked.problems)
    if args.json:
        print(json.dumps({**preview.to_json(), "problems": problems,
                          "not_validated": dict(sorted(checked.not_validated.items()))}, indent=2))
    else:
        sys.stdout.write(render_preview(preview))
    if args.out:
        written = write_objects(preview, Path(args.out))
        print(f"wrote {len(written)} objects under {args.out}", file=sys.stderr)
    for problem in problems:
        print(f"invalid: {problem}", file=sys.stderr)
    for note in checked.notes():
        print(f"not validated: {note}", file=sys.stderr)
    objects = sum(1 for _ in preview.plan.objects())
    unchecked = sum(checked.not_validated.values())
    if not problems:
        print(f"valid: {objects - unchecked} Kubernetes objects checked against their schemas"
              + (f", {unchecked} not validated (no CRD: above)" if unchecked else "")
              + ("" if args.out else "; nothing written (--out DIR writes them)"), file=sys.stderr)
    return EXIT_PROBLEM if problems else EXIT_OK


def _cmd_docs(args: argparse.Namespace) -> int:
    from dr.docs.writer import generate, secret_names_from, stale, write
    from dr.stack_config import load_stack_config

    secret_names: list[str] = []
    if args.stack_config:
        path = Path(args.stack_config)
        secret_names = secret_names_from(load_stack_config(path.name[len("Pulumi."):-len(".yaml")],
                                                           stacks_dir=path.parent))
    spec = load_graph_file(args.graph)
    files = generate(spec, modes=[args.mode] if args.mode else ["prod", "drill"], read_text=read_text,
                     graph_path=args.graph, secret_names=secret_names)
    out = Path(args.out)
    if args.check:
        differing = stale(files, out)
        for name in differing:
            print(f"out of date: {name}", file=sys.stderr)
        if differing:
            print(f"run: dr docs --graph {args.graph} --out {args.out}", file=sys.stderr)
            return EXIT_PROBLEM
        print(f"{len(files)} files in {out} are up to date")
        return EXIT_OK
    for path in write(files, out):
        print(f"wrote {path}")
    return EXIT_OK


def _cmd_drill(args: argparse.Namespace) -> int:
    from dr.state_lock import state_dir_lock

    spec = load_graph_file(args.graph)
    state_dir = Path(args.state_dir).resolve()
    kind = "--hosts" if args.hosts else "--stack" if args.stack else "--sandbox"
    from dr.reaper import marked_run

    # Every process the drill starts carries this run's marker, so a stop reaps them all (dr.reaper).
    with state_dir_lock(state_dir, f"dr drill {kind}"), marked_run():
        return _drill(args, spec, state_dir)


def _drill(args: argparse.Namespace, spec: Any, state_dir: Path) -> int:
    from dr.drill.progress import plain_progress
    from dr.drill.run import DrillPaths

    paths = DrillPaths(state_dir)
    if args.hosts:
        from dr.drill.hosts_drill import host_drill

        report, files = host_drill(spec, paths=paths, read_text=read_text, secrets=_secrets_file(args.secrets),
                                   resume=args.resume, concurrency=args.concurrency, progress=plain_progress(),
                                   say=lambda line: print(line, file=sys.stderr))
    elif args.stack:
        from dr.drill.checks import drill_cluster_readiness, http_checks
        from dr.drill.engine_stack import EngineStack
        from dr.drill.run import planned, stack_drill
        from dr.hosts.identity import check_drill_hosts

        plan, resources = planned(spec, read_text)
        assert plan.graph is not None
        check_drill_hosts(plan.graph.spec)  # before pulumi up touches anything

        def verify(plan: Any, outputs: Any) -> Any:
            return drill_cluster_readiness(resources, outputs, paths.state_dir) + http_checks(plan, outputs)

        say = lambda line: print(line, file=sys.stderr)  # noqa: E731
        report, files = stack_drill(spec, stack=EngineStack(args.stack, say=say), verify=verify,
                                    paths=paths, read_text=read_text, keep=args.keep,
                                    say=lambda line: print(line, file=sys.stderr))
    else:
        return _sandbox_drills(args, spec, paths)
    return _print_report(report, files)


def _sandbox_drills(args: argparse.Namespace, spec: Any, paths: Any) -> int:
    """One sandbox drill, or one per scenario (`--scenario NAME|all`); exit 1 if any fails."""
    from dr.core.plan import plan_for
    from dr.drill.progress import LiveProgress, is_terminal, plain_progress
    from dr.drill.run import sandbox_drill
    from dr.drill.scenarios import SCENARIOS, Scenario, scenario_named

    scenarios: list[Scenario | None] = [None]
    if args.scenario:  # an unknown name is refused before any drill starts
        try:
            scenarios = [scenario_named(n) for n in (list(SCENARIOS) if args.scenario == "all" else [args.scenario])]
        except DrError as exc:
            raise UsageError(f"--scenario: {exc}") from None
    steps = [s.name for s in plan_for(spec, mode="drill", read_text=read_text).steps]
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    code = EXIT_OK
    for scenario in scenarios:
        name = scenario.name if scenario is not None else ""
        title = f"sandbox drill of {spec.cluster}" + (f", scenario {name}" if name else "")
        if is_terminal():
            with LiveProgress(steps, title) as live:
                report, files = sandbox_drill(spec, paths=paths, read_text=read_text, resume=args.resume,
                                              concurrency=args.concurrency, progress=live, say=say,
                                              scenario=scenario)
        else:
            report, files = sandbox_drill(spec, paths=paths, read_text=read_text, resume=args.resume,
                                          concurrency=args.concurrency, progress=plain_progress(), say=say,
                                          scenario=scenario)
        if name:
            print(f"scenario {name}:")
        code = max(code, _print_report(report, files))
    return code


def _print_report(report: Any, files: Mapping[str, Path]) -> int:
    from dr.core.drill_report import verdict
    from dr.core.durations import format_duration

    print(verdict(report))
    print(f"  RTO {format_duration(report.rto_s)} "
          f"(target {format_duration(report.rto_target_s) if report.rto_target_s > 0 else 'none'})")
    for rpo in report.rpo:
        measured = "nothing restored" if rpo.measured_s is None else f"{rpo.measured_s:.1f}s"
        print(f"  RPO {rpo.backup}: {measured} (target {format_duration(rpo.target_s)})")
    for scenario in report.scenarios:
        print(f"  recovered: {scenario.recovered}")
        print(f"  lost: {scenario.lost}")
    for step in report.failed_steps:
        print(f"  {step.state}: {step.name}: {step.detail}")
    for check in report.checks:
        if not check.ok:
            print(f"  check failed: {check.step} {check.kind}: {check.detail}")
    print(f"report: {files['html']} (also {files['markdown'].name}, {files['json'].name}, {files['junit'].name}, "
          f"{files['prometheus'].name})")
    return EXIT_OK if report.success else EXIT_PROBLEM


def _secrets_file(path: str | None) -> dict[str, str]:
    """A YAML mapping of secret names to values; problems name the file, never a value."""
    if path is None:
        return {}
    import yaml

    try:
        loaded = yaml.safe_load(read_user_text(path))
    except OSError as exc:
        raise UsageError(f"--secrets {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"--secrets {path}: not UTF-8 text") from None
    except yaml.YAMLError:
        raise UsageError(f"--secrets {path}: not valid YAML") from None
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise UsageError(f"--secrets {path}: must be a mapping of secret names to values")
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:  # like ssh with a readable key, loudly (a refusal would stop a rebuild on its worst day)
        print(f"warning: --secrets {path} is readable by {'others' if mode & 0o007 else 'its group'} (mode "
              f"{mode:04o}): anyone on this machine can read these secrets; chmod 600 {path}", file=sys.stderr)
    return {k: str(v) for k, v in loaded.items()}


def _cmd_history(args: argparse.Namespace) -> int:
    from dr.drill.history import History, HistoryEntry, draw_chart, render_trend

    if args.png:  # checked before the history is read: an empty history must not hide a wrong option
        target = Path(args.png)
        if target.is_dir():
            raise UsageError(f"--png {args.png}: is a directory; give a file name such as rto.png")
        if not target.parent.is_dir():
            raise UsageError(f"--png {args.png}: the directory {target.parent} does not exist")
    history_file = Path(args.state_dir) / "history.sqlite"
    entries: list[HistoryEntry] = []
    if history_file.is_file():  # read-only: a mistyped --state-dir must not be created, nothing is written
        with History(history_file, read_only=True) as history:
            entries, skipped = history.read()
        for line in skipped:  # a row that cannot be a drill is said, never the end of the command
            print(f"warning: {line}", file=sys.stderr)
    sys.stdout.write(render_trend(entries))
    if entries and args.png:
        draw_chart(entries, Path(args.png))
        print(f"chart: {args.png}")
    elif entries:
        print("chart: not drawn; --png FILE draws RTO per drill kind against its target, and RPO, over time")
    return EXIT_OK


def _cmd_schedule(args: argparse.Namespace) -> int:
    from dr.drill.schedule import write_schedule

    plan_graph_file(args.graph)  # every command validates the graph the same way first (exit 2)
    for path in write_schedule(args.cron, out=Path(args.out), image=args.image, workdir=args.workdir,
                               graph=args.graph):
        print(f"wrote {path}")
    if args.image is None:
        print("no --image: the Kubernetes CronJob was not written (dr publishes no image; build one with dr and "
              "this repository, then pass --image)", file=sys.stderr)
    return EXIT_OK


def _k8s_status_file(path: str) -> dict[str, Any]:
    try:
        k8s = json.loads(read_user_text(path))
    except ValueError:
        raise UsageError(f"--k8s-status {path}: not valid JSON") from None
    if not isinstance(k8s, dict):
        raise UsageError(f"--k8s-status {path}: must be a JSON object with lists pvcs, cnpg, longhorn, velero")
    return k8s


def _backup_states(spec: Any, secrets: Mapping[str, str], k8s: Mapping[str, Any] | None, unreachable: str,
                   bound: Any, not_answered: dict[str, tuple[str, str]]
                   ) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """(what each backup holds, what could not be checked and why): a check that could not run is said,
    never a pass; a repository that did not answer in time goes into `not_answered`."""
    from dr.audit.sources import read_state

    states = {}
    not_checked: dict[str, tuple[str, str]] = {}
    for backup in spec.backups.values():
        try:
            state = read_state(spec, backup, secrets=secrets, k8s=k8s, bound=bound)
        except NoAnswer as exc:
            not_answered[backup.name] = ("freshness", str(exc))
            continue
        if state is not None:
            states[backup.name] = state
        else:
            not_checked[backup.name] = ("freshness", unreachable if k8s is None else
                                        f"dr cannot read {backup.tool} backups from here")
    return states, not_checked


def _cmd_audit(args: argparse.Namespace) -> int:
    import os

    from dr.audit.checks import CHECKS, AuditInput, audit, render_table, to_json, to_prometheus
    from dr.audit.sources import Bound, cascade_view, drill_history, inventory_from, k8s_status_from_kubectl
    from dr.core.durations import parse_duration

    unknown = [c for c in args.ignore if c not in CHECKS]
    if unknown:
        raise UsageError(f"--ignore takes {', '.join(CHECKS)}; not {', '.join(unknown)}")
    try:
        detection, max_age = parse_duration(args.detection_delay), parse_duration(args.drill_max_age)
        timeout_s = parse_duration(args.timeout)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if timeout_s < 1:
        raise UsageError(f"--timeout must be at least 1s, not {args.timeout!r}")
    spec = load_graph_file(args.graph)
    plan_for(spec, read_text=read_text)  # every command validates the graph the same way first (exit 2)
    secrets: dict[str, str] = _secrets_file(args.secrets)
    if "RESTIC_PASSWORD" in os.environ:
        secrets.setdefault("restic_password", os.environ["RESTIC_PASSWORD"])
    # Every call that waits on a server says so first, on stderr, and gives up after --timeout.
    bound = Bound(timeout_s=timeout_s, say=lambda line: print(f"audit: {line}", file=sys.stderr, flush=True))
    unreachable = "the cluster was not reachable (no kubectl, no cluster in its context, or access refused)"
    not_answered: dict[str, tuple[str, str]] = {}
    try:
        k8s = (_k8s_status_file(args.k8s_status) if args.k8s_status else
               k8s_status_from_kubectl(args.kubeconfig, bound=bound))
        silent = False
    except NoAnswer as exc:
        k8s, unreachable, silent = None, str(exc), True
    states, not_checked = _backup_states(spec, secrets, k8s, unreachable, bound, not_answered)
    if silent:  # the backups read from the cluster were not checked because it did not answer
        not_answered.update({name: entry for name, entry in not_checked.items() if entry[1] == unreachable})
        not_checked = {name: entry for name, entry in not_checked.items() if name not in not_answered}
    cluster_unchecked = not_answered if silent else not_checked
    if k8s is None:
        cluster_unchecked[f"{spec.cluster} PVCs and databases"] = ("coverage", unreachable)
    cascade = cascade_view(k8s)
    if cascade is None:
        cluster_unchecked[f"{spec.cluster} volumes and CRDs"] = (
            "cascade", unreachable if k8s is None else "the cluster's PersistentVolumes or CRDs could not be listed "
                                                       "(no pvs/crds in the status, or access refused)")
    drills = drill_history(Path(args.state_dir) / "history.sqlite", spec.cluster)
    for line in drills.skipped:
        print(f"warning: {line}", file=sys.stderr)
    findings = [f for f in audit(AuditInput(spec=spec, states=states, inventory=inventory_from(k8s, args.host_path),
                                            detection_delay_s=detection, last_successful_drill=drills.last_passed,
                                            successful_drills=drills.passed,
                                            drills_recorded=drills.proving, drill_max_age_s=max_age,
                                            sandbox_drills=drills.sandbox_only, history_problem=drills.problem,
                                            not_checked=not_checked, not_answered=not_answered,
                                            cascade=cascade))
                if f.check not in args.ignore]
    sys.stdout.write(to_json(findings) if args.json else render_table(findings))
    if args.textfile:
        write_atomic(args.textfile, to_prometheus(findings, spec.cluster))
    return EXIT_PROBLEM if findings else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import signal
    import threading

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, _stop_like_ctrl_c)
    try:
        return _run(args)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_Requirement = tuple[str, str, str, Callable[[argparse.Namespace], Any]]
_NEEDS: dict[str, list[_Requirement]] = {  # command: (option attribute, option text, what it needs, the check)
    "drill": [("secrets", "--secrets", "--hosts", lambda a: a.hosts),
              ("keep", "--keep", "--stack", lambda a: a.stack),
              ("resume", "--resume", "--sandbox or --hosts", lambda a: not a.stack),
              ("scenario", "--scenario", "--sandbox (and not --resume)",
               lambda a: not (a.stack or a.hosts or a.resume))],
    "mirror": [("upstream", "--upstream", "fill", lambda a: a.action == "fill"),
               ("allow_unverified", "--allow-unverified", "fill", lambda a: a.action == "fill")],
    "sandbox": [("etcd_data", "--etcd-data", "up", lambda a: a.action == "up"),
                ("json", "--json", "status", lambda a: a.action == "status")],
}


def _check_combinations(args: argparse.Namespace) -> None:
    """Options that only mean something beside another are refused elsewhere, before any work starts
    (a `dr drill --keep` that ran a sandbox drill ignoring --keep would surprise)."""
    for attribute, option, needs, holds in _NEEDS.get(args.command, []):
        if getattr(args, attribute, None) and not holds(args):
            raise UsageError(f"{option} only works with {needs}")


def _run(args: argparse.Namespace) -> int:
    try:
        _check_combinations(args)
        code: int = args.handler(args)
    except GraphError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        subparser = getattr(args, "subparser", None)
        if subparser is not None:
            subparser.print_usage(sys.stderr)  # the subcommand's usage, as argparse's own errors show it
        print(f"dr {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DrError as exc:
        print(f"dr {args.command}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except BrokenPipeError:
        # The reader went away (`dr plan | head -1`): not an error. Point stdout at /dev/null so the
        # interpreter's own flush at exit does not fail again. A BrokenPipeError is an OSError: it comes first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        # A path the user gave that cannot be read or written (a directory, read-only, missing parent).
        where = f" {exc.filename}" if exc.filename else ""
        print(f"dr {args.command}: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnicodeDecodeError as exc:
        # A file the user named that is not text; the bytes themselves are never echoed (a secret?).
        print(f"dr {args.command}: error: a file given is not UTF-8 text (byte {exc.start})", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(f"dr: interrupted{f' by {exc}' if str(exc) else ''}; stopped what it started", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in dr: say so in one line, the traceback only on request
        if os.environ.get("DR_DEBUG"):
            raise
        print(f"dr {args.command}: internal error ({type(exc).__name__}: {exc}); this is a bug in dr, please "
              "report it with the output of the same command run with DR_DEBUG=1", file=sys.stderr)
        return EXIT_PROBLEM
    return code


INTERRUPTED_EXIT_GRACE_S = 5.0


def console() -> None:
    """The `dr` command. After a stop (SIGTERM, SIGINT, SIGHUP) dr has already stopped what it started; a
    thread still blocked on something that will never answer must not keep the process alive: after a few
    seconds' grace the process exits anyway, with the same code."""
    code = main()
    try:  # what is still buffered goes out now, not in the interpreter's exit, where a gone reader is exit 120
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if code == 130:
        import threading
        import time

        deadline = time.monotonic() + INTERRUPTED_EXIT_GRACE_S
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() and not t.daemon and t is not threading.current_thread() for t in threading.enumerate()):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console()
