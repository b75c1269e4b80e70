"""The Kubernetes objects dr renders itself, and the small helpers every restore tool builds them with.

Pure vocabulary shared by the resource plan (`dr.core.resources`) and the restore tools
(`dr.core.restore_tools`): no I/O, no Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dr.core.leaks import JsonPath


@dataclass(frozen=True)
class KubeObject:
    """One Kubernetes object dr renders (not the ones a Helm chart renders inside the cluster)."""

    manifest: Mapping[str, Any]
    data_bearing: bool = False
    # Fields that name a production backup a drill restores from, read-only: exempt from the leak scan.
    restore_sources: tuple[JsonPath, ...] = ()

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.manifest.get("metadata", {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.manifest.get("metadata", {}).get("namespace", ""))

    @property
    def title(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


class MissingInput(ValueError):
    """A restore or GitOps step lacks a value it cannot be rendered without (reported with its line)."""


def need(values: Mapping[str, Any], key: str, component: str, why: str) -> Any:
    if key not in values:
        raise MissingInput(f"component {component!r}: vars.{key} is required ({why})")
    return values[key]


def labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": "dr", "dr.example.com/component": component}


def endpoint(url: Any) -> dict[str, str]:
    return {"endpointURL": str(url)} if url else {}


def api_group(api_version: str) -> str:
    """The API group of an apiVersion: `velero.io` of `velero.io/v1`, "" for the core group (`v1`)."""
    return api_version.split("/")[0] if "/" in api_version else ""


# The API groups Kubernetes itself serves under *.k8s.io (an operator's group may end in k8s.io too:
# externaldns.k8s.io is a CRD).
_KUBERNETES_GROUPS = frozenset({
    "admissionregistration", "apiextensions", "apiregistration", "authentication", "authorization",
    "certificates", "coordination", "discovery", "events", "flowcontrol", "internal", "networking", "node",
    "policy", "rbac", "resource", "scheduling", "storage", "storagemigration"})


def is_builtin(api_version: str) -> bool:
    """Served by every API server: no group, a dotless one (`apps`, `batch`), or a *.k8s.io group that
    Kubernetes itself serves. Anything else needs a CustomResourceDefinition."""
    group = api_group(api_version)
    return "." not in group or (group.endswith(".k8s.io") and group.split(".")[0] in _KUBERNETES_GROUPS)


def group_kind(manifest: Mapping[str, Any]) -> tuple[str, str]:
    """(group, kind) of a manifest: the key every per-kind table uses (two tools both have a `Restore`)."""
    return api_group(str(manifest.get("apiVersion", ""))), str(manifest.get("kind", ""))


def kubectl_resource(api_version: str, kind: str, *, plural: bool = False) -> str:
    """How kubectl names a kind unambiguously: `kind.group` (`cluster.postgresql.cnpg.io`), or the kind
    alone for the core group; `plural` for listing (`backups.velero.io`)."""
    group = api_group(api_version)
    name = kind.lower() + ("s" if plural else "")
    return f"{name}.{group}" if group else name


def claim(name: str, namespace: str, size: str, component: str, storage_class: str = "") -> KubeObject:
    """A ReadWriteOnce PersistentVolumeClaim a restore writes into, data-bearing."""
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    manifest = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": namespace, "labels": labels(component)}, "spec": spec}
    if storage_class:
        spec["storageClassName"] = storage_class
    return KubeObject(manifest=manifest, data_bearing=True)
