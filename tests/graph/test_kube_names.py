"""Kubernetes names in the graph are checked as the API server and Helm check them, where the graph is read.

A Helm namespace or release name, a GitOps object's name or namespace and the restore variables that name
Kubernetes objects reach the runbook's commands and the objects dr renders; `web;touch${IFS}/tmp/x` and
`web$(id)` used to pass `dr plan`. Each is now a graph error on its own line, as `path:line: message`.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from dr.core.graph import RecoveryGraph
from dr.core.spec import GraphSpec
from dr.errors import GraphError

HOSTILE = ["web;touch${IFS}/tmp/x", "web$(id)", "web\n", "Web", "-web", "web-", "", "web web", "w\u00e9b"]


def _helm(**fields: str) -> dict[str, Any]:
    return {"chart": "cilium", "repo": "https://helm.cilium.io", "version": "1.16.5", "namespace": "kube-system",
            **fields}


def graph(component: dict[str, Any], *, backups: dict[str, Any] | None = None) -> str:
    document: dict[str, Any] = {"cluster": "lab", "backups": backups or {},
                                "components": {"flux": {"layer": "gitops"}, "c": {"layer": "app", **component}}}
    return yaml.safe_dump(document, sort_keys=False)


def problems(text: str) -> list[str]:
    try:
        RecoveryGraph.build(GraphSpec.from_yaml(text, path="g.yaml"))
    except GraphError as exc:
        return [str(d) for d in exc.diagnostics]
    return []


def line_of(text: str, key: str) -> int:
    """The line of the graph's text where `key` is written (once in each graph below)."""
    (line,) = [i for i, text_line in enumerate(text.splitlines(), start=1) if text_line.strip().startswith(f"{key}:")]
    return line


VOLSYNC = {"b": {"tool": "volsync", "repo": "restic-secret", "schedule": "0 3 * * *", "retention": {"daily": 7},
                 "rpo": "1d"}}


def _gitops(**fields: str) -> dict[str, Any]:
    return {"reconciled_by": {"kind": "Kustomization", "name": "gitea", "controller": "flux", **fields}}


def _restore(**variables: str) -> dict[str, Any]:
    return {"restore": {"backup": "b"}, "vars": {"namespace": "gitea", "pvc": "data", "size": "1Gi", **variables}}


# place: (the component with a value in that place, the backups it needs); the key is the place's last word.
PLACES: dict[str, tuple[Any, dict[str, Any] | None]] = {
    "helm namespace": (lambda v: {"helm": _helm(namespace=v)}, None),
    "helm release": (lambda v: {"helm": _helm(release=v)}, None),
    "reconciled_by name": (lambda v: _gitops(name=v), None),
    "reconciled_by namespace": (lambda v: _gitops(namespace=v), None),
    "restore vars.namespace": (lambda v: _restore(namespace=v), VOLSYNC),
    "restore vars.pvc": (lambda v: _restore(pvc=v), VOLSYNC),
    "restore vars.repository_secret": (lambda v: _restore(repository_secret=v), VOLSYNC),
}


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_name_kubernetes_or_helm_would_refuse_is_a_graph_error_on_its_line(place: str, value: str) -> None:
    make, backups = PLACES[place]
    text = graph(make(value), backups=backups)
    found = problems(text)
    assert found, f"{place} {value!r} was accepted"
    if value:
        key = place.split()[-1].removeprefix("vars.")
        assert any(p.startswith(f"g.yaml:{line_of(text, key)}: ") and repr(value) in p for p in found), found


@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_good_name_is_accepted(place: str) -> None:
    make, backups = PLACES[place]
    assert problems(graph(make("gitea-2"), backups=backups)) == []


@pytest.mark.parametrize(("place", "value", "accepted"), [
    # A namespace is a DNS-1123 label: no dots, at most 63 characters.
    ("helm namespace", "kube.system", False),
    ("helm namespace", "a" * 63, True),
    ("helm namespace", "a" * 64, False),
    # A Helm release name is a DNS-1123 subdomain of at most 53 characters (Helm's own limit).
    ("helm release", "cilium.v2", True),
    ("helm release", "a" * 53, True),
    ("helm release", "a" * 54, False),
    ("helm release", "cilium..v2", False),
    # An object name is a DNS-1123 subdomain: dots allowed, at most 253 characters.
    ("reconciled_by name", "apps.gitea", True),
    ("reconciled_by name", ".".join(["a" * 63] * 4)[:253], True),
    ("reconciled_by name", "a" * 254, False),
    ("restore vars.pvc", "data.v2", True),
    ("restore vars.namespace", "gitea.v2", False),
])
def test_the_limits_are_the_api_servers_and_helms(place: str, value: str, accepted: bool) -> None:
    make, backups = PLACES[place]
    assert (problems(graph(make(value), backups=backups)) == []) is accepted


def test_a_hostile_name_in_drill_values_is_refused_too() -> None:
    text = graph({**_restore(), "drill": {"values": {"namespace": "gitea;id"}}}, backups=VOLSYNC)
    found = problems(text)
    assert any("'gitea;id'" in p for p in found), found


@pytest.mark.parametrize(("check", "bad"), [
    ({"http": "https://gitea.lab/healthz", "status": "200\ntouch /tmp/x"}, "status"),
    ({"http": "https://gitea.lab/healthz", "status": 99}, "status"),
    ({"sql": "select count(*) from users", "min": "1; touch /tmp/x"}, "min"),
    ({"etcd": "/registry", "min_keys": "many"}, "min_keys"),
    ({"files": "/srv/data", "min_files": -1}, "min_files"),
    ({"http": "https://gitea.lab/healthz", "extra": 1}, "extra"),
])
def test_a_verify_check_holds_what_its_kind_reads(check: dict[str, Any], bad: str) -> None:
    found = problems(graph({"verify": [check]}))
    assert any(bad in p for p in found), found


@pytest.mark.parametrize(("where", "value"), [
    ("secrets", "token;touch /tmp/x"), ("secrets", "token\nx"), ("env", "A B"), ("env", "1A"), ("env", "A;id")])
def test_command_secret_and_environment_names_are_variable_names(where: str, value: str) -> None:
    command: dict[str, Any] = {"run": "true", "secrets": [value]} if where == "secrets" else \
        {"run": "true", "env": {value: "x"}}
    found = problems(graph({"command": command}))
    assert any(repr(value) in p for p in found), found


@pytest.mark.parametrize("name", ["cp0\ntouch /tmp/x", "cp0;id", "cp 0"])
def test_a_host_name_is_a_host_name(name: str) -> None:
    text = yaml.safe_dump({"cluster": "lab", "hosts": {name: {"address": "10.0.0.10"}},
                           "components": {"os": {"layer": "os"}}})
    found = problems(text)
    assert any(repr(name) in p for p in found), found


@pytest.mark.parametrize("repo", ["/srv/backups\ntouch /tmp/x", "/srv/backups\x1b[2J"])
def test_a_backup_repository_holds_no_control_character(repo: str) -> None:
    backups = {"b": {"tool": "restic", "repo": repo, "schedule": "0 3 * * *", "retention": {"daily": 7},
                     "rpo": "1d"}}
    found = problems(graph({}, backups=backups))
    assert any("control character" in p for p in found), found
