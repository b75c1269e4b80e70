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

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import yaml

from dr.core.gitops import held, is_held, is_ready, release_patch
from dr.core.kube_objects import kubectl_resource
from dr.core.restore_tools import restore_done
from dr.core.steps import STEP_KIND
from dr.errors import DrError

FIELD_MANAGER = "dr"


class GateError(DrError):
    pass


class Kubectl(Protocol):
    def __call__(self, *args: str, input_text: str | None = None, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]: ...


def resource_ref(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """(kubectl resource name, namespace, display name) of an object: kind.group/name."""
    kind = str(obj.get("kind", ""))
    name = str(obj.get("metadata", {}).get("name", ""))
    namespace = str(obj.get("metadata", {}).get("namespace", ""))
    resource = f"{kubectl_resource(str(obj.get('apiVersion', '')), kind)}/{name}"
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
            condition = restore_done(obj)
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


def run_gate_step(inputs: Mapping[str, Any], stack_secrets: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One step `pulumi up` runs with kubectl (a dynamic resource), against the cluster's kubeconfig (a
    secret input): a restore's precheck, a gate's `hold`, or its `release` (wait for the restore objects,
    resume, wait for Ready)."""
    with cluster_kubectl(inputs) as kubectl:
        if inputs[STEP_KIND] == "restore-precheck":
            created = check_restore_needs(kubectl, inputs["precheck"], timeout_s=float(inputs.get("timeout_s", 600)),
                                          stack_secrets=stack_secrets or {})
            return {"changed": len(created), "created_secrets": created}
        gate = GitOpsGate(kubectl)
        manifest = inputs["manifest"]
        if inputs[STEP_KIND] == "gitops-hold":
            gate.hold(manifest)
            return {"changed": 1}
        gate.wait_restored(list(inputs.get("restores", [])), timeout_s=float(inputs.get("restore_timeout_s", 3600)))
        gate.release(manifest)
        live = gate.wait_ready(manifest, timeout_s=float(inputs.get("ready_timeout_s", 600)))
        return {"changed": 1, "ready_generation": int(live.get("metadata", {}).get("generation", 0))}


def credential_secret(secret: Mapping[str, Any], stack_secrets: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Secret a restore needs, built from the stack's `dr:secrets` entry `<namespace>/<name>` or `<name>`
    (a mapping of key to value), or None when the stack has no such entry."""
    entry = stack_secrets.get(f"{secret['namespace']}/{secret['name']}", stack_secrets.get(secret["name"]))
    if isinstance(entry, str):
        try:
            entry = json.loads(entry)
        except ValueError:
            return None
    if not isinstance(entry, Mapping):
        return None
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": secret["name"], "namespace": secret["namespace"],
                         "labels": {"app.kubernetes.io/managed-by": "dr"}},
            "stringData": {str(k): str(v) for k, v in entry.items()}}


def check_restore_needs(kubectl: Kubectl, needs: Mapping[str, Any], *, timeout_s: float, poll_s: float = 2.0,
                        stack_secrets: Mapping[str, Any] | None = None,
                        clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Before the restore objects are created: every credential Secret they name exists with the keys they
    read — created from the stack's secrets when it has them, else dr stops, naming it (the restore would
    fail late and obscurely) — and every backup they restore from has been synced into the cluster
    (waited for, up to `timeout_s`). Returns the Secrets it created."""
    problems, created = [], []
    for secret in needs.get("secrets", []):
        done = kubectl("get", "secret", secret["name"], "-n", secret["namespace"], "-o", "json", check=False)
        if done.returncode != 0:
            manifest = credential_secret(secret, stack_secrets or {})
            if manifest is not None and set(secret["keys"]) <= set(manifest["stringData"]):
                # From stdin, never the command line; server-side, owned by dr.
                applied = kubectl("apply", "--server-side", "--field-manager=dr", "-f", "-",
                                  input_text=json.dumps(manifest), check=False)
                if applied.returncode == 0:
                    created.append(f"{secret['namespace']}/{secret['name']}")
                    continue
                problems.append(f"creating Secret {secret['namespace']}/{secret['name']} failed: "
                                f"{applied.stderr.strip()}")
                continue
            problems.append(f"Secret {secret['namespace']}/{secret['name']} does not exist (needs keys "
                            f"{', '.join(secret['keys'])})")
            continue
        present = set(json.loads(done.stdout).get("data", {}) or {})
        missing = [k for k in secret["keys"] if k not in present]
        if missing:
            problems.append(f"Secret {secret['namespace']}/{secret['name']} lacks the keys {', '.join(missing)}")
    if problems:
        raise GateError("; ".join(problems) + ". Give the stack the credentials (pulumi config set --secret --path "
                        "'dr:secrets.NAME.KEY' VALUE) or create them before the restore (kubectl create secret "
                        "generic NAME -n NAMESPACE --from-literal=KEY=...): the restore objects read them")
    deadline = clock() + timeout_s
    for backup in needs.get("backups", []):
        resource = kubectl_resource(str(backup["apiVersion"]), str(backup["kind"]), plural=True)
        shown = f"{backup['kind']} {backup.get('name') or backup.get('selector')} in {backup['namespace']}"
        while True:
            args = ["get", resource, "-n", str(backup["namespace"]), "-o", "json"]
            args += [str(backup["name"])] if backup.get("name") else ["-l", str(backup["selector"])]
            done = kubectl(*args, check=False)
            if done.returncode == 0:
                loaded = json.loads(done.stdout)
                items = loaded.get("items", [loaded]) if "items" in loaded else [loaded]
                wanted = backup.get("phase")
                if any(not wanted or item.get("status", {}).get("phase") == wanted for item in items):
                    break
            if clock() >= deadline:
                raise GateError(f"{shown} has not appeared within {int(timeout_s)}s: the backup target has not "
                                "synced it yet (check the backup storage location or target and its credentials); "
                                "restoring before it exists would be rejected or fail for good")
            sleep(poll_s)
    return created


@contextlib.contextmanager
def cluster_kubectl(inputs: Mapping[str, Any]) -> Iterator[Kubectl]:
    """kubectl bound to the step's `cluster_kubeconfig` (a secret input), written to a private file that
    exists only while the step runs."""
    import os
    import tempfile

    kubeconfig = str(inputs.get("cluster_kubeconfig") or "")
    if not kubeconfig:
        raise GateError(f"step {inputs.get('step')!r}: no kubeconfig for the cluster")
    with tempfile.TemporaryDirectory(prefix="dr-gate-") as scratch:
        path = os.path.join(scratch, "kubeconfig")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(kubeconfig)
        yield kubectl_for(path)


def kubectl_for(kubeconfig_path: str) -> Kubectl:
    """kubectl (from `make toolchain`, else PATH) bound to one kubeconfig file."""
    import shutil

    from dr.kube.toolchain import Toolchain

    toolchain = Toolchain.find()
    binary = toolchain.path("kubectl") if not toolchain.missing(("kubectl",)) else shutil.which("kubectl")
    if not binary:
        raise GateError("kubectl is not installed (make toolchain, or put kubectl on PATH)")

    def kubectl(*args: str, input_text: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(binary), "--kubeconfig", kubeconfig_path, *args], input=input_text,
                              capture_output=True, text=True, check=check, timeout=timeout)
    return kubectl
