"""Schema checks for the Kubernetes objects dr renders.

Core kinds are checked with kubernetes-validate against the OpenAPI schemas of the graph's
Kubernetes version; custom resources against the JSON schemas in `dr/schemas/` (one file per
group/version/kind, each noting the release of the CRD it was written from). Pure apart from reading
those schema files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

SCHEMA_DIR = Path(__file__).parent / "schemas"


def _schema_file(api_version: str, kind: str) -> Path:
    group_version = api_version.replace("/", "_")
    return SCHEMA_DIR / f"{group_version}_{kind}.json"


@cache
def _custom_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    path = _schema_file(api_version, kind)
    if not path.is_file():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def is_core(api_version: str) -> bool:
    group = api_version.split("/")[0] if "/" in api_version else ""
    return "." not in group or group.endswith(".k8s.io")


def validate_object(manifest: Mapping[str, Any], *, kubernetes: str) -> list[str]:
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
    schema = _custom_schema(api_version, kind)
    if schema is None:
        return [f"no schema for custom resource {api_version} {kind} in {SCHEMA_DIR}; add one"]
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'.'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
            for error in sorted(validator.iter_errors(dict(manifest)), key=lambda e: list(e.absolute_path))]
