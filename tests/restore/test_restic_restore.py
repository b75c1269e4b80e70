"""restic, for real: back up a tree, forget by GFS policy, destroy, restore through the product's host step, compare.

Every restore goes through `dr.hosts.host_steps.run_step`, the path `pulumi up` and the drill take.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dr.core.backups import CollapsedBackup
from dr.core.spec import Retention
from dr.errors import RestoreError
from dr.hosts.ansible import Inventory, PlaybookError
from dr.hosts.host_steps import run_step
from dr.restore import restic

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed (make system)")]

PASSWORD = "canary-restic-password-7f3a"


def build_tree(root: Path) -> None:
    (root / "docs" / "empty").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text("hello\n")
    (root / "bin").mkdir()
    script = root / "bin" / "run.sh"
    script.write_text("#!/bin/sh\necho run\n")
    script.chmod(0o750)
    secret = root / "private.key"
    secret.write_bytes(os.urandom(4096))
    secret.chmod(0o600)
    (root / "link-to-readme").symlink_to("docs/readme.txt")
    for i in range(40):
        (root / "docs" / f"page-{i}.bin").write_bytes(os.urandom(2048))


def fingerprint(root: Path) -> dict[str, tuple[str, int, str]]:
    """Relative path -> (kind, mode, content hash or link target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", 0, os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", path.stat().st_mode & 0o7777, "")
        else:
            out[rel] = ("file", path.stat().st_mode & 0o7777, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


@pytest.fixture
def repo(tmp_path: Path) -> restic.ResticRepository:
    repository = restic.ResticRepository(str(tmp_path / "repo"), PASSWORD)
    repository.run("init")
    return repository


def backup(repo: restic.ResticRepository, source: Path) -> None:
    repo.run("backup", str(source))


def restore_step(repo: restic.ResticRepository, target: Path, *, force: bool = False, allow_collapsed: bool = False,
                 hosts: dict[str, dict[str, object]] | None = None) -> dict[str, object]:
    """The restore as the product runs it: a host-restore step of the resource plan."""
    inputs = {"step": "volume-restore", "step_kind": "host-restore", "tool": "restic", "repo": repo.repository, "target_time": "latest",
              "allow_collapsed": allow_collapsed, "hosts": sorted(hosts or {}) or ["all"],
              "vars": {"restore_path": str(target), "force": force}}
    return run_step(inputs, hosts=hosts or {}, secrets={"restic_password": repo.password})


def test_restore_latest_through_the_playbook(repo: restic.ResticRepository, tmp_path: Path) -> None:
    source = tmp_path / "volume"
    source.mkdir()
    build_tree(source)
    for i in range(5):
        (source / "docs" / f"change-{i}.txt").write_text(f"change {i}\n")
        backup(repo, source)
    repo.run("forget", *restic.forget_args(Retention(last=3, daily=7)), "--prune")
    snapshots = restic.list_snapshots(repo)
    assert len(snapshots) == 3
    expected = fingerprint(source)
    shutil.rmtree(source)  # the disaster

    chosen = restic.choose_snapshot(snapshots, "latest", allow_collapsed=False)
    target = tmp_path / "restored" / "volume"
    result = restore_step(repo, target)
    assert result["restored"] == chosen.point.id and int(str(result["changed"])) > 0
    assert fingerprint(target) == expected
    restic.verify(chosen.point, target)

    again = restore_step(repo, target)
    assert again["changed"] == 0, "a second run of the same restore changes nothing"
    assert fingerprint(target) == expected


def test_collapsed_newest_backup_is_refused_then_last_good_restored(repo: restic.ResticRepository,
                                                                     tmp_path: Path) -> None:
    source = tmp_path / "volume"
    source.mkdir()
    build_tree(source)
    backup(repo, source)
    backup(repo, source)
    good = fingerprint(source)
    shutil.rmtree(source)
    source.mkdir()
    (source / "lost+found").mkdir()  # the blank volume the app initialised
    backup(repo, source)
    snapshots = restic.list_snapshots(repo)
    with pytest.raises(CollapsedBackup) as caught:
        restic.choose_snapshot(snapshots, "latest", allow_collapsed=False)
    assert caught.value.last_good is not None
    assert caught.value.last_good.id == snapshots[1].point.id
    target = tmp_path / "restored"
    with pytest.raises(CollapsedBackup):
        restore_step(repo, target)
    assert not target.exists(), "a refused restore touches nothing"
    result = restore_step(repo, target, allow_collapsed=True)
    assert result["restored"] == snapshots[1].point.id
    assert fingerprint(target) == good


def test_non_empty_target_is_refused_and_forced_restore_moves_it_aside(repo: restic.ResticRepository,
                                                                       tmp_path: Path) -> None:
    source = tmp_path / "volume"
    source.mkdir()
    build_tree(source)
    backup(repo, source)
    target = tmp_path / "target"
    target.mkdir()
    (target / "precious.txt").write_text("do not lose me\n")
    with pytest.raises(PlaybookError, match="is not empty"):
        restore_step(repo, target)
    assert (target / "precious.txt").read_text() == "do not lose me\n"
    restore_step(repo, target, force=True)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("target.before-restore-")]
    assert len(aside) == 1 and (aside[0] / "precious.txt").read_text() == "do not lose me\n"
    assert fingerprint(target) == fingerprint(source)


def test_wrong_password_is_a_clear_error(repo: restic.ResticRepository) -> None:
    with pytest.raises(RestoreError, match="wrong password"):
        restic.list_snapshots(restic.ResticRepository(repo.repository, "not-the-password"))


def test_missing_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RestoreError, match="does not exist"):
        restic.list_snapshots(restic.ResticRepository(str(tmp_path / "nowhere"), PASSWORD))


def test_empty_repository_has_nothing_to_restore(repo: restic.ResticRepository) -> None:
    with pytest.raises(RestoreError, match="no backups found"):
        restic.choose_snapshot(restic.list_snapshots(repo), "latest", allow_collapsed=False)


def test_unreachable_host_is_a_clear_error(repo: restic.ResticRepository, tmp_path: Path) -> None:
    source = tmp_path / "volume"
    source.mkdir()
    build_tree(source)
    backup(repo, source)
    nowhere = {"nas": {"address": "127.0.0.1", "groups": [],
                       "vars": {"ansible_port": 9, "ansible_connection": "ssh",
                                "ansible_ssh_common_args": "-o ConnectTimeout=3"}}}
    with pytest.raises(PlaybookError, match="host\\(s\\) unreachable: nas"):
        restore_step(repo, tmp_path / "out", hosts=nowhere)
    assert not (tmp_path / "out").exists()


def test_password_never_reaches_artifacts_or_messages(repo: restic.ResticRepository, tmp_path: Path) -> None:
    source = tmp_path / "volume"
    source.mkdir()
    build_tree(source)
    backup(repo, source)
    chosen = restic.choose_snapshot(restic.list_snapshots(repo), "latest", allow_collapsed=False)
    artifacts = tmp_path / "artifacts"
    from dr.hosts.ansible import run_playbook

    run_playbook("volume-restore.yml", inventory=Inventory.local(), artifacts_dir=artifacts,
                 extravars={"restic_repository": repo.repository, "restic_snapshot": chosen.point.id,
                            "restic_source_path": chosen.source_path, "restore_path": str(tmp_path / "out")},
                 secrets={"restic_password": PASSWORD})
    leaked = subprocess.run(["grep", "-rl", PASSWORD, str(artifacts)], capture_output=True, text=True, check=False)
    assert leaked.stdout == "", f"password found in {leaked.stdout}"
    assert PASSWORD not in repr(repo)


def test_paths_with_quotes_spaces_and_command_substitution_stay_one_argument(repo: restic.ResticRepository,
                                                                            tmp_path: Path) -> None:
    """Hostile but legal directory names, on both sides of the restore: the move-aside and the put-in-place
    `mv` split a one-string command line (a quote ended in "No closing quotation"); each is one argument."""
    hostile = """it's "a" vol $(echo x)"""
    source = tmp_path / hostile / "data"
    source.mkdir(parents=True)
    build_tree(source)
    backup(repo, source)
    target = tmp_path / f"target {hostile}"
    target.mkdir()
    (target / "old.txt").write_text("kept aside\n")
    restore_step(repo, target, force=True)
    assert fingerprint(target) == fingerprint(source)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(f"target {hostile}.before-restore-")]
    assert len(aside) == 1 and (aside[0] / "old.txt").read_text() == "kept aside\n"
