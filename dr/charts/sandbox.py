"""Small stand-in charts for the sandbox, under the names and versions a graph pins.

The sandbox cannot reach the real chart repositories, and nothing would run their images anyway (no
kubelet). So the project writes its own chart for each pin: a Deployment (replicas from the release's
`replicaCount`), a Service, and a ConfigMap holding the values the release was given, so a test can
read back what the rebuild really installed. An operator's chart carries the real upstream CRDs of its
API groups (from `dr.kube.crds`), installed by Helm from the chart's `crds/` directory the way the
operator's own chart installs them. These charts are packaged and served as an "upstream" Helm
repository on loopback, from which a mirror is filled exactly as a user fills one from the internet.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from dr.charts.mirror import Server, checked_pins, fill, package
from dr.core.charts import ChartPin, index_document

# The API groups whose CRDs an operator's chart installs, by chart name (as the upstream charts do).
OPERATOR_CRD_GROUPS: Mapping[str, tuple[str, ...]] = {
    "cloudnative-pg": ("postgresql.cnpg.io",),
    "plugin-barman-cloud": ("barmancloud.cnpg.io",),
    "longhorn": ("longhorn.io",),
    "velero": ("velero.io",),
    "cert-manager": ("cert-manager.io", "acme.cert-manager.io"),
    "flux2": ("source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io"),
    "external-dns": ("externaldns.k8s.io",),
    "volsync": ("volsync.backube",),
    "argo-cd": ("argoproj.io",),
    "kopiur": ("kopiur.home-operations.com",),
}

_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {app.kubernetes.io/name: {{ .Chart.Name | quote }}, app.kubernetes.io/instance: {{ .Release.Name | quote }}}
spec:
  replicas: {{ .Values.replicaCount | default 1 }}
  selector:
    matchLabels: {app.kubernetes.io/instance: {{ .Release.Name | quote }}}
  template:
    metadata:
      labels: {app.kubernetes.io/instance: {{ .Release.Name | quote }}}
    spec:
      containers:
        - name: main
          image: "registry.invalid/dr-sandbox/{{ .Chart.Name }}:{{ .Chart.Version }}"
"""
_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {app.kubernetes.io/instance: {{ .Release.Name | quote }}}
  ports: [{port: 80, targetPort: 8080, name: http}]
"""
_VALUES = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-dr-sandbox-values
data:
  values.json: {{ toJson .Values | quote }}
"""


def chart_crds(groups: Iterable[str], dirs: Iterable[Path]) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions of these API groups, ready to install (a group dr has none for adds
    none: the Kubernetes layer then names the kind it cannot serve, `Sandbox.crd_hint`)."""
    from dr.kube import crds

    return [dict(crd.definition) for group in sorted(set(groups)) for crd in crds.of_group(group, extra_dirs=dirs)]


def write_chart(pin: ChartPin, root: Path, crd_dirs: Iterable[Path], services: Iterable[tuple[str, int]] = ()
                ) -> Path:
    """The stand-in chart of `pin` under `root/<name>-<version>/`; `services` (name, port) are extra
    Services in front of the workload (the ones the graph's checks address)."""
    chart = root / f"{pin.name}-{pin.version}"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"apiVersion": "v2", "name": pin.name, "version": pin.version, "appVersion": pin.version,
                            "description": f"dr sandbox stand-in for {pin.name} {pin.version} (no real images)"}
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    (chart / "values.yaml").write_text("replicaCount: 1\n", encoding="utf-8")
    for name, text in (("deployment.yaml", _DEPLOYMENT), ("service.yaml", _SERVICE), ("values.yaml", _VALUES)):
        (chart / "templates" / name).write_text(text, encoding="utf-8")
    extra = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
              "spec": {"selector": {"app.kubernetes.io/instance": "{{ .Release.Name }}"},
                       "ports": [{"port": port, "targetPort": 8080, "name": "http"}]}}
             for name, port in sorted(set(services))]
    if extra:
        (chart / "templates" / "checked-services.yaml").write_text(yaml.safe_dump_all(extra, sort_keys=False),
                                                                   encoding="utf-8")
    definitions = chart_crds(OPERATOR_CRD_GROUPS.get(pin.name, ()), crd_dirs)
    if definitions:
        (chart / "crds").mkdir(exist_ok=True)
        for definition in definitions:
            (chart / "crds" / f"{definition['metadata']['name']}.yaml").write_text(
                yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
    return chart


def write_upstream(pins: Iterable[ChartPin], directory: Path, crd_dirs: Iterable[Path], *,
                   services: Mapping[str, Iterable[tuple[str, int]]] | None = None) -> Path:
    """A Helm repository of stand-in charts (packaged archives and `index.yaml`) in `directory`;
    `services` adds Services to the charts it names."""
    dirs = list(crd_dirs)
    directory.mkdir(parents=True, exist_ok=True)  # a graph with no chart still gets its (empty) repository
    entries = []
    for pin in checked_pins(pins):
        chart = write_chart(pin, directory / "src", dirs, (services or {}).get(pin.name, ()))
        _, entry = package(chart, directory)
        entries.append(entry)
    index = index_document(entries, generated="1970-01-01T00:00:00Z")
    (directory / "index.yaml").write_text(yaml.safe_dump(index, sort_keys=False), encoding="utf-8")
    return directory


@contextmanager
def sandbox_mirror(pins: Iterable[ChartPin], root: Path, *,
                   services: Mapping[str, Iterable[tuple[str, int]]] | None = None,
                   crd_dirs: Iterable[Path] = ()) -> Iterator[str]:
    """A chart mirror of the stand-in charts in `root/charts`, filled over HTTP from a loopback "upstream"
    (`root/charts-upstream`) exactly as a user fills one from the internet; yields the mirror's URL while
    it is served. An operator's chart carries its CRDs from `crd_dirs` (the graph's own) and dr's."""
    pins = list(pins)
    with Server(write_upstream(pins, root / "charts-upstream", crd_dirs, services=services)) as upstream:
        fill(root / "charts", pins, upstream={pin.repo: upstream.url for pin in pins})
    with Server(root / "charts") as mirror:
        yield mirror.url
