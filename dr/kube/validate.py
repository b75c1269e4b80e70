"""Schema checks for the Kubernetes objects dr renders.

Core kinds are checked with kubernetes-validate against the OpenAPI schemas of the graph's
Kubernetes version; custom resources against the real upstream CRDs (`dr.kube.crds`: the ones `make
toolchain` read from the operators' Go modules, DR_CRDS_DIR, or directories the user adds), strictly: an
unknown field is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

from dr.core.kube_objects import is_builtin
from dr.kube import crds


def validate_object(manifest: Mapping[str, Any], *, kubernetes: str, crd_dirs: Iterable[Path] = ()) -> list[str]:
    """Problems with one object ([] when it validates)."""
    api_version, kind = str(manifest.get("apiVersion", "")), str(manifest.get("kind", ""))
    if not api_version or not kind:
        return ["apiVersion and kind are required"]
    if is_builtin(api_version):
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


@dataclass(frozen=True)
class Validation:
    """What a schema check of many objects found: the problems of those it could check, and per custom
    resource kind it could not (no CRD anywhere dr looked), how many objects and why."""

    problems: tuple[str, ...]
    not_validated: Mapping[str, int]  # "apiVersion Kind" -> objects of it left unchecked
    searched: tuple[str, ...]

    def notes(self) -> list[str]:
        """One line per kind left unchecked: which, how many, where dr looked, how to give its CRD."""
        where = ", ".join(self.searched)
        return [f"{key} ({count} object{'s' if count != 1 else ''}): no CustomResourceDefinition for it in {where}; "
                "give its CRD with --crds DIR, the graph's crds:, DR_CRDS_DIR, or --kubeconfig FILE (read from the "
                "cluster)" for key, count in sorted(self.not_validated.items())]


def validate_objects(objects: Iterable[tuple[str, Mapping[str, Any]]], *, kubernetes: str,
                     crd_dirs: Iterable[Path] = ()) -> Validation:
    """Every (title, manifest) checked; a custom resource whose CRD is nowhere is counted as not validated,
    not as invalid: dr cannot know its schema, and says so per kind."""
    dirs = tuple(crd_dirs)
    problems: list[str] = []
    unchecked: dict[str, int] = {}
    for title, manifest in objects:
        api_version, kind = str(manifest.get("apiVersion", "")), str(manifest.get("kind", ""))
        if api_version and kind and not is_builtin(api_version) and crds.find(api_version, kind,
                                                                              extra_dirs=dirs) is None:
            key = f"{api_version} {kind}"
            unchecked[key] = unchecked.get(key, 0) + 1
            continue
        problems += [f"{title}: {problem}" for problem in validate_object(manifest, kubernetes=kubernetes,
                                                                          crd_dirs=dirs)]
    return Validation(tuple(problems), unchecked, tuple(crds.searched(dirs)))
