"""The dynamic provider that runs playbooks and host restores, driven directly with an injected runner."""

from __future__ import annotations

from typing import Any

from dr.stack.host_step import HostStepProvider


class RecordingRunner:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], dict[str, Any], dict[str, str]]] = []

    def __call__(self, inputs: dict[str, Any], *, hosts: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
        self.calls.append((inputs, hosts, secrets))
        return {"changed": 3, "kubeconfig": "apiVersion: v1\nkind: Config\n"}


PROPS = {"step": "k3s-server", "playbook": "k3s-server.yml", "hosts": ["servers"],
         "vars": {"k3s_datastore_endpoint": "https://10.0.0.10:2379"},
         "hosts_inventory": {"cp0": {"address": "10.0.0.10", "groups": ["servers"], "vars": {}}},
         "secrets": {"k3s_token": "canary-token"}}


def test_create_runs_the_step_and_returns_its_outputs() -> None:
    runner = RecordingRunner()
    result = HostStepProvider(runner).create(dict(PROPS))
    ((inputs, hosts, secrets),) = runner.calls
    assert inputs == {"step": "k3s-server", "playbook": "k3s-server.yml", "hosts": ["servers"],
                      "vars": {"k3s_datastore_endpoint": "https://10.0.0.10:2379"}}
    assert hosts == PROPS["hosts_inventory"] and secrets == {"k3s_token": "canary-token"}
    assert result.outs["kubeconfig"].startswith("apiVersion: v1") and result.outs["changed"] == 3
    assert result.id.startswith("k3s-server-")
    assert HostStepProvider(runner).create(dict(PROPS)).id == result.id, "same inputs, same id"


def test_diff_sees_changed_inputs_and_never_replaces() -> None:
    provider = HostStepProvider(RecordingRunner())
    same = provider.diff("id", dict(PROPS), dict(PROPS))
    assert same.changes is False
    changed = provider.diff("id", dict(PROPS), {**PROPS, "vars": {"k3s_datastore_endpoint": "https://10.0.0.11:2379"}})
    assert changed.changes is True and changed.replaces == []


def test_update_reruns_the_step_with_the_new_inputs() -> None:
    runner = RecordingRunner()
    news = {**PROPS, "vars": {"k3s_datastore_endpoint": "https://10.0.0.11:2379"}}
    result = HostStepProvider(runner).update("id", dict(PROPS), news)
    assert runner.calls[0][0]["vars"] == {"k3s_datastore_endpoint": "https://10.0.0.11:2379"}
    assert result.outs["changed"] == 3


def test_delete_leaves_the_hosts_alone() -> None:
    runner = RecordingRunner()
    assert HostStepProvider(runner).delete("id", dict(PROPS)) is None
    assert runner.calls == []
