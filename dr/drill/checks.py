"""What a drill checks once the cluster is rebuilt: every restore object ready (`kubectl wait` on the
drill cluster itself, with the completion table `pulumi up` waits with), and the graph's http checks."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dr.core.drill_report import CheckResult
from dr.core.kube_objects import group_kind, kubectl_resource
from dr.core.plan import Plan
from dr.core.resources import ResourcePlan
from dr.core.restore_tools import restore_done

# The objects around a restore are ready when they are bound or active.
OBJECT_READY = {"PersistentVolumeClaim": "jsonpath={.status.phase}=Bound",
                "Namespace": "jsonpath={.status.phase}=Active", "PersistentVolume": "jsonpath={.status.phase}=Bound"}


def ready_condition(manifest: Mapping[str, Any]) -> str | None:
    """A restore object is ready when it is done (the one table the engine waits with: a copy here once
    missed VolSync), the objects around it when bound or active."""
    group, kind = group_kind(manifest)
    return OBJECT_READY.get(kind) if not group else restore_done(manifest)
KubectlRunner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _kubectl(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)


def readiness_checks(resources: ResourcePlan, *, kubeconfig: str | None = None,
                     run: KubectlRunner = _kubectl) -> list[CheckResult]:
    """Every restore object dr created is ready (`kubectl wait`): databases up, claims bound, restores done."""
    results = []
    for component, obj in resources.objects():
        condition = ready_condition(obj.manifest)
        if condition is None:
            continue
        resource = f"{kubectl_resource(str(obj.manifest['apiVersion']), obj.kind)}/{obj.name}"
        argv = ["kubectl", *(["--kubeconfig", kubeconfig] if kubeconfig else []), "wait", resource,
                f"--for={condition}", "--timeout=600s", *(["-n", obj.namespace] if obj.namespace else [])]
        done = run(argv)
        detail = (done.stdout or done.stderr).strip().splitlines()
        results.append(CheckResult(component, f"ready {obj.kind}", done.returncode == 0,
                                   detail[-1] if detail else f"kubectl exit {done.returncode}"))
    return results


def drill_cluster_readiness(resources: ResourcePlan, outputs: Mapping[str, Any], state_dir: Path,
                            run: KubectlRunner = _kubectl) -> list[CheckResult]:
    """Readiness checks against the drill cluster itself, never whatever cluster kubectl points at."""
    kubeconfig = outputs.get("kubeconfig")
    if not kubeconfig:
        return [CheckResult("readiness", "kubeconfig", False,
                            "the stack exported no kubeconfig of the drill cluster; refusing to check readiness "
                            "against whatever cluster kubectl points at (it may be production)")]
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "drill-kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(str(kubeconfig))
    try:
        return readiness_checks(resources, kubeconfig=str(path), run=run)
    finally:
        path.unlink(missing_ok=True)


def http_checks(plan: Plan, outputs: Mapping[str, Any]) -> list[CheckResult]:
    """The graph's http checks against the test cluster (run where the URLs resolve, e.g. in-cluster)."""
    import urllib.request

    results = []
    for step in plan.steps:
        for check in step.component.verify:
            if check.kind != "http":
                continue
            url, expected = str(check.spec["http"]), int(check.spec.get("status", 200))
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    status = response.status
            except OSError as exc:
                results.append(CheckResult(step.name, "http", False, f"{url}: {exc}"))
                continue
            results.append(CheckResult(step.name, "http", status == expected, f"{url} answered {status}"))
    return results
