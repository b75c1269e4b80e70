"""Tier 2, for real: the Pulumi engine (Automation API, file backend, passphrase secrets) runs dr's
dynamic host-step resource, which runs a real playbook (a restic volume restore) through ansible-runner.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pulumi
import pytest

from dr.kube.toolchain import Toolchain
from dr.restore import restic
from dr.stack.engine import Engine
from dr.stack.host_step import HostStep

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed (make system)")]

CANARY = "canary-engine-secret-5d1e"


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_up_runs_the_playbook_second_up_changes_nothing_destroy_keeps_host_data(engine: Toolchain,
                                                                                tmp_path: Path) -> None:
    source = tmp_path / "volume"
    (source / "docs").mkdir(parents=True)
    for i in range(20):
        (source / "docs" / f"f{i}.txt").write_text(f"file {i}\n" * 50)
    repo = restic.ResticRepository(str(tmp_path / "repo"), CANARY)
    repo.run("init")
    repo.run("backup", str(source))
    expected = tree_digest(source)
    target = tmp_path / "restored" / "volume"

    def program() -> None:
        config = pulumi.Config("dr")
        step = HostStep("volume-restore", step="volume-restore",
                        inputs={"step_kind": "host-restore", "tool": "restic", "repo": repo.repository,
                                "target_time": "latest",
                                "hosts": ["all"], "vars": {"restore_path": str(target)}},
                        hosts_inventory={}, secrets=config.require_secret_object("secrets"))
        pulumi.export("restored", step.restored)

    state = tmp_path / "engine"
    path_before = os.environ.get("PATH")
    stack = Engine.at(state, engine).stack(project="tier2", stack="dev", program=program,
                                           secret_config={"dr:secrets.restic_password": CANARY})
    lines: list[str] = []
    first = stack.up(on_output=lines.append)
    assert os.environ.get("PATH") == path_before, "the toolchain stays out of this process's PATH (etcdctl 3.4 vs 3.6)"
    assert first.summary.result == "succeeded"
    assert first.summary.resource_changes.get("create") == 2, first.summary.resource_changes
    assert tree_digest(target) == expected, "the playbook restored the volume"
    assert first.outputs["restored"].value == restic.list_snapshots(repo)[0].point.id

    second = stack.up(on_output=lines.append)
    changes: dict[str, Any] = second.summary.resource_changes
    assert set(changes) == {"same"}, f"a second up changes nothing: {changes}"

    leaked = subprocess.run(["grep", "-rl", CANARY, str(state / "pulumi-state")], capture_output=True, text=True,
                            check=False)
    assert leaked.stdout == "", f"the secret is in plaintext in {leaked.stdout}"
    assert CANARY not in "".join(lines)

    stack.destroy(on_output=lines.append)
    assert tree_digest(target) == expected, "destroy leaves the restored data on the host alone"
    assert tree_digest(source) == expected


def test_a_stack_created_when_the_provider_lived_at_its_old_path_still_refreshes_and_destroys(
        engine: Toolchain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pulumi pickles a dynamic provider by class reference into the state; the class moved from
    dr.pulumi_dynamic to dr.stack.host_step, and the alias keeps existing stacks working."""
    import json

    from dr.stack.host_step import HostStepProvider

    source = tmp_path / "volume"
    source.mkdir()
    (source / "a.txt").write_text("a\n")
    repo = restic.ResticRepository(str(tmp_path / "repo"), CANARY)
    repo.run("init")
    repo.run("backup", str(source))

    def program() -> None:
        HostStep("volume-restore", step="volume-restore",
                 inputs={"step_kind": "host-restore", "tool": "restic", "repo": repo.repository, "hosts": ["all"],
                         "vars": {"restore_path": str(tmp_path / "restored")}},
                 hosts_inventory={}, secrets=pulumi.Config("dr").require_secret_object("secrets"))

    state = tmp_path / "engine"
    stack = Engine.at(state, engine).stack(project="old-path", stack="dev", program=program,
                                           secret_config={"dr:secrets.restic_password": CANARY})
    # As the previous layout pickled it: by reference to dr.pulumi_dynamic. The module is stood in for
    # here, in the program's process only, so this state is written even if the alias file were gone;
    # the engine's provider process that refreshes and destroys must then import the real alias.
    stand_in = types.ModuleType("dr.pulumi_dynamic")
    stand_in.HostStepProvider = HostStepProvider  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dr.pulumi_dynamic", stand_in)
    monkeypatch.setattr(HostStepProvider, "__module__", "dr.pulumi_dynamic")
    stack.up(on_output=lambda line: None)
    monkeypatch.undo()
    checkpoint = json.loads(next((state / "pulumi-state").rglob("dev.json")).read_text())
    providers = [r["inputs"]["__provider"] for r in checkpoint["checkpoint"]["latest"]["resources"]
                 if "__provider" in r.get("inputs", {})]
    assert providers, "the state holds the pickled provider (encrypted: its inputs carry a secret)"
    assert stack.refresh(on_output=lambda line: None).summary.result == "succeeded"
    assert stack.destroy(on_output=lambda line: None).summary.result == "succeeded"


def test_rotating_a_secret_the_step_does_not_use_reruns_nothing(engine: Toolchain, tmp_path: Path) -> None:
    """Under the real engine: the program registered from a graph; k3s_token rotates, the restic
    restore (which reads only restic_password) is left alone; rotating restic_password reruns it."""
    from dr.stack.program import load_resources, register

    source = tmp_path / "volume"
    source.mkdir()
    (source / "a.txt").write_text("a\n")
    repo = restic.ResticRepository(str(tmp_path / "repo"), CANARY)
    repo.run("init")
    repo.run("backup", str(source))
    graph = tmp_path / "graph.yaml"
    graph.write_text(f"""\
cluster: lab
backups:
  vol: {{tool: restic, protects: app, repo: {repo.repository}, schedule: "0 * * * *", rpo: 1h, retention: {{daily: 7}}}}
components:
  vol-restore: {{layer: data, restore: {{backup: vol}}, vars: {{restore_path: {tmp_path / "restored"}}}}}
  app: {{layer: app, depends_on: [vol-restore]}}
""")
    _, resources = load_resources(graph_path=str(graph), mode="prod")

    def program() -> None:
        register(resources, hosts={}, secrets=pulumi.Config("dr").require_secret_object("secrets"))

    eng = Engine.at(tmp_path / "engine", engine)
    stack = eng.stack(project="scoped", stack="dev", program=program,
                      secret_config={"dr:secrets.restic_password": CANARY, "dr:secrets.k3s_token": "token-1"})
    stack.up(on_output=lambda line: None)
    stack.set_config("dr:secrets.k3s_token", auto_config("token-2"), path=True)
    second = stack.up(on_output=lambda line: None)
    assert set(second.summary.resource_changes) == {"same"}, second.summary.resource_changes
    repo.run("key", "passwd", "--new-password-file", str(write(tmp_path / "pw", "rotated-password")))
    stack.set_config("dr:secrets.restic_password", auto_config("rotated-password"), path=True)
    third = stack.up(on_output=lambda line: None)
    assert third.summary.resource_changes.get("update") == 1, third.summary.resource_changes


def auto_config(value: str) -> Any:
    from pulumi import automation

    return automation.ConfigValue(value=value, secret=True)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
