"""Holds a GitOps object while its component's data is restored, then resumes it: the gate between a
restore and the app GitOps would otherwise start on an empty volume.

1. `hold`: dr server-side-applies the object (from the GitOps repository) held: a Flux Kustomization or
   HelmRelease with `suspend: true`, an Argo CD Application without automated sync. dr owns the field
   (field manager `dr`), so when the parent object later applies the same object from git, which does
   not set it, the hold stays.
2. `wait_restored`: waits for each restore object's completion condition (the same conditions `pulumi
   up` waits for: CloudNativePG Ready, Velero Completed, Longhorn restored, VolSync Successful).
3. `release`: a merge patch by the same field manager resumes reconciliation.
4. `wait_ready`: until the controller reports the object Ready (Flux) or Synced and Healthy (Argo CD).

Everything goes through `kubectl` against the cluster's kubeconfig; nothing here guesses a context.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import yaml

from dr.core.gitops import held, is_held, is_ready, release_patch
from dr.core.resources import RESTORE_DONE
from dr.errors import DrError

FIELD_MANAGER = "dr"


class GateError(DrError):
    pass


class Kubectl(Protocol):
    def __call__(self, *args: str, input_text: str | None = None, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]: ...


def resource_ref(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """(kubectl resource name, namespace, display name) of an object: kind.group/name."""
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.split("/")[0] if "/" in api_version else ""
    kind = str(obj.get("kind", ""))
    name = str(obj.get("metadata", {}).get("name", ""))
    namespace = str(obj.get("metadata", {}).get("namespace", ""))
    resource = f"{kind.lower()}.{group}/{name}" if group else f"{kind.lower()}/{name}"
    return resource, namespace, f"{kind} {namespace + '/' if namespace else ''}{name}"


class GitOpsGate:
    def __init__(self, kubectl: Kubectl, *, poll_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self._kubectl = kubectl
        self._poll_s, self._clock, self._sleep = poll_s, clock, sleep

    def _run(self, *args: str, input_text: str | None = None, timeout: float = 60) -> str:
        done = self._kubectl(*args, input_text=input_text, check=False, timeout=timeout)
        if done.returncode != 0:
            raise GateError(f"kubectl {' '.join(args[:2])}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def live(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        resource, namespace, _ = resource_ref(obj)
        loaded: dict[str, Any] = json.loads(self._run("get", resource, "-n", namespace, "-o", "json"))
        return loaded

    def hold(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create (or take over) the object, held. Returns what was applied."""
        obj = held(manifest)
        self._run("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts", "-f", "-",
                  input_text=yaml.safe_dump(obj))
        return obj

    def wait_restored(self, restore_objects: Sequence[Mapping[str, Any]], *, timeout_s: float) -> None:
        for obj in restore_objects:
            condition = RESTORE_DONE.get(str(obj.get("kind")))
            if condition is None:
                continue
            resource, namespace, shown = resource_ref(obj)
            deadline = self._clock() + timeout_s
            while True:
                # `kubectl wait` fails at once while the object does not exist yet: ask again until it does.
                left = max(1, int(deadline - self._clock()))
                done = self._kubectl("wait", f"--for={condition}", resource, "-n", namespace, f"--timeout={left}s",
                                     check=False, timeout=left + 30)
                if done.returncode == 0:
                    break
                if "NotFound" in done.stderr and self._clock() < deadline:
                    self._sleep(self._poll_s)
                    continue
                raise GateError(f"{shown} did not finish restoring within {int(timeout_s)}s "
                                f"({condition}); the GitOps object stays held so nothing starts on empty data: "
                                f"{done.stderr.strip()}")

    def release(self, obj: Mapping[str, Any]) -> None:
        resource, namespace, _ = resource_ref(obj)
        patch = release_patch(self.live(obj))
        self._run("patch", resource, "-n", namespace, "--type=merge", f"--field-manager={FIELD_MANAGER}",
                  "-p", json.dumps(patch))

    def wait_ready(self, obj: Mapping[str, Any], *, timeout_s: float) -> dict[str, Any]:
        _, _, shown = resource_ref(obj)
        deadline = self._clock() + timeout_s
        while True:
            live = self.live(obj)
            if is_held(live):
                raise GateError(f"{shown} is held again (suspended or without automated sync) by someone else")
            if is_ready(live):
                return live
            if self._clock() >= deadline:
                raise GateError(f"{shown} was resumed but did not report Ready within {int(timeout_s)}s")
            self._sleep(self._poll_s)

    def run(self, manifest: Mapping[str, Any], restore_objects: Sequence[Mapping[str, Any]], *,
            restore_timeout_s: float, ready_timeout_s: float) -> dict[str, Any]:
        """Hold, wait for the restores, release, wait for Ready: one component's gate, start to end."""
        self.hold(manifest)
        self.wait_restored(restore_objects, timeout_s=restore_timeout_s)
        self.release(manifest)
        return self.wait_ready(manifest, timeout_s=ready_timeout_s)


def run_gate_step(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """One gate step as `pulumi up` runs it (a dynamic resource): `hold`, or `release` (wait for the
    restore objects, resume, wait for Ready), against the cluster's kubeconfig (a secret input)."""
    import os
    import shutil
    import tempfile

    from dr.kube.toolchain import Toolchain

    kubeconfig = str(inputs.get("cluster_kubeconfig") or "")
    if not kubeconfig:
        raise GateError(f"step {inputs.get('step')!r}: no kubeconfig for the cluster to gate on")
    toolchain = Toolchain.find()
    kubectl_bin = toolchain.path("kubectl") if not toolchain.missing(("kubectl",)) else shutil.which("kubectl")
    if not kubectl_bin:
        raise GateError("kubectl is not installed (make toolchain, or put kubectl on PATH)")
    with tempfile.TemporaryDirectory(prefix="dr-gate-") as scratch:
        path = os.path.join(scratch, "kubeconfig")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(kubeconfig)

        def kubectl(*args: str, input_text: str | None = None, check: bool = True,
                    timeout: float = 60) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(kubectl_bin), "--kubeconfig", path, *args], input=input_text,
                                  capture_output=True, text=True, check=check, timeout=timeout)

        gate = GitOpsGate(kubectl)
        manifest = inputs["manifest"]
        if inputs["gitops"] == "hold":
            gate.hold(manifest)
            return {"changed": 1}
        gate.wait_restored(list(inputs.get("restores", [])), timeout_s=float(inputs.get("restore_timeout_s", 3600)))
        gate.release(manifest)
        live = gate.wait_ready(manifest, timeout_s=float(inputs.get("ready_timeout_s", 600)))
        return {"changed": 1, "ready_generation": int(live.get("metadata", {}).get("generation", 0))}
