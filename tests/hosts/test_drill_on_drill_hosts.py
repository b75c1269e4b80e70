"""A drill never touches production, proven on real hosts: network namespaces with their own sshd,
reached by Ansible over SSH. Production hosts prod-a and prod-b hold data and answer SSH; the drill
runs on drill-a and drill-b.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dr.cli import main
from dr.restore import restic
from tests.hosts.netns import NetnsNetwork, available

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(bool(available()), reason=available() or "ok"),
              pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed (make system)")]

PASSWORD = "canary-drill-hosts-3b7c"


def checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def network(tmp_path: Path) -> Iterator[NetnsNetwork]:
    net = NetnsNetwork(tmp_path / "net")
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def lab(network: NetnsNetwork, tmp_path: Path) -> dict[str, object]:
    """Two production hosts with data, two drill hosts, restic backups of the production data."""
    prod_a, prod_b = network.add_host("prod-a"), network.add_host("prod-b")
    drill_a, drill_b = network.add_host("drill-a"), network.add_host("drill-b")
    backups = tmp_path / "backups"
    repos = {}
    for name, host in (("app", prod_a), ("nas", prod_b), ("logs", prod_a)):
        data = host.directory / "data" / name
        data.mkdir(parents=True)
        for i in range(10):
            (data / f"{name}-{i}.txt").write_text(f"{name} {i}\n" * 100)
        repo = restic.ResticRepository(str(backups / name), PASSWORD)
        repo.run("init")
        repo.run("backup", str(data))
        repos[name] = repo
    (tmp_path / "secrets.yaml").write_text(yaml.safe_dump({"restic_password": PASSWORD}))
    return {"prod": [prod_a, prod_b], "drill": [drill_a, drill_b], "backups": backups}


def write_graph(tmp_path: Path, network: NetnsNetwork, *, drill_a_address: str | None = None) -> Path:
    hosts = network.hosts
    host_vars = network.ansible_vars()

    def entry(name: str, groups: list[str], *, key: bool) -> dict[str, object]:
        host = hosts[name]
        body: dict[str, object] = {"address": host.address, "groups": groups, "vars": host_vars}
        if key:
            body["host_key"] = host.public_key()
        return body

    drill_a = entry("drill-a", ["app"], key=False)
    if drill_a_address:
        drill_a["address"] = drill_a_address
    backups = tmp_path / "backups"

    def restore(backup: str, group: str, owner: str, depends: list[str]) -> dict[str, object]:
        prod_dir = hosts["prod-a" if group == "app" else "prod-b"].directory / "data" / backup
        drill_dir = hosts["drill-a" if group == "app" else "drill-b"].directory / "restored" / backup
        return {"layer": "data", "depends_on": depends, "restore": {"backup": backup}, "hosts": [group],
                "vars": {"restore_path": str(prod_dir)}, "drill": {"values": {"restore_path": str(drill_dir)}},
                "estimate": "1m"}

    graph = {
        "cluster": "lab",
        "hosts": {"prod-a": entry("prod-a", ["app"], key=True), "prod-b": entry("prod-b", ["nas"], key=True)},
        "drill_hosts": {"drill-a": drill_a, "drill-b": entry("drill-b", ["nas"], key=False)},
        "backups": {name: {"tool": "restic", "protects": owner, "repo": str(backups / name),
                           "schedule": "0 * * * *", "rpo": "24h", "retention": {"daily": 7}}
                    for name, owner in (("nas", "nas-restore"), ("app", "app"), ("logs", "logs-restore"))},
        "components": {
            "nas-restore": restore("nas", "nas", "nas-restore", []),
            "app-restore": restore("app", "app", "app", ["nas-restore"]),
            "logs-restore": restore("logs", "app", "logs-restore", []),
            "app": {"layer": "app", "depends_on": ["app-restore"], "estimate": "1m"},
        },
    }
    path = tmp_path / "graph.yaml"
    path.write_text(yaml.safe_dump(graph, sort_keys=False))
    return path


def drill(tmp_path: Path, graph: Path, *extra: str) -> int:
    return main(["drill", "--hosts", "--graph", str(graph), "--secrets", str(tmp_path / "secrets.yaml"),
                 "--state-dir", str(tmp_path / "state"), *extra])


def test_drill_runs_only_on_drill_hosts_and_production_is_untouched(lab: dict[str, object], network: NetnsNetwork,
                                                                    tmp_path: Path) -> None:
    graph = write_graph(tmp_path, network)
    prod = lab["prod"]
    assert isinstance(prod, list)
    before = {h.name: checksums(h.directory / "data") for h in prod}
    backups_before = checksums(tmp_path / "backups")
    logins_before = {h.name: h.logins() for h in prod}

    assert drill(tmp_path, graph) == 0
    for name, host in (("app", "prod-a"), ("logs", "prod-a"), ("nas", "prod-b")):
        drill_host = "drill-a" if host == "prod-a" else "drill-b"
        restored = checksums(network.hosts[drill_host].directory / "restored" / name)
        assert restored == {k[len(name) + 1:]: v for k, v in before[host].items() if k.startswith(name + "/")}
    assert {h.name: checksums(h.directory / "data") for h in prod} == before, "production data byte-identical"
    assert checksums(tmp_path / "backups") == backups_before, "production backups byte-identical"
    assert {h.name: h.logins() for h in prod} == logins_before, "no login on a production host"
    assert network.hosts["drill-a"].logins() > 0 and network.hosts["drill-b"].logins() > 0
    report = json.loads(next((tmp_path / "state" / "reports").glob("*/report.json")).read_text())
    assert {s["name"]: s["state"] for s in report["steps"]} == {
        "nas-restore": "succeeded", "app-restore": "succeeded", "logs-restore": "succeeded", "app": "succeeded"}


def test_drill_host_with_a_production_host_key_is_refused_before_any_step(
        lab: dict[str, object], network: NetnsNetwork, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clone = network.add_host("clone-of-a", host_key_of=network.hosts["prod-a"])  # a cloned VM: same identity
    graph = write_graph(tmp_path, network, drill_a_address=clone.address)
    assert drill(tmp_path, graph) == 2
    err = capsys.readouterr().err
    assert "drill host 'drill-a'" in err and "presents the SSH host key of production host 'prod-a'" in err
    assert not (tmp_path / "state" / "reports").exists(), "nothing ran"
    assert clone.logins() == 0 and network.hosts["prod-a"].logins() == 0


def test_drill_host_with_a_production_address_is_refused(lab: dict[str, object], network: NetnsNetwork,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = write_graph(tmp_path, network, drill_a_address=network.hosts["prod-a"].address)
    assert drill(tmp_path, graph) == 2
    assert "drill host 'drill-a' is the production host 'prod-a'" in capsys.readouterr().err
    assert network.hosts["prod-a"].logins() == 0


def test_a_host_lost_mid_rebuild_fails_its_step_skips_only_descendants_and_resume_completes(
        lab: dict[str, object], network: NetnsNetwork, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = write_graph(tmp_path, network)
    network.stop_sshd(network.hosts["drill-b"])  # the NAS drill host goes away
    assert drill(tmp_path, graph) == 1
    out = capsys.readouterr().out
    assert "failed: nas-restore" in out and "unreachable" in out
    assert "skipped: app-restore" in out and "skipped: app" in out
    logs = network.hosts["drill-a"].directory / "restored" / "logs"
    assert logs.is_dir(), "an independent step on a reachable host completed"
    logs_restored_at = logs.stat().st_mtime_ns

    network.start_sshd(network.hosts["drill-b"])
    assert drill(tmp_path, graph, "--resume") == 0
    assert (network.hosts["drill-b"].directory / "restored" / "nas").is_dir()
    assert (network.hosts["drill-a"].directory / "restored" / "app").is_dir()
    assert logs.stat().st_mtime_ns == logs_restored_at, "a finished step is not rerun"
    reports = sorted((tmp_path / "state" / "reports").glob("*/report.json"))
    final = json.loads(reports[-1].read_text())
    assert {s["name"]: s["state"] for s in final["steps"]}["logs-restore"] == "succeeded"
