"""The generated runbook: complete, in order, safe, deterministic, and saying what the automation does."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import dr.hosts.host_steps
from dr.core.invocations import ChosenBackup, PlaybookInvocation, hosts_inventory
from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.core.steps import step_inputs
from dr.core.steps.base import BACKUP_SET, CLUSTER_TOKEN, SNAPSHOT, SNAPSHOT_FILE, SNAPSHOT_PATH
from dr.docs.writer import generate
from dr.graph_file import load_graph_file
from tests.conftest import EXAMPLE_GRAPH, REPO

# Graphviz draws the runbook's SVG: a real program, like every other integration test's.
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed (make system)")]


def read(path: Path) -> str:
    return path.read_text()


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    spec = load_graph_file(EXAMPLE_GRAPH)
    return {f.name: f.content for f in generate(spec, modes=["prod", "drill"], read_text=read,
                                                   graph_path="stacks/cluster.yaml")}


@pytest.fixture(scope="module")
def prod_plan():
    return plan_for(load_graph_file(EXAMPLE_GRAPH), mode="prod", read_text=read)


def step_order(markdown: str) -> list[str]:
    return re.findall(r"^### \d+\. (\S+)(?: ★)?$", markdown, flags=re.M)


@pytest.mark.parametrize(("name", "mode"), [("recovery-order.md", "prod"), ("recovery-order.drill.md", "drill")])
def test_every_component_once_and_after_its_dependencies(files: dict[str, str], name: str, mode: str) -> None:
    plan = plan_for(load_graph_file(EXAMPLE_GRAPH), mode=mode, read_text=read)
    order = step_order(files[name])
    assert sorted(order) == sorted(s.name for s in plan.steps)
    assert len(order) == len(set(order))
    for step in plan.steps:
        assert all(order.index(dep) < order.index(step.name) for dep in step.depends_on), step.name


def test_mermaid_has_one_node_per_component_and_one_edge_per_dependency(files: dict[str, str], prod_plan) -> None:
    block = re.search(r"```mermaid\n(.*?)```", files["recovery-order.md"], flags=re.S)
    assert block is not None
    text = block.group(1)
    nodes = re.findall(r'^\s+(c_\w+)\["', text, flags=re.M)
    edges = re.findall(r"^\s+(c_\w+) --> (c_\w+)$", text, flags=re.M)
    assert sorted(nodes) == sorted("c_" + s.name.replace("-", "_") for s in prod_plan.steps)
    expected = sorted(("c_" + d.replace("-", "_"), "c_" + s.name.replace("-", "_"))
                      for s in prod_plan.steps for d in s.depends_on)
    assert sorted(edges) == expected


def test_svg_is_produced_and_names_every_component(files: dict[str, str], prod_plan) -> None:
    svg = files["recovery-order.svg"]
    assert svg.startswith("<svg")
    texts = {html.unescape(t) for t in re.findall(r">([^<>]+)</text>", svg)}
    for step in prod_plan.steps:
        # The critical path is marked the same way as in the text: a star (and a yellow box).
        assert (f"★ {step.name}" if step.on_critical_path else step.name) in texts, step.name
        assert f'href="#step-{step.name}"' in svg, "each box links to its step"
    assert svg in files["recovery-order.html"], "the HTML carries the SVG inline"


def test_html_is_self_contained(files: dict[str, str]) -> None:
    html = files["recovery-order.html"]
    assert not re.search(r'(src|href)="https?://', html), "nothing is fetched"
    assert "@media print" in html


def test_generation_is_deterministic(files: dict[str, str]) -> None:
    spec = load_graph_file(EXAMPLE_GRAPH)
    again = {f.name: f.content for f in generate(spec, modes=["prod", "drill"], read_text=read,
                                                    graph_path="stacks/cluster.yaml")}
    assert again == files


def test_committed_docs_are_up_to_date(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = run_cli("docs", "--check")
    assert result.code == 0, result.err


def test_check_fails_after_a_graph_change_and_passes_after_regeneration(run_cli, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    monkeypatch.chdir(tmp_path)
    assert run_cli("docs", "--out", "docs").code == 0
    assert run_cli("docs", "--out", "docs", "--check").code == 0
    graph = tmp_path / "stacks" / "cluster.yaml"
    graph.write_text(graph.read_text().replace("estimate: 8m", "estimate: 9m"))
    result = run_cli("docs", "--out", "docs", "--check")
    assert result.code == 1
    assert "out of date: docs/recovery-order.md" in result.err
    assert run_cli("docs", "--out", "docs").code == 0
    assert run_cli("docs", "--out", "docs", "--check").code == 0


def test_a_canary_secret_in_the_stack_config_never_reaches_a_generated_file(run_cli, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    canary = "canary-secret-5d1e-not-for-docs"
    stack = tmp_path / "stacks" / "Pulumi.prod.yaml"
    document = yaml.safe_load(stack.read_text())
    document["config"]["dr:secrets"] = {"k3s_token": canary, "backup_s3_key": canary}
    stack.write_text(yaml.safe_dump(document))
    monkeypatch.chdir(tmp_path)
    assert run_cli("docs", "--out", "out", "--stack-config", "stacks/Pulumi.prod.yaml").code == 0
    generated = list((tmp_path / "out").iterdir())
    assert len(generated) == 6
    for path in generated:
        assert canary not in path.read_text(), path.name
    assert "backup_s3_key: <" in (tmp_path / "out" / "recovery-order.md").read_text(), "names are listed"


def test_playbook_commands_in_the_runbook_are_what_the_automation_runs(files: dict[str, str], prod_plan,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_graph_file(EXAMPLE_GRAPH)
    resources = resource_plan(prod_plan, prod_plan.graph.spec, read_text=read)
    captured: list[PlaybookInvocation] = []

    class Result:
        changed = 0

    def fake_run_playbook(playbook: str, *, extravars: dict[str, Any], limit: str | None, **_: Any) -> Result:
        captured.append(PlaybookInvocation(playbook, extravars, limit))
        return Result()

    placeholders = {"restic": ChosenBackup(SNAPSHOT, SNAPSHOT_PATH), "etcd-snapshot": ChosenBackup(SNAPSHOT_FILE),
                    "pgbackrest": ChosenBackup(BACKUP_SET)}
    monkeypatch.setattr(dr.hosts.host_steps, "run_playbook", fake_run_playbook)
    monkeypatch.setattr(dr.hosts.host_steps, "choose", lambda inputs, secrets: (placeholders[inputs["tool"]], _Point()))
    monkeypatch.setattr(dr.hosts.host_steps, "new_cluster_token", lambda: CLUSTER_TOKEN)
    monkeypatch.setattr(dr.hosts.host_steps.etcd, "snapshot_point", lambda path: None)
    secrets = {"k3s_token": "x", "restic_password": "y"}
    host_children = [c for comp in resources.components for c in comp.children
                     if c.kind in ("playbook", "host-restore")]
    # Every playbook step and host-level restore of the graph (the example has some of each).
    steps = [c for c in load_graph_file(EXAMPLE_GRAPH).components.values() if c.action is not None
             and (c.action.kind == "playbook" or (c.action.kind == "restore"
                                                  and spec.backups[c.action.backup].host_level))]
    assert len(host_children) == len(steps) > 0
    for child in host_children:
        dr.hosts.host_steps.run_step(step_inputs(child), hosts=hosts_inventory(spec), secrets=secrets)
    assert len(captured) == len(host_children)
    for invocation in captured:
        assert invocation.command_line() in files["recovery-order.md"], invocation.playbook


class _Point:
    id = "p"

    class time:
        @staticmethod
        def isoformat() -> str:
            return "2026-11-23T00:00:00+00:00"


def test_helm_commands_match_the_releases_pulumi_registers(files: dict[str, str]) -> None:
    from tests.pulumi.test_program_resources import run_program

    registered = run_program("prod")
    markdown = files["recovery-order.md"]
    releases = [r for r in registered.values() if r.type == "kubernetes:helm.sh/v3:Release"]
    helm = [c for c in load_graph_file(EXAMPLE_GRAPH).components.values()
            if c.action is not None and c.action.kind == "helm" and not c.drill_only]
    assert len(releases) == len(helm) > 0
    for release in releases:
        inputs = release.inputs
        command = (f"helm upgrade --install {inputs['name']} {inputs['chart']} --repo {inputs['repositoryOpts']['repo']}"
                   f" --version {inputs['version']} --namespace {inputs['namespace']} --create-namespace "
                   f"-f values/{release.parent}.yaml --wait")
        assert command in markdown, release.name
        section = markdown.split(f"save the values as `values/{release.parent}.yaml`:", 1)[1]
        values_block = re.search(r"```yaml\n(.*?)```", section, flags=re.S)
        assert values_block is not None
        assert (yaml.safe_load(values_block.group(1)) or {}) == (inputs.get("values") or {}), release.name


def test_writing_docs_never_imports_pulumi() -> None:
    """`dr docs` read the stack files through dr.stack.preview, which imports Pulumi; writing docs must
    work where Pulumi is not installed."""
    import subprocess
    import sys

    from tests.conftest import REPO

    probe = ("import sys\nfrom dr.cli import main\ncode = main(['docs', '--check'])\n"
             "print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'pulumi_kubernetes')))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
