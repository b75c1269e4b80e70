"""The real upstream CustomResourceDefinitions: where they are, and a JSON schema per kind from them.

dr ships none of its own and reads nothing beside the checkout. It looks, in this order (the first place
that defines a kind wins):

1. the directories the caller names: `dr preview --crds DIR`, the graph's `crds:` entries, a GitOps
   repository being imported, the CRDs read from a live cluster (`dr preview --kubeconfig FILE`);
2. `DR_CRDS_DIR` (directories separated by `:`);
3. the CRDs `make toolchain` read from each operator's own Go module at a pinned release
   (`<toolchain cache>/crds/<project>-<version>/`, see toolchain/build.sh).

A file may hold several documents (Longhorn ships all its CRDs in one); only CustomResourceDefinitions
count. Every served version's `openAPIV3Schema` becomes a strict JSON schema (unknown fields are errors,
as with `kubectl apply --validate=strict`, except where the CRD preserves unknown fields). Each CRD is
also kept as the object to install (`CrdKind.definition`): upstream files that are Helm templates
(cert-manager's) carry label values such as `{{ .Release.Name }}` that the API server refuses, so the
definition keeps the name, the plain labels and annotations, and the spec.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml


def fetched_dir() -> Path:
    """Where `make toolchain` puts the CRDs it read from the operators' Go modules."""
    from dr.kube.toolchain import cache_root

    return cache_root() / "crds"


def default_dirs() -> list[Path]:
    """Where CRDs are looked up when nobody says: DR_CRDS_DIR, then the upstream CRDs `make toolchain`
    read from Go modules (newest release of a project first)."""
    dirs = [Path(p) for p in os.environ.get("DR_CRDS_DIR", "").split(os.pathsep) if p]
    fetched = fetched_dir()
    if fetched.is_dir():
        dirs += sorted((d for d in fetched.iterdir() if d.is_dir()), key=_release_order)
    return dirs


def _release_order(directory: Path) -> tuple[str, tuple[int, ...]]:
    """`velero-1.14.0` sorts after `velero-1.15.2`: the newest release of a project first."""
    name, _, version = directory.name.rpartition("-")
    numbers = tuple(-int(n) for n in re.findall(r"\d+", version))
    return (name or directory.name, numbers)


@dataclass(frozen=True)
class CrdKind:
    group: str
    version: str
    kind: str
    plural: str
    path: Path              # the file it was read from
    schema: Mapping[str, Any]
    definition: Mapping[str, Any]  # the CustomResourceDefinition to install (template labels dropped)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"


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


# libyaml's safe loader when PyYAML has it: CRD files are large (Longhorn's and Argo CD's run to 1 MB)
# and the pure-Python loader took seconds to index them all.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def installable(document: Mapping[str, Any]) -> dict[str, Any]:
    """The CRD as the API server takes it: name, plain labels and annotations, spec. A label whose value
    is template text (`{{ template "cert-manager.name" . }}`) or not a label value at all is dropped, and
    so is an annotation holding template text."""
    meta = document.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()
              if isinstance(v, str) and len(v) <= 63 and _LABEL_VALUE.fullmatch(v)}
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items() if "{{" not in str(v)}
    metadata: dict[str, Any] = {"name": str(meta.get("name", ""))}
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": str(document.get("apiVersion", "apiextensions.k8s.io/v1")),
            "kind": "CustomResourceDefinition", "metadata": metadata, "spec": copy.deepcopy(document["spec"])}


def kinds_of(document: Any, path: Path) -> list[CrdKind]:
    """The served versions of one CustomResourceDefinition document ([] for any other document)."""
    if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
        return []
    spec = document.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("names"), dict):
        return []
    definition = installable(document)
    kinds = []
    for version in spec.get("versions", []):
        raw = (version.get("schema") or {}).get("openAPIV3Schema")
        if raw is None or not version.get("served", True):
            continue
        kinds.append(CrdKind(group=spec["group"], version=version["name"], kind=spec["names"]["kind"],
                             plural=spec["names"]["plural"], path=path, schema=_strict(copy.deepcopy(raw), top=True),
                             definition=definition))
    return kinds


def load_crd_file(path: Path) -> list[CrdKind]:
    """Every CRD of a file (several documents are fine); a file that is not YAML holds none."""
    try:
        documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return []
    return [kind for document in documents for kind in kinds_of(document, path)]


@cache
def _index(dirs: tuple[Path, ...]) -> dict[tuple[str, str], CrdKind]:
    index: dict[tuple[str, str], CrdKind] = {}
    for directory in dirs:
        files = [directory] if directory.is_file() else sorted(directory.rglob("*.y*ml"))
        for path in files:
            for crd in load_crd_file(path):
                index.setdefault((crd.api_version, crd.kind), crd)
    return index


def _dirs(extra_dirs: Iterable[Path]) -> tuple[Path, ...]:
    return tuple(Path(d).resolve() for d in (*extra_dirs, *default_dirs()))


def find(api_version: str, kind: str, *, extra_dirs: Iterable[Path] = ()) -> CrdKind | None:
    return _index(_dirs(extra_dirs)).get((api_version, kind))


def of_group(group: str, *, extra_dirs: Iterable[Path] = ()) -> list[CrdKind]:
    """One entry per CRD of an API group (its first served version), in name order."""
    seen: dict[str, CrdKind] = {}
    for crd in _index(_dirs(extra_dirs)).values():
        if crd.group == group:
            seen.setdefault(crd.name, crd)
    return [seen[name] for name in sorted(seen)]


def searched(extra_dirs: Iterable[Path] = ()) -> list[str]:
    """Where dr looked, for messages: the directories named, DR_CRDS_DIR's, and the toolchain's CRDs as one
    entry naming its releases (or what fills it, when `make toolchain` has not run)."""
    fetched = fetched_dir()
    named = [str(d) for d in (*extra_dirs, *default_dirs()) if Path(d).parent != fetched]
    releases = [d.name for d in default_dirs() if d.parent == fetched]
    if releases:
        named.append(f"{fetched} ({', '.join(releases)})")
    else:
        named.append(f"{fetched} (empty: `make toolchain` fetches the operators' CRDs into it)")
    return named


def crds_from_cluster(kubeconfig: Path, into: Path, *, timeout_s: float = 60) -> int:
    """The CustomResourceDefinitions a live cluster serves, written one per file under `into` (a directory
    the caller owns); returns how many. Raises DrError with kubectl's reason when the cluster cannot be read."""
    import json
    import subprocess

    from dr.errors import DrError
    from dr.kube.toolchain import Toolchain

    kubectl = Toolchain.find().which("kubectl") or "kubectl"
    try:
        done = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "get", "customresourcedefinitions",
                               "-o", "json"], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DrError(f"cannot read the CRDs of the cluster of {kubeconfig}: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["kubectl failed"])[-1]
        raise DrError(f"cannot read the CRDs of the cluster of {kubeconfig}: {reason}")
    items = json.loads(done.stdout).get("items", [])
    into.mkdir(parents=True, exist_ok=True)
    written = 0
    for item in items:
        if item.get("kind") != "CustomResourceDefinition" or not isinstance(item.get("spec"), dict):
            continue
        name = str(item.get("metadata", {}).get("name", ""))
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name):
            continue  # a name that is not a DNS subdomain would not be a file name dr chooses
        (into / f"{name}.yaml").write_text(yaml.safe_dump(installable(item)), encoding="utf-8")
        written += 1
    return written
