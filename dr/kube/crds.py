"""The real upstream CustomResourceDefinitions: where they are, and a JSON schema per kind from them.

dr ships none of its own. They come from the project's shared CRD directory (`../shared/crds` beside
the checkout, see its SOURCES.md), from `DR_CRDS_DIR`, and from any directory a user adds for the
custom resources of their own cluster. Each file holds one CRD; every served version's
`openAPIV3Schema` becomes a strict JSON schema (unknown fields are errors, as with
`kubectl apply --validate=strict`, except where the CRD preserves unknown fields).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_dirs() -> list[Path]:
    """Where CRDs are looked up when nobody says: DR_CRDS_DIR, then the upstream CRDs `make toolchain`
    read from Go modules (CloudNativePG 1.26, for the barman-cloud plugin), then the shared directory
    beside the checkout. The first directory that defines a kind wins."""
    from dr.kube.toolchain import cache_root

    dirs = [Path(p) for p in os.environ.get("DR_CRDS_DIR", "").split(os.pathsep) if p]
    fetched = cache_root() / "crds"
    if fetched.is_dir():
        dirs += sorted((d for d in fetched.iterdir() if d.is_dir()), reverse=True)
    shared = REPO_ROOT.parent / "shared" / "crds"
    if shared.is_dir():
        dirs.append(shared)
    return dirs


@dataclass(frozen=True)
class CrdKind:
    group: str
    version: str
    kind: str
    plural: str
    path: Path
    schema: Mapping[str, Any]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def _strict(schema: Any, *, top: bool = False) -> Any:
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) if k not in ("properties", "items", "additionalProperties") else v
           for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if top:  # the API server always allows these, whether or not the CRD's schema lists them
            out["properties"]["metadata"] = {"type": "object"}
            out["properties"].setdefault("apiVersion", {"type": "string"})
            out["properties"].setdefault("kind", {"type": "string"})
        if (not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema):
            out["additionalProperties"] = False
    if isinstance(schema.get("items"), dict):
        out["items"] = _strict(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(schema["additionalProperties"])
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


# libyaml's safe loader when PyYAML has it: CRD files are large (Longhorn's and kopiur's run to 200 KB)
# and the pure-Python loader took seconds to index them all.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_crd_file(path: Path) -> list[CrdKind]:
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
        return []
    spec = document["spec"]
    kinds = []
    for version in spec.get("versions", []):
        raw = (version.get("schema") or {}).get("openAPIV3Schema")
        if raw is None or not version.get("served", True):
            continue
        kinds.append(CrdKind(group=spec["group"], version=version["name"], kind=spec["names"]["kind"],
                             plural=spec["names"]["plural"], path=path, schema=_strict(copy.deepcopy(raw), top=True)))
    return kinds


@cache
def _index(dirs: tuple[Path, ...]) -> dict[tuple[str, str], CrdKind]:
    index: dict[tuple[str, str], CrdKind] = {}
    for directory in dirs:
        for path in sorted(directory.rglob("*.y*ml")):
            for crd in load_crd_file(path):
                index.setdefault((crd.api_version, crd.kind), crd)
    return index


def find(api_version: str, kind: str, *, extra_dirs: Iterable[Path] = ()) -> CrdKind | None:
    dirs = tuple(Path(d).resolve() for d in (*extra_dirs, *default_dirs()))
    return _index(dirs).get((api_version, kind))


def searched(extra_dirs: Iterable[Path] = ()) -> list[str]:
    return [str(d) for d in (*extra_dirs, *default_dirs())] or ["(none: ../shared/crds is missing; set DR_CRDS_DIR)"]
