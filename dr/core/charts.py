"""The Helm charts a recovery graph pins, and the Helm repository index that lists them.

A rebuild must not depend on chart repositories being reachable on the day: `dr mirror` copies every
pinned chart into a directory with its own `index.yaml` and serves it as a Helm HTTP repository. This
module is the pure half: which charts a graph pins (in both modes: a drill installs the drill-only
ones), how an index entry is found and written. `dr.charts.mirror` does the downloading and serving.
"""

from __future__ import annotations

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
        """The file name Helm gives a packaged chart."""
        return f"{self.name}-{self.version}.tgz"


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

