"""The runbook's "if Ansible itself is broken" commands are the commands the restore playbooks run.

Both come from the same extravars (`dr.core.invocations`); here each restore playbook's own tasks are
rendered by Ansible's templating with those extravars and every manual command must be among them.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleUndefinedVariable
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from dr.core.invocations import ChosenBackup, hosts_inventory, manual_restore_commands, restore_invocation
from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.graph_file import load_graph_file, read_text

ROOT = Path(__file__).resolve().parents[2]


def rendered_commands(playbook: str, extravars: dict[str, Any]) -> set[tuple[str, ...]]:
    """Every command the playbook's tasks would run with these extravars, as argv tuples."""
    loader = DataLoader()
    play = loader.load_from_file(str(ROOT / "playbooks" / playbook), trusted_as_template=True)[0]
    hosts = sorted({str(m["host"]) for m in extravars.get("etcd_members", [])}) or ["localhost"]
    out: set[tuple[str, ...]] = set()
    for host, task in ((h, task) for h in hosts for task in play["tasks"]):
        base = {**play.get("vars", {}), **extravars, "inventory_hostname": host}
        loop = task.get("loop")
        try:
            items = Templar(loader=loader, variables=base).template(loop) if loop is not None else [None]
        except AnsibleUndefinedVariable:
            continue  # a loop over an earlier task's registered results: not a command of its own
        for item in items:
            templar = Templar(loader=loader, variables={**base, "item": item})
            command = task.get("ansible.builtin.command")
            if command and "argv" in command:
                out.add(tuple(str(a) for a in templar.template(command["argv"])))
            elif command and "cmd" in command:
                out.add(tuple(shlex.split(str(templar.template(command["cmd"])))))
            file_task = task.get("ansible.builtin.file")
            if file_task and file_task.get("state") == "absent":
                out.add(("rm", "-rf", str(templar.template(file_task["path"]))))
    return out


def restore_children() -> list[tuple[str, dict[str, Any]]]:
    spec = load_graph_file(ROOT / "stacks" / "cluster.yaml")
    plan = plan_for(spec, read_text=read_text)
    resources = resource_plan(plan, spec, read_text=read_text)
    return [(c.name, dict(c.inputs)) for comp in resources.components for c in comp.children
            if c.kind == "host-restore"]


@pytest.mark.parametrize(("name", "inputs"), restore_children(), ids=[n for n, _ in restore_children()])
@pytest.mark.parametrize("target_time", ["latest", "2026-11-20T03:00:00Z"])
def test_manual_commands_are_what_the_playbook_runs(name: str, inputs: dict[str, Any], target_time: str) -> None:
    spec = load_graph_file(ROOT / "stacks" / "cluster.yaml")
    chosen = ChosenBackup("SNAP-1", "/srv/data" if inputs["tool"] == "restic" else "")
    invocation = restore_invocation({**inputs, "target_time": target_time}, hosts=hosts_inventory(spec),
                                    chosen=chosen, cluster_token="token-1")
    playbook_commands = rendered_commands(invocation.playbook, dict(invocation.extravars))
    manual = manual_restore_commands(invocation)
    assert manual, f"{name}: no manual commands"
    for argv in manual:
        assert tuple(argv) in playbook_commands, (
            f"{name}: the runbook says {shlex.join(argv)!r}, but {invocation.playbook} runs none such; "
            f"it runs: {sorted(' '.join(c) for c in playbook_commands)}")


def test_a_changed_flag_would_be_caught() -> None:
    """The comparison is not vacuous: a command the playbook does not run is not found."""
    invocation = restore_invocation({"tool": "restic", "repo": "/r", "vars": {"restore_path": "/v"}}, hosts={},
                                    chosen=ChosenBackup("S", "/src"))
    commands = rendered_commands(invocation.playbook, dict(invocation.extravars))
    assert ("restic", "--no-lock", "-r", "/r", "restore", "S", "--target", "/v.dr-staging") in commands
    assert ("restic", "-r", "/r", "restore", "S", "--target", "/v.staging") not in commands
