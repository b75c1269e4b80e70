"""dr's ansible-runner facade: results, progress, errors that ansible-runner itself does not raise."""

from __future__ import annotations

from pathlib import Path

import pytest

import dr.hosts.ansible
from dr.core.spec import Host
from dr.hosts.ansible import Inventory, PlaybookError, run_playbook

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent / "playbooks"


def test_result_counts_hosts_and_progress_sees_each_task(tmp_path: Path) -> None:
    seen: list[str] = []
    result = run_playbook("hello.yml", inventory=Inventory.local(), playbook_dir=HERE, progress=seen.append,
                          artifacts_dir=tmp_path)
    assert result.ok and result.rc == 0
    assert result.hosts["localhost"].ok == 1 and result.hosts["localhost"].failed == 0
    assert seen == ["hello.yml: Hello", "hello.yml: Fail when asked"]


def test_failed_task_names_host_task_and_message(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="localhost: Fail when asked: asked to fail") as caught:
        run_playbook("hello.yml", inventory=Inventory.local(), playbook_dir=HERE, artifacts_dir=tmp_path,
                     extravars={"fail_please": True})
    assert caught.value.result is not None and caught.value.result.hosts["localhost"].failed == 1


def test_missing_ansible_playbook_is_a_clear_error_not_a_silent_rc_127(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # What ansible-runner reports when ansible-playbook cannot be started: rc 127, no exception.
    stand_in = tmp_path / "ansible-playbook"
    stand_in.write_text("#!/bin/sh\nexit 127\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv("DR_ANSIBLE_PLAYBOOK", str(stand_in))
    with pytest.raises(PlaybookError, match="rc 127") as caught:
        run_playbook("hello.yml", inventory=Inventory.local(), playbook_dir=HERE, artifacts_dir=tmp_path / "a")
    assert caught.value.result is not None and caught.value.result.rc == 127


def test_no_ansible_at_all_is_refused_before_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dr.hosts.ansible, "_ansible_playbook_binary", lambda: None)
    with pytest.raises(PlaybookError, match="ansible-playbook is not installed"):
        run_playbook("hello.yml", inventory=Inventory.local(), playbook_dir=HERE)


def test_unknown_playbook_is_refused() -> None:
    with pytest.raises(PlaybookError, match="playbook 'nope.yml' not found"):
        run_playbook("nope.yml", inventory=Inventory.local(), playbook_dir=HERE)


def test_artifacts_are_rotated(tmp_path: Path) -> None:
    for i in range(4):
        run_playbook("hello.yml", inventory=Inventory.local(), playbook_dir=HERE, artifacts_dir=tmp_path,
                     keep_artifacts=2, extravars={"who": str(i)})
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def test_concurrent_runs_keep_their_artifacts(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: run_playbook("hello.yml", inventory=Inventory.local(), playbook_dir=HERE,
                                                        artifacts_dir=tmp_path, keep_artifacts=1,
                                                        extravars={"who": str(i)}), range(6)))
    assert all(r.ok for r in results)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1


def test_inventory_from_the_graph_keeps_addresses_and_groups() -> None:
    inventory = Inventory.from_graph({"cp0": Host("cp0", "10.0.0.10", ("servers", "etcd")),
                                      "w1": Host("w1", "10.0.0.11", ("agents",))})
    runner_form = inventory.to_runner()
    assert runner_form["all"]["hosts"]["cp0"]["ansible_host"] == "10.0.0.10"
    assert set(runner_form["all"]["children"]) == {"servers", "etcd", "agents"}
    assert set(runner_form["all"]["children"]["agents"]["hosts"]) == {"w1"}


def test_a_limit_that_matches_no_host_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="ran on no host"):
        run_playbook("hello.yml", inventory=Inventory.local(), playbook_dir=HERE, artifacts_dir=tmp_path,
                     limit="servers")

