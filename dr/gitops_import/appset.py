"""Argo CD ApplicationSets expanded into the Applications they generate (pure).

The list generator, and the git generator's `directories` and `files` when they read the repository
being imported (the paths are matched against its checkout; the files' keys become parameters, nested
keys joined with dots), with the template's `{{param}}` (fasttemplate) or `{{ .param }}` (goTemplate)
placeholders filled. What cannot be expanded from the repository alone (the cluster, pull-request, SCM
and plugin generators, matrix and merge, a git generator of another repository, an app-of-apps rendered
by Helm) is reported by name and left out.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from dr.core.yaml_source import YamlBoundError, load_bounded
from dr.gitops_import.infer import Doc

_PLACEHOLDER = re.compile(r"\{\{-?\s*\.?([A-Za-z0-9_.\[\]-]+)\s*-?\}\}")
ReadFile = Callable[[str], str | None]  # a repository path -> its text, None when it cannot be read


@dataclass
class Expanded:
    applications: list[Doc] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: str(value)} if prefix else {}


def _path_params(path: str) -> dict[str, str]:
    parts = path.split("/")
    params = {"path": path, "path.path": path, "path.basename": parts[-1],
              "path.basenameNormalized": re.sub(r"[^a-zA-Z0-9-]", "-", parts[-1]).lower()}
    params.update({f"path[{i}]": part for i, part in enumerate(parts)})
    params.update({f"path.segments[{i}]": part for i, part in enumerate(parts)})
    return params


def _fill(value: Any, params: Mapping[str, str], missing: set[str]) -> Any:
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            if match.group(1) in params:
                return params[match.group(1)]
            missing.add(match.group(1))
            return match.group(0)
        return _PLACEHOLDER.sub(one, value)
    if isinstance(value, Mapping):
        return {_fill(k, params, missing): _fill(v, params, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, params, missing) for v in value]
    return value


class _Generators:
    def __init__(self, directories: Iterable[str], files: Iterable[str], read: ReadFile, repo_urls: set[str]) -> None:
        self.directories = sorted(set(directories))
        self.files = sorted(set(files))
        self.read = read
        self.repo_urls = repo_urls
        self.skipped: list[str] = []  # "<file>: skipped (why)", for the files a git generator could not read

    def params(self, generator: Mapping[str, Any]) -> tuple[list[dict[str, str]], str]:
        """(parameter sets, why it could not be expanded or "")."""
        if "list" in generator:
            elements = generator["list"].get("elements") or []
            return [_flatten(e) for e in elements if isinstance(e, Mapping)], ""
        if "git" in generator:
            return self.git(generator["git"])
        kind = next(iter(generator), "?")
        return [], f"its {kind} generator needs the live cluster or another service"

    def git(self, spec: Mapping[str, Any]) -> tuple[list[dict[str, str]], str]:
        url = str(spec.get("repoURL", "")).rstrip("/").removesuffix(".git")
        if self.repo_urls and url not in self.repo_urls:
            return [], f"its git generator reads another repository ({spec.get('repoURL')})"
        if "directories" in spec:
            include = [d for d in spec["directories"] if not d.get("exclude")]
            exclude = [d for d in spec["directories"] if d.get("exclude")]
            chosen = [p for p in self.directories if any(fnmatch.fnmatchcase(p, d.get("path", "")) for d in include)
                      and not any(fnmatch.fnmatchcase(p, d.get("path", "")) for d in exclude)]
            return [_path_params(p) for p in chosen], ""
        out: list[dict[str, str]] = []
        for entry in spec.get("files") or []:
            for path in (p for p in self.files if fnmatch.fnmatchcase(p, str(entry.get("path", "")))):
                out += self.file_params(path)
        return out, ""

    def file_params(self, path: str) -> list[dict[str, str]]:
        """The parameter sets of one file a git files generator reads; a file that cannot be read in bounded
        time and memory (an alias bomb, nested thousands deep) or is not JSON/YAML is skipped and named."""
        text = self.read(path)
        try:
            loaded = (json.loads(text) if path.endswith(".json") else load_bounded(text)) if text else None
            items = loaded if isinstance(loaded, list) else [loaded]
            return [{**_flatten(item), **_path_params(posixpath.dirname(path))} for item in items
                    if isinstance(item, Mapping)]
        except YamlBoundError as exc:
            self.skipped.append(f"{path}: skipped ({exc.problem}, at line {exc.line})")
        except RecursionError:
            self.skipped.append(f"{path}: skipped (nested too deeply to read)")
        except (ValueError, yaml.YAMLError) as exc:  # json.JSONDecodeError is a ValueError
            self.skipped.append(f"{path}: skipped, not valid {'JSON' if path.endswith('.json') else 'YAML'} "
                                f"({getattr(exc, 'problem', None) or getattr(exc, 'msg', None) or type(exc).__name__})")
        return []


def expand(docs: list[Doc], *, directories: Iterable[str], files: Iterable[str], read: ReadFile) -> Expanded:
    repo_urls = {str(d.spec.get("source", {}).get("repoURL", "")).rstrip("/").removesuffix(".git")
                 for d in docs if d.is_("argoproj.io", "Application") and isinstance(d.spec.get("source"), Mapping)}
    repo_urls.discard("")
    generators = _Generators(directories, files, read, repo_urls)
    result = Expanded()
    for appset in (d for d in docs if d.is_("argoproj.io", "ApplicationSet")):
        template = appset.spec.get("template")
        if not isinstance(template, Mapping):
            result.notes.append(f"ApplicationSet {appset.name}: no template, nothing to expand")
            continue
        count = 0
        for generator in appset.spec.get("generators") or []:
            params_list, why = generators.params(generator)
            if why:
                result.notes.append(f"ApplicationSet {appset.name} is not expanded: {why}; add its Applications "
                                    "by hand")
                continue
            for params in params_list:
                missing: set[str] = set()
                filled = _fill(copy.deepcopy(dict(template)), params, missing)
                if missing:
                    result.notes.append(f"ApplicationSet {appset.name}: no value for {', '.join(sorted(missing))}; "
                                        "that Application is left out")
                    continue
                metadata = {"namespace": appset.namespace or "argocd", **dict(filled.get("metadata") or {})}
                result.applications.append(Doc(appset.path, {"apiVersion": "argoproj.io/v1alpha1",
                                                             "kind": "Application", "metadata": metadata,
                                                             "spec": filled.get("spec") or {}}))
                count += 1
        if count:
            plural = "s" if count > 1 else ""
            result.notes.append(f"ApplicationSet {appset.name}: {count} Application{plural} generated")
    result.notes[:0] = sorted(set(generators.skipped))
    return result


def helm_rendered_apps(docs: list[Doc], files: Iterable[str], read: ReadFile) -> list[str]:
    """Applications whose source is a Helm chart in the repository that renders more Applications (an
    app-of-apps by Helm): those children exist only once Helm renders them, so they are reported."""
    files = list(files)
    notes = []
    for app in (d for d in docs if d.is_("argoproj.io", "Application")):
        source = app.spec.get("source") if isinstance(app.spec.get("source"), Mapping) else {}
        path = str(source.get("path", "")).strip("./") if isinstance(source, Mapping) else ""
        if not path or f"{path}/Chart.yaml" not in files:
            continue
        templates = [f for f in files if f.startswith(f"{path}/templates/")]
        if any("kind: Application" in (read(f) or "") for f in templates):
            notes.append(f"Application {app.name} renders its Applications with the Helm chart in {path}: they are "
                         "not expanded; add them by hand (or render the chart and import the result)")
    return notes
