"""The objects of a Flux repository as one cluster would apply them (pure).

A repository's files are not what Flux applies. This module starts at a cluster's entry point (the
Flux Kustomization that no other one applies, usually `flux-system` syncing `clusters/<name>`) and
follows what Flux and Kustomize would build: each Flux Kustomization's `path` (its kustomization.yaml's
`resources` and `components`, recursively, or every YAML file under it when it has none), with the
`namespace:` of each kustomization.yaml (the outermost wins), the Kustomization's `targetNamespace`,
and its post-build substitutions (`postBuild.substitute`, and `substituteFrom` ConfigMaps that are plain
in the repository). Shared objects that an app includes from outside its path (the backup and restore
objects most repositories keep once) are imported once per app that includes them, substituted.

Secret values are never read: a variable only a Secret defines stays unresolved, and an object whose
name still holds `${...}` is not imported but listed. Objects no Kustomization of the cluster applies
(another cluster's, an `archive/` directory) are counted and left out.
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dr.errors import UsageError
from dr.gitops_import.infer import Doc

KUSTOMIZE = "kustomize.config.k8s.io"
KUSTOMIZE_KINDS = ("Kustomization", "Component")  # kustomization.yaml files: how to build, never applied
FLUX_KUSTOMIZE = "kustomize.toolkit.fluxcd.io"
# Flux's post-build substitution: ${var}, ${var:=default} and ${var:-default}.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[=-]([^}]*))?\}")


@dataclass
class Resolved:
    cluster: str  # the name of the cluster directory whose entry point was followed ("" if none)
    docs: list[Doc]
    notes: list[str] = field(default_factory=list)


def is_kustomize_file(doc: Doc) -> bool:
    return doc.group == KUSTOMIZE and doc.kind in KUSTOMIZE_KINDS


def _join(directory: str, relative: str) -> str:
    joined = posixpath.normpath(posixpath.join(directory, relative.strip()))
    return "" if joined == "." else joined


def _clean(path: str) -> str:
    return _join("", path) if path else ""


def _under(path: str, directory: str) -> bool:
    return directory == "" or path == directory or path.startswith(directory + "/")


def substitute(value: Any, variables: Mapping[str, str]) -> Any:
    """Flux's post-build substitution on every string (a variable without a value and without a default
    is left as it is, so that it can be reported)."""
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in variables:
                return variables[name]
            return default if default is not None else match.group(0)
        return _VARIABLE.sub(one, value)
    if isinstance(value, Mapping):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    return value


class _Repository:
    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs
        self.kustomizations = {posixpath.dirname(d.path): d for d in docs if is_kustomize_file(d)}
        self.by_path: dict[str, list[int]] = {}
        for index, doc in enumerate(docs):
            self.by_path.setdefault(doc.path, []).append(index)
        self._built: dict[tuple[str, str | None], list[tuple[int, str | None]]] = {}
        self._building: set[str] = set()

    def build(self, path: str, namespace: str | None = None) -> list[tuple[int, str | None]]:
        """(doc index, namespace kustomize gives it) of what building `path` yields, each once.

        Each (path, namespace) is built once and remembered: kustomizations that list each other twice per
        level would otherwise be built 2^n times. A kustomization that includes itself, directly or
        through others, yields nothing the second time (kustomize refuses such a cycle)."""
        key = (path, namespace)
        if key in self._built:
            return self._built[key]
        if path in self._building:
            return []
        self._building.add(path)
        try:
            built = list(dict.fromkeys(self._build(path, namespace)))
        finally:
            self._building.discard(path)
        self._built[key] = built
        return built

    def _build(self, path: str, namespace: str | None) -> list[tuple[int, str | None]]:
        kustomization = self.kustomizations.get(path)
        if kustomization is None:  # Flux generates one holding every manifest under the path
            return [(i, namespace) for i, d in enumerate(self.docs) if _under(d.path, path)
                    and not is_kustomize_file(d)]
        own = kustomization.obj.get("namespace")
        namespace = namespace or (own if isinstance(own, str) and own else None)  # the outer one wins
        built: list[tuple[int, str | None]] = []
        for key in ("resources", "components"):
            entries = kustomization.obj.get(key)
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, str) or "://" in entry:
                    continue  # a remote base is not in the repository
                target = _join(path, entry)
                files = self.by_path.get(target)
                built += [(i, namespace) for i in files] if files else self.build(target, namespace)
        return built

    def variables(self, flux: Doc, notes: list[str]) -> dict[str, str]:
        post = flux.spec.get("postBuild") if isinstance(flux.spec.get("postBuild"), Mapping) else {}
        assert isinstance(post, Mapping)
        variables: dict[str, str] = {}
        for ref in post.get("substituteFrom") or []:
            if not isinstance(ref, Mapping):
                continue
            kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
            found = next((d for d in self.docs if d.is_("", "ConfigMap") and d.name == name
                          and d.namespace in ("", flux.namespace)), None) if kind == "ConfigMap" else None
            if found is None:
                notes.append(f"Kustomization {flux.name}: the variables of {kind} {name} are not read "
                             + ("(a Secret's values never are)" if kind == "Secret" else "(not in the repository)"))
                continue
            variables.update({str(k): str(v) for k, v in (found.obj.get("data") or {}).items()})
        variables.update({str(k): str(v) for k, v in (post.get("substitute") or {}).items()})
        return variables


def _applied(flux: Doc, doc: Doc, namespace: str | None, variables: Mapping[str, str]) -> Doc:
    obj = copy.deepcopy(dict(doc.obj))
    target = flux.spec.get("targetNamespace")
    namespace = str(target) if target else namespace
    if namespace:
        obj.setdefault("metadata", {})["namespace"] = namespace
    path = _clean(str(flux.spec.get("path", "")))
    if not _under(doc.path, path):  # a shared object included from outside: one copy per app
        doc = Doc(f"{path}/{posixpath.basename(posixpath.dirname(doc.path))}/{posixpath.basename(doc.path)}",
                  doc.obj)
    return Doc(doc.path, substitute(obj, variables))


def entry_points(docs: list[Doc]) -> dict[str, Doc]:
    """cluster name -> the Flux Kustomization no other one applies (its path names the cluster)."""
    repository = _Repository(docs)
    fluxes = [i for i, d in enumerate(docs) if d.is_(FLUX_KUSTOMIZE, "Kustomization") and d.spec.get("path")]
    applied_by_other = {i for f in fluxes for i, _ in repository.build(_clean(str(docs[f].spec["path"]))) if i != f}
    roots = [docs[i] for i in fluxes if i not in applied_by_other]
    return {posixpath.basename(_clean(str(d.spec["path"]))) or d.name: d for d in roots}


def resolve(docs: list[Doc], cluster: str | None = None) -> Resolved:
    roots = entry_points(docs)
    if not roots:
        return Resolved(cluster="", docs=docs, notes=["no Flux Kustomization with a path: every object is read as "
                                                      "it is written"])
    if cluster is None and len(roots) > 1:
        raise UsageError(f"the repository holds {len(roots)} clusters ({', '.join(sorted(roots))}): choose one "
                         "with --cluster NAME")
    if cluster is not None and cluster not in roots:
        if len(roots) == 1:
            cluster = None  # one cluster: --cluster only names the graph
        else:
            raise UsageError(f"no cluster {cluster!r} in the repository; it holds {', '.join(sorted(roots))}")
    name = cluster or next(iter(roots))
    repository = _Repository(docs)
    notes: list[str] = []
    out: dict[tuple[str, str], Doc] = {}  # (the applying Kustomization's path, the object's path + identity)
    reached: set[int] = set()
    queue = [roots[name]]
    done: set[str] = set()
    while queue:
        flux = queue.pop(0)
        path = _clean(str(flux.spec.get("path", "")))
        key = f"{flux.namespace}/{flux.name}"
        if key in done:
            continue
        done.add(key)
        variables = repository.variables(flux, notes)
        for index, namespace in repository.build(path):
            reached.add(index)
            applied = _applied(flux, docs[index], namespace, variables)
            identity = (path, f"{applied.path}#{applied.kind}/{applied.namespace}/{applied.name}")
            out.setdefault(identity, applied)
            if applied.is_(FLUX_KUSTOMIZE, "Kustomization") and applied.spec.get("path"):
                queue.append(applied)
    result: list[Doc] = []
    for doc in out.values():
        if "${" in doc.name or "${" in doc.namespace:
            notes.append(f"{doc.path}: {doc.kind} {doc.name} is not imported: its name still holds a variable "
                         "no Kustomization substitutes")
            continue
        result.append(doc)
    unreached = [d for i, d in enumerate(docs) if i not in reached and not is_kustomize_file(d)]
    if unreached:
        where = sorted({d.path.split("/")[0] for d in unreached})
        notes.append(f"{len(unreached)} objects that no Kustomization of cluster {name!r} applies were left out "
                     f"(under {', '.join(where)})")
    return Resolved(cluster=name, docs=result, notes=notes)
