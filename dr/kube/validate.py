"""Schema checks for the Kubernetes objects dr renders.

Core kinds are checked with kubernetes-validate against the OpenAPI schemas of the graph's
Kubernetes version; custom resources against the real upstream CRDs (`dr.kube.crds`: the shared CRD
directory, DR_CRDS_DIR, or directories the user adds), strictly: an unknown field is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

from dr.kube import crds


def is_core(api_version: str) -> bool:
    """Built into the API server: no group, or a *.k8s.io group that Kubernetes itself serves."""
    group = api_version.split("/")[0] if "/" in api_version else ""
    return "." not in group or (group.endswith(".k8s.io") and group.split(".")[0] in _KUBERNETES_GROUPS)


_KUBERNETES_GROUPS = {"admissionregistration", "apiextensions", "apiregistration", "authentication",
                      "authorization", "certificates", "coordination", "discovery", "events", "flowcontrol",
                      "internal", "networking", "node", "policy", "rbac", "resource", "scheduling", "storage",
                      "storagemigration"}


def validate_object(manifest: Mapping[str, Any], *, kubernetes: str, crd_dirs: Iterable[Path] = ()) -> list[str]:
    """Problems with one object ([] when it validates)."""
    api_version, kind = str(manifest.get("apiVersion", "")), str(manifest.get("kind", ""))
    if not api_version or not kind:
        return ["apiVersion and kind are required"]
    if is_core(api_version):
        try:
            kubernetes_validate.validate(dict(manifest), kubernetes, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or "(top)"
            return [f"{path}: {exc.message}"]
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.utils.VersionNotSupportedError):
            return [f"no Kubernetes {kubernetes} schema for {api_version} {kind}"]
        return []
    crd = crds.find(api_version, kind, extra_dirs=crd_dirs)
    if crd is None:
        return [f"no CustomResourceDefinition for {api_version} {kind} in {', '.join(crds.searched(crd_dirs))}; "
                "add the CRD file of the operator's release to one of them"]
    validator = jsonschema.Draft202012Validator(dict(crd.schema))
    return [f"{'.'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message} "
            f"(CRD {crd.path.parent.name}/{crd.path.name})"
            for error in sorted(validator.iter_errors(dict(manifest)), key=lambda e: list(e.absolute_path))]
