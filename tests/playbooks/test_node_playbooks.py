"""Node playbooks run for real on this machine: idempotent, clean in check mode, secrets kept out."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from dr.hosts.ansible import Inventory, run_playbook
from dr.restore import restic

pytestmark = pytest.mark.integration
TOKEN = "canary-k3s-token-91be"


def os_prepare_vars(tmp_path: Path) -> dict[str, object]:
    return {"os_packages": ["rsync"], "os_apt_update": False, "os_kernel_modules": ["br_netfilter"],
            "os_sysctls": {"net.ipv4.ip_forward": 1}, "os_sysctl_file": str(tmp_path / "sysctl.conf"),
            "os_modules_file": str(tmp_path / "modules.conf"), "os_apply_sysctls": False,
            "os_fstab": str(tmp_path / "fstab")}


def test_os_prepare_is_idempotent_and_disables_swap_in_fstab(tmp_path: Path) -> None:
    fstab = tmp_path / "fstab"
    fstab.write_text("UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n")
    first = run_playbook("os-prepare.yml", inventory=Inventory.local(), extravars=os_prepare_vars(tmp_path))
    assert first.changed > 0
    assert "# /swapfile none swap sw 0 0" in fstab.read_text()
    assert "UUID=1 / ext4 defaults 0 1\n" in fstab.read_text()
    assert (tmp_path / "sysctl.conf").read_text().splitlines()[-1] == "net.ipv4.ip_forward = 1"
    second = run_playbook("os-prepare.yml", inventory=Inventory.local(), extravars=os_prepare_vars(tmp_path))
    assert second.changed == 0


def test_os_prepare_check_mode_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "fstab").write_text("/swapfile none swap sw 0 0\n")
    result = run_playbook("os-prepare.yml", inventory=Inventory.local(), extravars=os_prepare_vars(tmp_path),
                          check=True)
    assert result.ok and result.changed > 0  # it reports what it would do...
    assert not (tmp_path / "sysctl.conf").exists()  # ...and does none of it
    assert (tmp_path / "fstab").read_text() == "/swapfile none swap sw 0 0\n"


def fake_k3s(tmp_path: Path) -> Path:
    """A stand-in k3s binary that records its arguments: no real k3s can run here."""
    artifact = tmp_path / "k3s-artifact"
    artifact.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/k3s-calls\n")
    artifact.chmod(0o755)
    return artifact


def k3s_vars(tmp_path: Path, **extra: object) -> dict[str, object]:
    (tmp_path / "bin").mkdir(exist_ok=True)
    return {"k3s_artifact": str(fake_k3s(tmp_path)), "k3s_install_dir": str(tmp_path / "bin"),
            "k3s_config_dir": str(tmp_path / "etc"), "k3s_service_manager": "none", **extra}


def test_k3s_server_resets_embedded_etcd_from_the_snapshot_once(tmp_path: Path) -> None:
    extravars = k3s_vars(tmp_path, k3s_restore_snapshot="/var/lib/rancher/k3s/server/db/snapshots/pre-upgrade")
    artifacts = tmp_path / "artifacts"
    first = run_playbook("k3s-server.yml", inventory=Inventory.local(), extravars=extravars,
                         secrets={"k3s_token": TOKEN}, artifacts_dir=artifacts)
    assert first.changed > 0
    calls = (tmp_path / "k3s-calls").read_text().splitlines()
    assert calls == [f"server --config {tmp_path}/etc/config.yaml --cluster-reset "
                     "--cluster-reset-restore-path=/var/lib/rancher/k3s/server/db/snapshots/pre-upgrade"]
    config = tmp_path / "etc" / "config.yaml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert f"token: {TOKEN}" in config.read_text()
    second = run_playbook("k3s-server.yml", inventory=Inventory.local(), extravars=extravars,
                          secrets={"k3s_token": TOKEN}, artifacts_dir=artifacts)
    assert second.changed == 0
    assert len((tmp_path / "k3s-calls").read_text().splitlines()) == 1, "the reset ran only once"
    leaked = subprocess.run(["grep", "-rl", TOKEN, str(artifacts)], capture_output=True, text=True, check=False)
    assert leaked.stdout == ""


def test_k3s_server_on_external_datastore_does_not_reset(tmp_path: Path) -> None:
    extravars = k3s_vars(tmp_path, k3s_datastore_endpoint="https://127.0.0.1:2379",
                         k3s_restore_snapshot="/ignored")
    run_playbook("k3s-server.yml", inventory=Inventory.local(), extravars=extravars, secrets={"k3s_token": TOKEN})
    assert not (tmp_path / "k3s-calls").exists()
    assert "datastore-endpoint: https://127.0.0.1:2379" in (tmp_path / "etc" / "config.yaml").read_text()


def test_k3s_agent_config_and_check_mode(tmp_path: Path) -> None:
    extravars = k3s_vars(tmp_path, k3s_server_url="https://10.0.0.10:6443")
    checked = run_playbook("k3s-agent.yml", inventory=Inventory.local(), extravars=extravars,
                           secrets={"k3s_token": TOKEN}, check=True)
    assert checked.ok and not (tmp_path / "etc").exists()
    run_playbook("k3s-agent.yml", inventory=Inventory.local(), extravars=extravars, secrets={"k3s_token": TOKEN})
    text = (tmp_path / "etc" / "config.yaml").read_text()
    assert "server: https://10.0.0.10:6443" in text and f"token: {TOKEN}" in text
    assert os.access(tmp_path / "bin" / "k3s", os.X_OK)
    again = run_playbook("k3s-agent.yml", inventory=Inventory.local(), extravars=extravars,
                         secrets={"k3s_token": TOKEN})
    assert again.changed == 0


@pytest.mark.skipif(shutil.which("etcd") is None or shutil.which("restic") is None, reason="make system")
def test_pre_maintenance_snapshot_takes_an_etcd_snapshot_and_a_restic_backup(tmp_path: Path) -> None:
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        client, peer = a.getsockname()[1], b.getsockname()[1]
    endpoint = f"http://127.0.0.1:{client}"
    server = subprocess.Popen(["etcd", "--data-dir", str(tmp_path / "etcd"), "--listen-client-urls", endpoint,
                               "--advertise-client-urls", endpoint, "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                               "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                               "--initial-cluster", f"default=http://127.0.0.1:{peer}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/health", timeout=1) as response:
                    if json.loads(response.read()).get("health") == "true":
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        repo = restic.ResticRepository(str(tmp_path / "repo"), "canary-pm-password")
        repo.run("init")
        data = tmp_path / "volume"
        data.mkdir()
        (data / "a.txt").write_text("important\n")
        result = run_playbook("pre-maintenance-snapshot.yml", inventory=Inventory.local(),
                              extravars={"etcd_endpoints": endpoint, "etcd_snapshot_dir": str(tmp_path / "snaps"),
                                         "restic_repository": repo.repository, "restic_paths": [str(data)]},
                              secrets={"restic_password": repo.password})
        assert result.ok
        snapshot_files = list((tmp_path / "snaps").glob("pre-maintenance-*.db"))
        assert len(snapshot_files) == 1 and snapshot_files[0].stat().st_size > 0
        snapshots = json.loads(repo.run("snapshots", "--json", "--tag", "pre-maintenance"))
        assert len(snapshots) == 1 and snapshots[0]["paths"] == [str(data)]
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()


@pytest.mark.skipif(shutil.which("restic") is None, reason="make system")
def test_volume_restore_check_mode_touches_nothing(tmp_path: Path) -> None:
    repo = restic.ResticRepository(str(tmp_path / "repo"), "canary-check-password")
    repo.run("init")
    source = tmp_path / "volume"
    source.mkdir()
    (source / "f").write_text("x" * 100)
    repo.run("backup", str(source))
    snapshot = restic.choose_snapshot(restic.list_snapshots(repo), "latest", allow_collapsed=False)
    result = run_playbook("volume-restore.yml", inventory=Inventory.local(), check=True,
                          extravars={"restic_repository": repo.repository, "restic_snapshot": snapshot.point.id,
                                     "restic_source_path": snapshot.source_path,
                                     "restore_path": str(tmp_path / "out")},
                          secrets={"restic_password": repo.password})
    assert result.ok
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.dr-staging").exists()


def test_nfs_exports_writes_the_list_and_refuses_missing_directories(tmp_path: Path) -> None:
    (tmp_path / "volumes").mkdir()
    extravars = {"nfs_exports": [str(tmp_path / "volumes")], "nfs_clients": "10.0.0.0/24",
                 "nfs_exports_file": str(tmp_path / "exports.d" / "dr.exports"), "nfs_reload": False}
    run_playbook("nfs-exports.yml", inventory=Inventory.local(), extravars=extravars)
    assert (tmp_path / "exports.d" / "dr.exports").read_text().splitlines()[-1] == (
        f"{tmp_path}/volumes 10.0.0.0/24(rw,sync,no_subtree_check,no_root_squash)")
    assert run_playbook("nfs-exports.yml", inventory=Inventory.local(), extravars=extravars).changed == 0
    from dr.hosts.ansible import PlaybookError

    with pytest.raises(PlaybookError, match="does not exist; its restore must run before the export"):
        run_playbook("nfs-exports.yml", inventory=Inventory.local(),
                     extravars={**extravars, "nfs_exports": [str(tmp_path / "missing")]})


def test_every_playbook_the_example_graph_names_exists() -> None:
    from dr.core.spec import PlaybookAction
    from dr.graph_file import load_graph_file
    from tests.conftest import EXAMPLE_GRAPH, REPO

    spec = load_graph_file(EXAMPLE_GRAPH)
    named = {c.action.playbook for c in spec.components.values() if isinstance(c.action, PlaybookAction)}
    assert named and all((REPO / "playbooks" / p).is_file() for p in named), named


def test_no_command_task_builds_its_command_line_from_a_string_with_jinja() -> None:
    """`command` with `cmd:` splits a rendered string on spaces and quotes: a value with a space or a quote
    becomes several arguments or an error. Values go in `argv`; a `shell` task quotes each (`| quote`)."""
    import re

    import yaml

    from tests.conftest import REPO

    offenders = []
    for playbook in sorted((REPO / "playbooks").glob("*.yml")):
        for play in yaml.safe_load(playbook.read_text()) or []:
            for task in [*play.get("tasks", []), *play.get("handlers", [])]:
                command = task.get("ansible.builtin.command") or task.get("command")
                text = command.get("cmd", "") if isinstance(command, dict) else command or ""
                if "{{" in str(text):
                    offenders.append(f"{playbook.name}: {task.get('name')}")
                shell = task.get("ansible.builtin.shell") or task.get("shell")
                script = shell.get("cmd", "") if isinstance(shell, dict) else shell or ""
                for expression in re.findall(r"{{(.*?)}}", str(script)):
                    if "quote" not in expression:
                        offenders.append(f"{playbook.name}: {task.get('name')}: {{{{{expression}}}}}")
    assert offenders == []
