"""The Helm charts a recovery graph pins, and the Helm repository index that lists them.

A rebuild must not depend on chart repositories being reachable on the day: `dr mirror` copies every
pinned chart into a directory with its own `index.yaml` and serves it as a Helm HTTP repository. This
module is the pure half: which charts a graph pins (in both modes: a drill installs the drill-only
ones), how an index entry is found and written. `dr.charts.mirror` does the downloading and serving.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dr.core.spec import GraphSpec, HelmAction


@dataclass(frozen=True, order=True)
class ChartPin:
    """One chart at one version from one repository, as a `helm` action of the graph names it."""

    name: str
    version: str
    repo: str

    @property
    def archive(self) -> str:
        """The file name Helm gives a packaged chart; only for a pin without a `pin_problem` (a name or
        version from a graph or an index is never trusted to be a file name)."""
        problem = pin_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return f"{self.name}-{self.version}.tgz"


# As Helm accepts them: a chart name is one path segment (Helm refuses a name that is not its own base name;
# `helm create` allows letters, digits, '.', '_' and '-'), here also starting with a letter or digit so it is
# never '.', '..' or a hidden file; a version is SemVer as Helm's parser reads it (an optional 'v', one to
# three numbers, a pre-release and build metadata).
_CHART_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}", re.ASCII)
_IDENTIFIERS = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_CHART_VERSION = re.compile(rf"v?\d{{1,18}}(?:\.\d{{1,18}}){{0,2}}(?:-{_IDENTIFIERS})?(?:\+{_IDENTIFIERS})?", re.ASCII)
_SHA256 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)


def pin_problem(pin: ChartPin) -> str | None:
    """Why this chart name or version is not one Helm would package (so never a file name), or None."""
    if not _CHART_NAME.fullmatch(pin.name):
        return (f"chart {pin.name!r} is not a chart name (Helm allows letters, digits, '.', '_' and '-', "
                "one path segment)")
    if len(pin.version) > 128 or not _CHART_VERSION.fullmatch(pin.version):
        return f"chart {pin.name} version {pin.version!r} is not a chart version (SemVer, like 1.2.3 or v1.2.3)"
    return None


def sha256_digest(value: object) -> str | None:
    """An index entry's `digest` as lower-case hex when it is a sha256 digest, else None (missing, empty, a
    number YAML read from unquoted digits, or anything else that cannot verify an archive)."""
    if isinstance(value, str) and _SHA256.fullmatch(value):
        return value.lower()
    return None


def chart_pins(spec: GraphSpec) -> tuple[ChartPin, ...]:
    """Every chart the graph installs in either mode, once, sorted."""
    return tuple(sorted({ChartPin(c.action.chart, c.action.version, c.action.repo)
                         for c in spec.components.values() if isinstance(c.action, HelmAction)}))


def find_entry(index: Mapping[str, Any], pin: ChartPin) -> Mapping[str, Any] | None:
    """The entry of `pin` in a repository's `index.yaml`, or None."""
    for entry in (index.get("entries") or {}).get(pin.name) or ():
        if isinstance(entry, Mapping) and str(entry.get("version")) == pin.version:
            return entry
    return None


def resolve_url(repo: str, url: str) -> str:
    """Where a chart archive is: index URLs may be absolute or relative to the repository."""
    if "://" in url:
        return url
    return f"{repo.rstrip('/')}/{url.lstrip('/')}"


def index_document(entries: Iterable[Mapping[str, Any]], *, generated: str) -> dict[str, Any]:
    """A Helm repository index (apiVersion v1) of these chart entries, each with a relative URL."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_name.setdefault(str(entry["name"]), []).append(dict(entry))
    for versions in by_name.values():
        versions.sort(key=lambda e: str(e["version"]), reverse=True)
    return {"apiVersion": "v1", "entries": dict(sorted(by_name.items())), "generated": generated}

