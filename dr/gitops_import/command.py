"""`dr import`: read a repository, infer a draft graph, write it with its GitOps objects, and check it
with every rule plan, docs and preview run (the edge of import; inference is pure)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

from dr.core.graph_schema import SCHEMA_FILE, schema_text
from dr.core.text import one_line
from dr.errors import UsageError
from dr.gitops_import.appset import expand, helm_rendered_apps
from dr.gitops_import.checks import refusals
from dr.gitops_import.infer import Draft, dns_name, infer_argo, infer_flux
from dr.gitops_import.kustomize import resolve
from dr.gitops_import.repository import file_reader, list_paths, read_repository
from dr.gitops_import.write import render, review_items
from dr.graph_file import read_text

GROUPS = {"flux": ("kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io"), "argo": ("argoproj.io",)}


def say(line: str) -> None:
    print(one_line(line), file=sys.stderr)  # names and paths of the repository: no escape reaches the terminal


def read_draft(tool: str, root: Path, cluster: str | None) -> Draft:
    docs, skipped = read_repository(root)
    crds = [d.obj for d in docs if d.kind == "CustomResourceDefinition"]
    for line in skipped:
        say(f"import: {line}")
    if not any(d.group in GROUPS[tool] for d in docs):
        other = "argo" if tool == "flux" else "flux"
        wanted = "Flux Kustomization or HelmRelease" if tool == "flux" else "Argo CD Application"
        raise UsageError(f"{root}: no {wanted} found; is it a repository for the other controller "
                         f"(`dr import {other}`)?")
    notes: list[str] = []
    found_cluster = ""
    if tool == "argo":  # the Applications each ApplicationSet generates from this repository
        directories, files = list_paths(root)
        expanded = expand(docs, directories=directories, files=files, read=file_reader(root))
        # A YAML file a git generator reads was read (and maybe skipped) as part of the repository already.
        docs, notes = [*docs, *expanded.applications], [n for n in expanded.notes if n not in skipped]
        notes += helm_rendered_apps(docs, files, file_reader(root))
        for note in notes:
            say(f"import: {note}")
    if tool == "flux":  # what one cluster applies: namespaces, substitutions, shared objects per app
        resolved = resolve(docs, cluster)
        docs, found_cluster, notes = resolved.docs, resolved.cluster, resolved.notes
        for note in notes:
            say(f"import: {note}")
    name = dns_name(cluster or found_cluster or root.resolve().name)
    draft = infer_flux(docs, name) if tool == "flux" else infer_argo(docs, name)
    draft.review += notes
    draft.crds = crds
    return draft


def write_gitops_objects(draft: Draft, out: Path, *, force: bool) -> int:
    """The gate creates each GitOps object held before GitOps does: it needs the object's YAML, written
    beside the graph (gitops/<component>.yaml)."""
    objects_dir = out.parent / "gitops"
    targets = {name: objects_dir / f"{name}.yaml" for name, entry in draft.components.items()
               if entry.gitops_object is not None}
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing and not force:
        raise UsageError(f"{existing[0]} exists; pass --force to overwrite it")
    for name, target in targets.items():
        objects_dir.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(dict(draft.components[name].gitops_object or {}), sort_keys=False),
                          encoding="utf-8")
        draft.components[name].body["reconciled_by"]["manifest"] = f"gitops/{name}.yaml"
    return len(targets)


def run_import(tool: str, path: str, *, cluster: str | None, out: Path | None, force: bool) -> bool:
    """Import; True when plan, docs and preview accept the graph written."""
    for target in (out, out.parent / SCHEMA_FILE) if out is not None else ():
        if target.exists() and not force:
            raise UsageError(f"{'--out ' if target == out else ''}{target} exists; pass --force to overwrite it")
    draft = read_draft(tool, Path(path), cluster)
    objects = write_gitops_objects(draft, out, force=force) if out is not None else 0
    if out is not None:  # what the graph's first line points editors at
        (out.parent / SCHEMA_FILE).write_text(schema_text(), encoding="utf-8")
    text = render(draft, source=path)
    # The repository's own CRDs (many keep their operators' CRDs beside the apps) count as much as dr's.
    with tempfile.TemporaryDirectory(prefix="dr-import-crds-") as held:
        for number, crd in enumerate(draft.crds):
            Path(held, f"crd-{number}.yaml").write_text(yaml.safe_dump(dict(crd)), encoding="utf-8")
        if draft.crds:
            say(f"import: {len(draft.crds)} CustomResourceDefinitions in the repository are used to validate its "
                "custom resources")
        refused, warnings, unchecked = refusals(text, where=str(out) if out is not None else "<imported graph>",
                                                read_text=read_text, crd_dirs=(Path(held),))
    if out is not None:
        out.write_text(text, encoding="utf-8")
        say(f"wrote {out}: {len(draft.components)} components, {len(draft.backups)} backups, {objects} GitOps "
            f"objects under {out.parent / 'gitops'}, and {SCHEMA_FILE} for editors")
    else:
        sys.stdout.write(text)
    say(f"{len(review_items(text))} decisions marked `# REVIEW:` are yours to make; {warnings} warnings from "
        "`dr plan`.")
    for note in unchecked:
        say(f"not validated: {note}")
    if refused:
        say(f"not accepted: `dr plan`, `dr docs` or `dr preview` would refuse it until these {len(refused)} are "
            "fixed:")
        for line in refused:
            say(f"  {line}")
        return False
    say("accepted: dr plan, docs and preview accept it in prod and drill mode (after your review, run `dr plan`)"
        + (f"; {len(unchecked)} kind(s) of custom resource not validated (no CRD: above)." if unchecked else "."))
    return True



