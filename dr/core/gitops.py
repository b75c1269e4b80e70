"""The rules for GitOps-owned components and for where a rebuild pulls from.

A component `reconciled_by` a Flux Kustomization or HelmRelease, or an Argo CD Application, is
installed by that object, not by dr: dr holds the object until the component's restores are done,
then resumes it. Three rules follow from that:

- the reconciler (`controller`) is a component of the graph, in the gitops layer;
- nothing the rebuild pulls from (a Helm repository, a GitOps source) may be served by a component
  that comes back only later, or by the component itself: the Gitea/Argo CD incident, where Argo CD
  could not sync because its git server lived in the broken cluster;
- in a drill, a GitOps object the drill keeps reconciles everything it owns: if it also owns a
  `prod_only` component, GitOps would deploy that production component anyway, unless the drill
  points the object at a drill path.

Pure: the spec in, diagnostics out.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from dr.core.spec import LAYER_INDEX, Component, GraphSpec, HelmAction, ManifestsAction, ReconciledBy, did_you_mean
from dr.errors import Diagnostic

MIRROR_HINT = ("serve it from outside the cluster: a mirror (a git mirror or chart repository on the NAS, a "
               "hosted copy) that the rebuild can reach before anything is restored; see docs/gitops.md")


def pulls(component: Component, spec: GraphSpec | None = None,
          read_text: Callable[[Path], str] | None = None) -> Iterator[tuple[tuple[str, ...], str]]:
    """(field path, URL) of every source the component's rebuild pulls from: its Helm repository, its
    GitOps source, and the registries of the container images in its manifest files."""
    if isinstance(component.action, HelmAction):
        yield ("helm", "repo"), component.action.repo
    if component.reconciled_by is not None and component.reconciled_by.source:
        yield ("reconciled_by", "source"), component.reconciled_by.source
    if isinstance(component.action, ManifestsAction) and spec is not None and read_text is not None:
        for i, manifest in enumerate(component.action.paths):
            try:
                documents = list(yaml.safe_load_all(read_text(spec.base_dir / manifest)))
            except (OSError, yaml.YAMLError):
                continue  # reported by the graph's reference checks
            for image in sorted({i for d in documents for i in _images(d)}):
                yield ("manifests", str(i)), image_registry_url(image)


def _images(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in ("containers", "initContainers", "ephemeralContainers") and isinstance(item, list):
                yield from (str(c["image"]) for c in item if isinstance(c, Mapping) and isinstance(c.get("image"), str))
            else:
                yield from _images(item)
    elif isinstance(value, list):
        for item in value:
            yield from _images(item)


def image_registry_url(image: str) -> str:
    """Where an image is pulled from, as a URL: `registry.lab:5000/app:1` -> https://registry.lab:5000/app;
    a bare `nginx` is Docker Hub's."""
    name = image.split("@", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = "docker.io", name if rest else f"library/{name}"
    return f"https://{host}/{path.rsplit(':', 1)[0] if ':' in path.rsplit('/', 1)[-1] else path}"


def _normalise(url: str) -> str:
    """host/path of a URL, whatever its spelling: https://h/p, ssh://git@h/p, git@h:p, oci://h/p."""
    if "://" in url:
        url = url.split("://", 1)[1]
    host, _, rest = url.partition("/")
    host = host.rsplit("@", 1)[-1]
    if ":" in host and not rest and not host.split(":", 1)[1].isdigit():  # scp-like git@h:org/repo
        host, rest = host.split(":", 1)
    elif ":" in host and not host.split(":", 1)[1].isdigit():
        host, first = host.split(":", 1)
        rest = f"{first}/{rest}"
    return f"{host.lower()}/{rest}".rstrip("/")


def served_by(spec: GraphSpec, url: str) -> list[tuple[str, str]]:
    """(component, prefix) for each component that declares it serves `url`."""
    target = _normalise(url)
    return [(name, prefix) for name, c in spec.components.items() for prefix in c.serves
            if target == _normalise(prefix) or target.startswith(_normalise(prefix) + "/")]


def gitops_problems(spec: GraphSpec, read_text: Callable[[Path], str] | None = None) -> list[Diagnostic]:
    """The controller rule and the bootstrap-sources rule, in any mode."""
    problems: list[Diagnostic] = []
    gitops_layer = LAYER_INDEX["gitops"]
    for name, component in spec.components.items():
        owner = component.reconciled_by
        if owner is not None:
            line = spec.line_of("components", name, "reconciled_by", "controller")
            controller = spec.components.get(owner.controller)
            if controller is None:
                hint = did_you_mean(owner.controller, spec.components)
                problems.append(Diagnostic(spec.path, line, f"component {name!r}: reconciled_by controller "
                                           f"{owner.controller!r} is not a component{hint}; "
                                           "name the component that installs Flux or Argo CD"))
            elif controller.layer_index != gitops_layer:
                problems.append(Diagnostic(spec.path, line, f"component {name!r}: reconciled_by controller "
                                           f"{owner.controller!r} is in layer {controller.layer}, not gitops; "
                                           "name the component that installs Flux or Argo CD"))
        for field, url in pulls(component, spec, read_text):
            for server, prefix in served_by(spec, url):
                line = spec.line_of("components", name, *field)
                if server == name:
                    problems.append(Diagnostic(spec.path, line, (
                        f"component {name!r} is rebuilt from {url}, which it serves itself ({prefix}): it can "
                        f"never come back after a loss; {MIRROR_HINT}")))
                elif server not in spec.ancestors(name):
                    problems.append(Diagnostic(spec.path, line, (
                        f"component {name!r} pulls from {url}, served by component {server!r} ({prefix}), which "
                        f"the rebuild does not bring back before {name!r}; {MIRROR_HINT}, or make {name!r} "
                        f"depend on {server!r}")))
    return problems


def _same_object(a: ReconciledBy, b: ReconciledBy) -> bool:
    return (a.kind, a.namespace, a.name) == (b.kind, b.namespace, b.name)


def drill_follow_problems(spec: GraphSpec, kept: Mapping[str, Component]) -> list[Diagnostic]:
    """In drill mode: a kept GitOps object that also owns a prod_only component deploys it anyway."""
    problems = []
    for name, dropped in spec.components.items():
        if not dropped.prod_only or dropped.reconciled_by is None:
            continue
        for keeper, component in kept.items():
            owner = component.reconciled_by
            if owner is None or not _same_object(owner, dropped.reconciled_by):
                continue
            drill = component.drill.reconciled_by
            moved = bool(drill.get("substitutions")) or any(
                drill.get(k, getattr(owner, k)) != getattr(owner, k) for k in ("source", "path"))
            if moved or (owner.source, owner.path) != (dropped.reconciled_by.source, dropped.reconciled_by.path):
                continue
            problems.append(Diagnostic(spec.path, spec.line_of("components", keeper, "reconciled_by"), (
                f"component {keeper!r} in drill mode: its {owner.ref} also reconciles the prod_only component "
                f"{name!r}, so GitOps would deploy {name!r} in the drill anyway; point the drill at a path "
                f"without it (drill: {{reconciled_by: {{path: ...}}}} on {keeper!r}) or give {name!r} its own "
                "GitOps object")))
            break
    return problems


# -- gating: hold a GitOps object until its component's data is back, then resume it -----------------
HELD_AUTOMATED = "dr.example.com/held-automated"  # where an Argo CD Application's automated policy waits


def held(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The GitOps object as dr creates it before the restore: a Flux object suspended, an Argo CD
    Application without automated sync (its policy kept in an annotation for the release)."""
    obj = copy.deepcopy(dict(manifest))
    spec = obj.setdefault("spec", {})
    if obj.get("kind") == "Application":
        automated = spec.get("syncPolicy", {}).pop("automated", None)
        if automated is not None:
            obj.setdefault("metadata", {}).setdefault("annotations", {})[HELD_AUTOMATED] = json.dumps(
                automated, sort_keys=True)
    else:
        spec["suspend"] = True
    return obj


def release_patch(live: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that lets the controller reconcile the held object."""
    if live.get("kind") == "Application":
        stashed = live.get("metadata", {}).get("annotations", {}).get(HELD_AUTOMATED)
        automated = json.loads(stashed) if stashed else {}
        return {"metadata": {"annotations": {HELD_AUTOMATED: None}},
                "spec": {"syncPolicy": {"automated": automated}}}
    return {"spec": {"suspend": False}}


def is_held(live: Mapping[str, Any]) -> bool:
    spec = live.get("spec", {})
    if live.get("kind") == "Application":
        return "automated" not in spec.get("syncPolicy", {})
    return bool(spec.get("suspend"))


def is_ready(live: Mapping[str, Any]) -> bool:
    """Flux: the Ready condition is True for this generation. Argo CD: Synced and Healthy."""
    status = live.get("status", {})
    if live.get("kind") == "Application":
        return bool(status.get("sync", {}).get("status") == "Synced"
                    and status.get("health", {}).get("status") == "Healthy")
    generation = live.get("metadata", {}).get("generation")
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               and c.get("observedGeneration", generation) == generation
               for c in status.get("conditions", []))
