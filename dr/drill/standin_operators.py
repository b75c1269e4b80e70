"""What the operators would do, done by the sandbox itself, visibly: no operator runs in the sandbox.

The sandbox cluster has no kubelet, so CloudNativePG, Longhorn, Velero and VolSync never run. A rebuild
waits for their work — a restore object's completion status (`pulumi.com/waitFor`), the backups a
backup target syncs into the cluster before a restore may name them — so the sandbox sets that status
and creates those objects itself, and writes down every time it did. The drill report shows each of
these notes under its step: a Kubernetes-level restore in the sandbox is *applied* (created, accepted
by the real API server, awaited), never *restored*.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dr.core.kube_objects import kubectl_resource
from dr.core.resources import ComponentResources, ResourcePlan
from dr.core.restore_tools import completion

Kubectl = Callable[..., Any]  # SandboxCluster.kubectl: (*args, input_text=, check=) -> CompletedProcess


def completion_status(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The status the restore's operator writes when it is done (each tool's own, `dr.core.restore_tools`)."""
    found = completion(manifest)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return found.finished_status(manifest, now) if found is not None else {}


def synced_backup_name(backup: Mapping[str, Any]) -> str:
    """The name of the backup object a restore waits for: its own, or (Velero: found by the schedule's
    label) the one the stand-in creates for that schedule."""
    if backup.get("name"):
        return str(backup["name"])
    return f"{str(backup.get('selector', '')).partition('=')[2]}-dr-sandbox"


@dataclass(frozen=True)
class Note:
    namespace: str
    kind: str
    name: str
    text: str


@dataclass
class StandInOperators:
    """A background loop that completes restore objects and syncs awaited backups into the cluster."""

    kubectl: Kubectl
    restore_objects: tuple[tuple[str, str, str, str], ...]  # (apiVersion, kind, namespace, name)
    backups: tuple[Mapping[str, Any], ...]                  # the backup objects restores wait for
    poll_s: float = 0.5
    notes: list[Note] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _done: set[tuple[str, str, str]] = field(default_factory=set)

    @classmethod
    def for_plan(cls, resources: ResourcePlan, kubectl: Kubectl) -> StandInOperators:
        restores, backups = [], []
        for component in resources.components:
            for child in component.children:
                manifest = child.inputs.get("manifest") if child.kind == "kube-object" else None
                if manifest and completion(manifest) is not None:
                    meta = manifest.get("metadata", {})
                    restores.append((str(manifest["apiVersion"]), str(manifest["kind"]),
                                     str(meta.get("namespace", "")), str(meta.get("name", ""))))
                if child.kind == "restore-precheck":
                    backups += list(child.inputs.get("precheck", {}).get("backups", []))
        return cls(kubectl=kubectl, restore_objects=tuple(restores), backups=tuple(backups))

    def notes_for(self, component: ComponentResources) -> list[str]:
        """The notes about a component's objects and the backups its precheck waited for, in order."""
        wanted = set()
        for child in component.children:
            meta = (child.inputs.get("manifest") or {}).get("metadata", {})
            if child.kind == "kube-object":
                wanted.add((str(meta.get("namespace", "")), str(child.inputs["manifest"]["kind"]), str(meta["name"])))
            for backup in child.inputs.get("precheck", {}).get("backups", []) if child.kind == "restore-precheck" \
                    else []:
                wanted.add((str(backup["namespace"]), str(backup["kind"]), synced_backup_name(backup)))
        return [n.text for n in self.notes if (n.namespace, n.kind, n.name) in wanted]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="sandbox-operators", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.step()
            except Exception:  # the cluster may be starting or stopping: try again next round
                continue

    def step(self) -> None:
        """One round: sync the backups whose CRD and namespace exist; complete the restore objects that do."""
        for backup in self.backups:
            key = (str(backup["namespace"]), f"{backup['kind']}@sync",
                   str(backup.get("name") or backup.get("selector")))
            if key not in self._done and self._sync_backup(backup):
                self._done.add(key)
        for api_version, kind, namespace, name in self.restore_objects:
            key = (namespace, kind, name)
            if key in self._done:
                continue
            resource = kubectl_resource(api_version, kind)
            done = self.kubectl("get", resource, name, "-n", namespace, "-o", "json", check=False)
            if done.returncode != 0:
                continue
            live = json.loads(done.stdout)
            self._patch_status(resource, namespace, name, completion_status(live))
            self._done.add(key)
            found = completion(live)
            self.notes.append(Note(namespace, kind, name,
                                   f"the sandbox set the status of {kind} {namespace}/{name} itself (no "
                                   f"{found.operator if found else 'operator'} runs here: applied, not restored)"))

    def _patch_status(self, resource: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        body = json.dumps({"status": status})
        patched = self.kubectl("patch", resource, name, "-n", namespace, "--subresource=status", "--type=merge",
                               "-p", body, check=False)
        if patched.returncode != 0:  # a CRD without a status subresource keeps status in the object itself
            self.kubectl("patch", resource, name, "-n", namespace, "--type=merge", "-p", body)

    def _sync_backup(self, backup: Mapping[str, Any]) -> bool:
        api_version, kind, namespace = str(backup["apiVersion"]), str(backup["kind"]), str(backup["namespace"])
        resource = kubectl_resource(api_version, kind, plural=True)
        if self.kubectl("get", "namespace", namespace, check=False).returncode != 0:
            return False
        if self.kubectl("get", resource, "-n", namespace, check=False).returncode != 0:
            return False  # the operator's chart (its CRDs) is not installed yet
        name = synced_backup_name(backup)
        key, _, value = str(backup.get("selector", "")).partition("=")
        labels = {key: value} if not backup.get("name") else {}  # found by label: the schedule's backups
        manifest = {"apiVersion": api_version, "kind": kind,
                    "metadata": {"name": name, "namespace": namespace, "labels": labels}}
        self.kubectl("apply", "--server-side", "--field-manager=dr-sandbox", "-f", "-",
                     input_text=json.dumps(manifest))
        status: dict[str, Any] = {"phase": str(backup.get("phase", "Completed"))} if kind == "Backup" else {}
        if api_version.startswith("longhorn.io/"):
            status = {"state": "Completed", "volumeName": name}
        self._patch_status(resource, namespace, name, status)
        self.notes.append(Note(namespace, kind, name,
                               f"the sandbox created {kind} {namespace}/{name} itself, as the backup target's sync "
                               "would (no operator runs here)"))
        return True
