"""Steps that run on the machine running dr: a user's command, a Talos control plane (through a stand-in
`talosctl` that records its arguments: no Talos machine exists here), and external checks. The same
`run_step` that `pulumi up` and the drills call runs them."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from dr.core.invocations import talos_commands
from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.core.spec import GraphSpec
from dr.core.steps import step_inputs
from dr.errors import DrError, GraphError
from dr.hosts.host_steps import run_step
from tests.restore.test_etcd_restore import cleanup_pids, snapshot  # noqa: F401 (fixtures)


def child_inputs(text: str, component: str, base: Path) -> dict[str, Any]:
    spec = GraphSpec.from_yaml(text, path=str(base / "cluster.yaml"))
    plan = plan_for(spec)
    assert plan.graph is not None
    resources = resource_plan(plan, plan.graph.spec)
    (child,) = next(c for c in resources.components if c.name == component).children
    return step_inputs(child)


def test_a_command_step_gets_its_secrets_as_environment_and_masks_them_on_failure(tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()
    inputs = child_inputs("""\
cluster: lab
components:
  secret-store:
    layer: addon
    command:
      run: 'printf %s "$DR_SECRET_SOPS_AGE_KEY" > age.key && printf %s "$MODE" > mode'
      cwd: infra
      secrets: [sops_age_key]
      env: {MODE: bootstrap}
""", "secret-store", tmp_path)
    assert inputs["command"][:2] == ["sh", "-c"]
    outputs = run_step(inputs, hosts={}, secrets={"sops_age_key": "AGE-SECRET-KEY-1TEST", "other": "x"})
    assert (tmp_path / "infra" / "age.key").read_text() == "AGE-SECRET-KEY-1TEST"
    assert (tmp_path / "infra" / "mode").read_text() == "bootstrap"
    assert "AGE-SECRET-KEY" not in json.dumps(outputs)
    failing = {**inputs, "command": ["sh", "-c", 'echo "leaked: $DR_SECRET_SOPS_AGE_KEY"; exit 3']}
    with pytest.raises(DrError) as caught:
        run_step(failing, hosts={}, secrets={"sops_age_key": "AGE-SECRET-KEY-1TEST"})
    assert "exited 3" in str(caught.value) and "leaked: ****" in str(caught.value)
    assert "AGE-SECRET-KEY" not in str(caught.value)
    with pytest.raises(DrError, match="needs the secret"):
        run_step(inputs, hosts={}, secrets={})


def test_command_and_talos_inputs_are_checked_when_the_graph_loads(tmp_path: Path) -> None:
    from dr.graph_file import load_graph_file

    graph = tmp_path / "cluster.yaml"
    graph.write_text("""\
cluster: lab
backups:
  restic-data: {tool: restic, repo: /srv/r, schedule: "@daily", retention: {daily: 7}, rpo: 2d}
components:
  a: {layer: addon, command: {cwd: nowhere}}
  nas: {layer: os, external: "ftp://nas"}
""")
    with pytest.raises(GraphError) as caught:
        load_graph_file(graph)
    assert "'run' must be a command line" in str(caught.value)
    assert "'check' must be tcp://host:port" in str(caught.value)
    graph.write_text(graph.read_text().split("  a:")[0] + """\
  b: {layer: addon, command: {run: helmfile apply, cwd: nowhere}}
  cp: {layer: control-plane, talos: {nodes: [10.5.0.2], config: missing.yaml, recover_from: restic-data}}
""")
    with pytest.raises(GraphError) as caught:
        load_graph_file(graph)
    assert "command cwd 'nowhere' is not a directory" in str(caught.value)
    assert "talos config 'missing.yaml' must be a file inside" in str(caught.value)
    with pytest.raises(GraphError, match="talos recover_from 'restic-data' must name an etcd-snapshot backup"):
        plan_for(GraphSpec.from_yaml(graph.read_text(), path=str(graph)))


@pytest.mark.integration
def test_talos_control_plane_is_applied_bootstrapped_from_the_newest_snapshot_and_gives_a_kubeconfig(
        tmp_path: Path, snapshot: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    bin_dir, log = tmp_path / "bin", tmp_path / "talosctl.log"
    bin_dir.mkdir()
    stand_in = bin_dir / "talosctl"
    stand_in.write_text(f"""#!/usr/bin/env python3
import json, sys
args = sys.argv[1:]
with open({str(log)!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
if "kubeconfig" in args:
    with open(args[args.index("kubeconfig") + 1], "w") as out:
        out.write("apiVersion: v1\\nkind: Config\\nclusters: [{{name: talos}}]\\n")
""")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "talos").mkdir()
    (tmp_path / "talos" / "controlplane.yaml").write_text("machine: {type: controlplane}\n")
    inputs = child_inputs(f"""\
cluster: lab
backups:
  etcd-snapshots: {{tool: etcd-snapshot, protects: [control-plane], repo: {snapshot.parent}, schedule: "0 */6 * * *",
                   retention: {{daily: 7}}, rpo: 7h}}
components:
  control-plane:
    layer: control-plane
    talos: {{nodes: [10.5.0.2, 10.5.0.3], config: talos/controlplane.yaml, recover_from: etcd-snapshots}}
""", "control-plane", tmp_path)
    outputs = run_step(inputs, hosts={}, secrets={})
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    kubeconfig = calls[-1][calls[-1].index("kubeconfig") + 1]
    assert calls == [c[1:] for c in talos_commands(inputs, snapshot=str(snapshot), kubeconfig=kubeconfig)]
    assert calls[0] == ["apply-config", "--insecure", "--nodes", "10.5.0.2", "--file",
                        str(tmp_path / "talos" / "controlplane.yaml")]
    assert calls[2] == ["--nodes", "10.5.0.2", "--endpoints", "10.5.0.2", "bootstrap", "--recover-from", str(snapshot)]
    assert outputs["kubeconfig"].startswith("apiVersion: v1") and outputs["restored"] == str(snapshot)


def test_an_external_dependency_is_checked_and_never_created(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        external = {"step": "nas", "step_kind": "external", "check": f"tcp://127.0.0.1:{port}"}
        assert run_step(external, hosts={}, secrets={})["changed"] == 0
    finally:
        listener.close()
    with pytest.raises(DrError, match="cannot connect.*dr does not create external things"):
        run_step(external, hosts={}, secrets={})
    missing = tmp_path / "mnt" / "nas"
    with pytest.raises(DrError, match="not present"):
        run_step({"step": "nas", "step_kind": "external", "check": str(missing)}, hosts={}, secrets={})
    assert not missing.exists()


@pytest.mark.integration
def test_a_playbook_from_the_users_own_directory_runs_for_real(tmp_path: Path) -> None:
    from dr.graph_file import load_graph_file

    (tmp_path / "my-playbooks").mkdir()
    marker = tmp_path / "ran"
    (tmp_path / "my-playbooks" / "bootstrap-nas.yml").write_text(f"""\
- name: Bootstrap the NAS exports
  hosts: all
  gather_facts: false
  tasks:
    - name: Leave a mark
      ansible.builtin.copy:
        dest: {marker}
        content: "{{{{ nas_export }}}}"
        mode: "0644"
""")
    graph = tmp_path / "cluster.yaml"
    graph.write_text("cluster: lab\nplaybooks: my-playbooks\ncomponents:\n"
                     "  nas: {layer: os, playbook: bootstrap-nas.yml, vars: {nas_export: /srv/nfs}, estimate: 1m}\n"
                     "  os: {layer: os, playbook: os-prepare.yml, estimate: 1m}\n")
    spec = load_graph_file(graph)  # the user's playbook and dr's own are both found
    inputs = child_inputs(graph.read_text(), "nas", tmp_path)
    assert spec.playbooks == "my-playbooks" and inputs["playbook_dir"] == str(tmp_path / "my-playbooks")
    run_step(inputs, hosts={}, secrets={})
    assert marker.read_text() == "/srv/nfs"
    graph.write_text(graph.read_text().replace("bootstrap-nas.yml", "missing.yml"))
    with pytest.raises(GraphError, match="playbook 'missing.yml' does not exist in .*my-playbooks or "):
        load_graph_file(graph)


def test_a_step_runs_by_the_kind_it_carries_never_by_its_keys(tmp_path: Path) -> None:
    """The kind travels with the step: a command whose inputs also hold a `check` runs as a command, and
    inputs without a kind are refused by name instead of being guessed."""
    marker = tmp_path / "ran"
    command = {"step": "cmd", "step_kind": "command", "command": ["touch", str(marker)], "cwd": str(tmp_path),
               "secrets": [], "env": {}, "check": "tcp://127.0.0.1:1"}
    run_step(command, hosts={}, secrets={})
    assert marker.exists()
    with pytest.raises(ValueError, match="no runner for a step of kind ''.*playbook, host-restore"):
        run_step({k: v for k, v in command.items() if k != "step_kind"}, hosts={}, secrets={})


def test_a_stack_written_before_steps_carried_their_kind_does_not_rerun_them() -> None:
    from dr.stack.host_step import HostStepProvider

    olds = {"step": "etcd", "tool": "etcd-snapshot", "repo": "/srv/etcd", "__provider": "x"}
    assert not HostStepProvider().diff("id", olds, {**olds, "step_kind": "host-restore"}).changes
    assert HostStepProvider().diff("id", olds, {**olds, "repo": "/srv/other"}).changes
