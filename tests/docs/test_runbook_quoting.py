"""Every value the runbook prints in a command is one shell word: a person pastes these lines at 3 a.m.

The graph reader refuses names the cluster would refuse (tests/graph/test_kube_names.py); the runbook's
text of each kind of step quotes what it prints all the same, whatever reaches it. Each value below would
run `touch /tmp/pwned` if a line printed it as it is: after a `;`, on a line of its own, or in `$( )`.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from dr.core.docmodel import Block, Code
from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.core.spec import Component, GraphSpec, ReconciledBy
from dr.core.steps import CHILD_KINDS
from dr.core.steps.base import Child
from dr.docs.runbook import build_runbook

HOSTILE = ["web;touch /tmp/pwned", "web\ntouch /tmp/pwned", "web$(touch /tmp/pwned)", "web`touch /tmp/pwned`"]


def words(text: str) -> list[str]:
    """The words and operators a POSIX shell reads in `text` (comments dropped; a comment ends at a newline)."""
    return list(shlex.shlex(text.replace("`", " ; "), posix=True, punctuation_chars=True))


def runs_nothing_else(text: str) -> bool:
    """Nothing in `text` makes `touch /tmp/pwned` a command of its own."""
    found = words(text)
    return "touch" not in found and "/tmp/pwned" not in found


def test_the_check_sees_each_hostile_value_run_when_printed_as_it_is() -> None:
    for value in HOSTILE:
        assert not runs_nothing_else(f"helm status {value} -n web\n")
        # In a comment only a newline gets out: the rest of the line is not read.
        assert runs_nothing_else(f"systemctl start etcd   # or etcd --name {value}\n") is ("\n" not in value)
        assert runs_nothing_else(f"helm status {shlex.quote(value)} -n web\n")


def shell_text(blocks: Sequence[Block]) -> str:
    return "".join(b.text for b in blocks if isinstance(b, Code) and b.lang == "sh")


def _step(name: str = "app", component: Component | None = None) -> Any:
    from dr.core.plan import Step

    return Step(name=name, layer="app", depends_on=(), action="restore", wave=0, estimate_s=60,
                on_critical_path=False, component=component or Component(name=name, layer="app"))


SPEC = GraphSpec.from_yaml("cluster: lab\ncomponents: {app: {layer: app}}\n", path="/tmp/lab/graph.yaml")


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_helm_status_quotes_the_release_and_the_namespace(value: str) -> None:
    child = Child(kind="helm-release", name="app", inputs={
        "chart": "c", "version": "1", "repo": "https://r", "namespace": value, "release": value, "values": {}})
    verify = CHILD_KINDS["helm-release"].verify
    assert verify is not None
    assert runs_nothing_else(verify(child))
    assert runs_nothing_else(shell_text(CHILD_KINDS["helm-release"].runbook(_step(), child, SPEC)))


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_a_restore_object_its_precheck_and_its_verify_line_quote_every_name(value: str) -> None:
    manifest = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": value, "namespace": value}}
    child = Child(kind="kube-object", name="app-pvc", inputs={"manifest": manifest})
    verify = CHILD_KINDS["kube-object"].verify
    assert verify is not None and runs_nothing_else(verify(child))
    assert runs_nothing_else(shell_text(CHILD_KINDS["kube-object"].runbook(_step(value), child, SPEC)))
    precheck = Child(kind="restore-precheck", name="app-precheck", inputs={"step": "app", "precheck": {
        "secrets": [{"namespace": value, "name": value, "keys": ["a"]}],
        "backups": [{"apiVersion": "velero.io/v1", "kind": "Backup", "namespace": value, "name": value},
                    {"apiVersion": "velero.io/v1", "kind": "Backup", "namespace": value, "selector": value}]}})
    assert runs_nothing_else(shell_text(CHILD_KINDS["restore-precheck"].runbook(_step(), precheck, SPEC)))


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
@pytest.mark.parametrize("kind", ["Kustomization", "Application"])
def test_the_gitops_hold_resume_and_wait_quote_the_object(value: str, kind: str) -> None:
    from dr.core.steps.gitops_gate import resume_commands

    owner = ReconciledBy(kind=kind, name=value, namespace=value, controller="flux")
    assert runs_nothing_else("".join(shlex.join(argv) + "\n" for argv in resume_commands(owner)))
    manifest = {"apiVersion": "x/v1", "kind": kind, "metadata": {"name": value, "namespace": value}, "spec": {}}
    hold = Child(kind="gitops-hold", name="app-hold", inputs={"step": "app", "gitops": "hold", "manifest": manifest})
    assert runs_nothing_else(shell_text(CHILD_KINDS["gitops-hold"].runbook(_step(), hold, SPEC)))


ETCD_GRAPH = """\
cluster: lab
hosts:
  cp0: {address: 10.0.0.10, groups: [etcd]}
backups:
  snaps: {tool: etcd-snapshot, repo: "s3://lab-backups/etcd", schedule: "@hourly", retention: {last: 24}, rpo: 1h}
components:
  etcd:
    layer: etcd
    restore: {backup: snaps}
    hosts: [etcd]
"""


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_an_etcd_restore_quotes_its_members_even_in_the_comments_it_suggests(value: str, tmp_path: Path) -> None:
    graph = yaml.safe_load(ETCD_GRAPH)
    graph["components"]["etcd"]["vars"] = {
        "snapshot_dir": "/var/backups/etcd",
        "etcd_members": [{"name": value, "host": value, "address": "10.0.0.10", "peer_port": 2380,
                          "client_port": 2379, "data_dir": f"/var/lib/{value}"}]}
    spec = GraphSpec.from_yaml(yaml.safe_dump(graph), path=str(tmp_path / "graph.yaml"))
    plan = plan_for(spec)
    assert plan.graph is not None
    resources = resource_plan(plan, plan.graph.spec, read_text=None)
    blocks = build_runbook(plan, plan.graph.spec, resources, graph_path="graph.yaml", mode_diff="", mermaid="",
                           svg="")
    text = shell_text(blocks)
    assert "etcdctl snapshot restore" in text
    assert runs_nothing_else(text), text
